"""Exact, bounded-memory dedupe and the rejects file format."""
from __future__ import annotations

import io
import os

import pytest

from exchange.transfer.dedupe import Deduper, copy_without
from exchange.transfer.rejects import RejectsWriter, neutralize


def _dedupe(keys: list[str], tmp_path, **kw) -> list[int]:
    """Indices of the rows kept, through staging and copy_without like the pipeline does."""
    deduper = Deduper(str(tmp_path), **kw)
    staged: list[int] = []
    for i, key in enumerate(keys):
        if deduper.check(key, len(staged), 1):
            staged.append(i)
    drops, multi = deduper.finish()
    src = io.BytesIO(b"".join(b"%d\n" % i for i in staged))
    dst = io.BytesIO()
    copy_without(src, dst, drops, multi)
    deduper.close()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".part")] == []
    return [int(x) for x in dst.getvalue().split()]


KEYS = ["a", "b", "a", "c\nd", "c\\nd", "b", "c\nd", "", "\\", "\\\\", "\\", "e", "a"]
EXPECTED = [0, 1, 3, 4, 7, 8, 9, 11]  # first occurrences, in input order


@pytest.mark.parametrize("memory_keys", [1, 2, 3, 1000])
@pytest.mark.parametrize("partition_of", [hash, lambda key: 0, len])
def test_dedupe_is_exact_first_wins_and_keeps_order(tmp_path, memory_keys, partition_of):
    # A constant partition function puts every key in one file: colliding partitions must not merge keys.
    kept = _dedupe(KEYS, tmp_path, memory_keys=memory_keys, partitions=4, partition_of=partition_of)
    assert kept == EXPECTED


def test_memory_bytes_bound_triggers_the_spill(tmp_path):
    deduper = Deduper(str(tmp_path), memory_bytes=1000, partitions=2)
    for i in range(10):
        assert deduper.check("k" * 10 + str(i), i, 1)
    assert deduper.spilled  # 10 keys x (11 + 100) bytes > 1000
    assert deduper.check("k" * 10 + "0", 10, 1)  # staged; finish() finds it is a duplicate
    drops, _ = deduper.finish()
    assert list(drops) == [10] and deduper.duplicates == 1
    deduper.close()


def test_dedupe_counts_duplicates_in_both_phases(tmp_path):
    deduper = Deduper(str(tmp_path), memory_keys=3, partitions=2)
    staged = sum(deduper.check(k, i, 1) for i, k in enumerate(["x", "x", "y", "z", "x", "w", "w"]))
    assert deduper.spilled
    deduper.finish()
    assert (staged, deduper.duplicates, deduper.dropped_from_staging) == (6, 3, 2)


def test_hashes_that_share_a_prefix_are_not_duplicates(tmp_path):
    base = "f" * 63
    keys = [base + c for c in "0123456789abcdef"] * 2
    assert _dedupe(keys, tmp_path, memory_keys=5, partitions=3) == list(range(16))


def test_copy_without_skips_multi_line_records():
    src = io.BytesIO(b"h\n1\n2a\n2b\n3\n4a\n4b\n4c\n5\n")
    dst = io.BytesIO()
    copy_without(src, dst, iter([2, 5]), {2: 2, 5: 3})
    assert dst.getvalue() == b"h\n1\n3\n5\n"


@pytest.mark.parametrize(("value", "expected"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+33612345678", "'+33612345678"),
    ("-2", "'-2"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"),
    ("\rx", "'\rx"),
    ("a=b", "a=b"),
    ("caf\udcc3", "caf\ufffd"),
    ("été", "été"),
])
def test_neutralize(value, expected):
    assert neutralize(value) == expected


def test_rejects_file_content_is_exact():
    out = io.BytesIO()
    writer = RejectsWriter(out, ["email", "=cmd", "_line"])
    writer.write(2, ["=1+2", "x,y", "z"], "email: no @ in email")
    writer.write(3, ["only"], "expected 3 fields, found 1")
    writer.write(4, ["a", "b", "c", "d"], "expected 3 fields, found 4")
    writer.write(5, [], "malformed CSV: carriage return inside an unquoted field")
    writer.write(6, ["-x", "caf\udcc3", 'say "hi"'], "-bad reason")
    writer.flush()
    assert out.getvalue().decode("utf-8") == (
        "email,'=cmd,_line,__line,_reason\n"
        "'=1+2,\"x,y\",z,2,email: no @ in email\n"
        "only,,,3,\"expected 3 fields, found 1\"\n"
        "a,b,c,d,4,\"expected 3 fields, found 4\"\n"
        ",,,5,malformed CSV: carriage return inside an unquoted field\n"
        "'-x,caf\ufffd,\"say \"\"hi\"\"\",6,'-bad reason\n"
    )
    assert writer.count == 5
