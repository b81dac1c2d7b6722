"""Exact, bounded-memory dedupe and the rejects file format."""
from __future__ import annotations

import io
from array import array

import pytest

from exchange.transfer.dedupe import PartitionFiles, bucket_keys, drop_lines, later_copies
from exchange.transfer.rejects import RejectsWriter, neutralize


def _dedupe(keys: list[str], tmp_path, *, block: int, partitions: int) -> list[int]:
    """Indices of the rows kept, through blocks, partitions and drop_lines like the pipeline."""
    files = PartitionFiles(str(tmp_path), partitions)
    staged: list[int] = []  # input index of each staged row
    bases = []
    for b, start in enumerate(range(0, len(keys), block)):
        seen, block_keys = set(), []
        bases.append(len(staged))
        for i in range(start, min(start + block, len(keys))):
            if keys[i] not in seen:  # inside a block, the block's own set drops copies
                seen.add(keys[i])
                block_keys.append(keys[i])
                staged.append(i)
        files.append(bucket_keys(block_keys, range(len(block_keys)), partitions, b))
    files.close()
    drops = []
    for p in sorted(files.used):
        found = array("q")
        found.frombytes(later_copies(*files.paths[p]))
        drops += [bases[x >> 32] + (x & 0xFFFFFFFF) for x in found]
    kept = drop_lines(b"".join(b"%d\n" % i for i in staged), 0, sorted(drops), {})
    return [int(x) for x in kept.split()]


KEYS = ["a", "b", "a", "c\nd", "c\\nd", "b", "c\nd", "", "\\", "\\\\", "\\", "e", "a", "a\x00b", "a\x00b"]
EXPECTED = [0, 1, 3, 4, 7, 8, 9, 11, 13]  # first occurrences, in input order


@pytest.mark.parametrize("block", [1, 2, 3, 1000])
@pytest.mark.parametrize("partitions", [1, 4])
def test_dedupe_is_exact_first_wins_and_keeps_order(tmp_path, block, partitions):
    # One partition puts every key in one file: keys that share a partition must not merge.
    assert _dedupe(KEYS, tmp_path, block=block, partitions=partitions) == EXPECTED


def test_hashes_that_share_a_prefix_are_not_duplicates(tmp_path):
    base = "f" * 63
    keys = [base + c for c in "0123456789abcdef"] * 2
    assert _dedupe(keys, tmp_path, block=5, partitions=3) == list(range(16))


def test_later_copies_of_a_partition(tmp_path):
    files = PartitionFiles(str(tmp_path), 1)
    files.append(bucket_keys(["x", "y"], [0, 1], 1, 0))
    files.append(bucket_keys(["y", "z", "x"], [0, 2, 5], 1, 1))  # record 1 of block 1 spans 2 lines
    files.close()
    found = array("q")
    found.frombytes(later_copies(*files.paths[0]))
    assert list(found) == [(1 << 32) | 0, (1 << 32) | 5]


def test_drop_lines_skips_multi_line_records():
    data = b"1\n2a\n2b\n3\n4a\n4b\n4c\n5\n"  # lines 10..17 of the staging file
    assert drop_lines(data, 10, [11, 14], {11: 2, 14: 3}) == b"1\n3\n5\n"
    assert drop_lines(b"1\n2\n", 4, [4, 5], {}) == b""


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
