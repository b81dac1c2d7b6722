"""run_transform end to end: output, rejects, counts, atomicity, and a no-row-lost property."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.errors import CsvDataError
from exchange.transfer.csvio import format_row
from exchange.transfer.pipeline import TransformCancelled, exceeds_threshold, run_transform

RULES = [
    {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
    {"source": "first_name", "target": "first_name", "transform": []},
    {"source": "country", "target": "country", "transform": ["trim"]},
]
ALICE_SHA = "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _run(tmp_path: Path, data: bytes, *, chunk: int = 7, **kw):
    out, rej = tmp_path / "out.csv", tmp_path / "rejects.csv"
    kw.setdefault("gzip", False)
    result = run_transform([data[i:i + chunk] for i in range(0, len(data), chunk)], rules=kw.pop("rules", RULES),
                           identifier_types={"email_sha256"}, out_path=str(out), rejects_path=str(rej), **kw)
    return result, out, rej


def _read(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_transform_writes_output_rejects_and_counts(tmp_path):
    data = ("email,first_name,country\n"
            " Alice@Example.com,Alice, FR\n"
            "bob@example.com,\"Bob, Jr\",US\n"
            "alice@example.com,Alice again,FR\n"
            f"{ALICE_SHA.upper()},hash of alice,FR\n"
            "not-an-email,=cmd,DE\n"
            "carol@example.com,Carol\n"
            ",nobody,FR\n").encode()
    result, out, rej = _run(tmp_path, data)
    assert _read(out) == [
        ["email_sha256", "first_name", "country"],
        [ALICE_SHA, "Alice", "FR"],
        [_sha("bob@example.com"), "Bob, Jr", "US"],
    ]
    assert _read(rej) == [
        ["email", "first_name", "country", "_line", "_reason"],
        ["not-an-email", "'=cmd", "DE", "6", "email: no @ in email"],
        ["carol@example.com", "Carol", "", "7", "expected 3 fields, found 2"],
        ["", "nobody", "FR", "8", "no usable identifier"],
    ]
    assert result.counts == {"received": 7, "valid": 2, "rejected": 3, "duplicates": 2, "hashed": 3,
                             "passed_through": 1}
    assert result.rows_out == 2
    assert result.columns == ["email_sha256", "first_name", "country"]
    assert result.out_bytes == out.stat().st_size
    assert result.out_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert exceeds_threshold(result, 0.10) and not exceeds_threshold(result, 0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "rejects.csv"]  # temp files gone


def test_gzip_input_and_header_only_file(tmp_path):
    result, out, rej = _run(tmp_path, gzip.compress(b"email,first_name,country\n"), gzip=True)
    assert out.read_text() == "email_sha256,first_name,country\n"
    assert rej.read_text() == "email,first_name,country,_line,_reason\n"
    assert result.counts["received"] == 0 and not exceeds_threshold(result, 0.0)


@pytest.mark.parametrize(("data", "error"), [
    (b"", "empty"),
    (b"mail,first_name,country\nx@y.z,a,b\n", "lacks columns"),
    (b"email,first_name,country\na@b.c,x,y\n\x00\x01\x02\n", "NUL"),
])
def test_fatal_errors_leave_no_files(tmp_path, data, error):
    (tmp_path / "out.csv").write_text("previous\n")
    with pytest.raises(CsvDataError, match=error):
        _run(tmp_path, data)
    assert (tmp_path / "out.csv").read_text() == "previous\n"  # never replaced by a partial file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_cancel_and_progress(tmp_path):
    rows = "".join(f"u{i}@x.com,n,FR\n" for i in range(20_000))
    data = ("email,first_name,country\n" + rows).encode()
    seen: list[int] = []
    result, _, _ = _run(tmp_path, data, chunk=1 << 16, progress=seen.append, block_bytes=1 << 15, workers=2)
    assert seen == sorted(seen) and seen[-1] == 20_000 and len(seen) >= 2
    assert result.workers == 2
    calls = iter([False, True])
    with pytest.raises(TransformCancelled):
        _run(tmp_path, data, chunk=1 << 16, cancel_check=lambda: next(calls), block_bytes=1 << 15, workers=2)
    assert result.counts["valid"] == 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "rejects.csv"]  # no temp files left


def test_spilled_dedupe_keeps_first_occurrence_and_multiline_rows(tmp_path):
    lines = ["email,first_name,country"]
    for i in range(300):
        lines.append(format_row([f"u{i % 120}@x.com", f"name\n{i}" if i % 7 == 0 else f"n{i}", "FR"]).rstrip("\n"))
    data = ("\n".join(lines) + "\n").encode()
    result, out, _ = _run(tmp_path, data, chunk=97, block_bytes=200, workers=0, dedupe_partitions=3)
    rows = _read(out)[1:]
    assert [r[0] for r in rows] == [_sha(f"u{i}@x.com") for i in range(120)]
    assert [r[1] for r in rows] == [f"name\n{i}" if i % 7 == 0 else f"n{i}" for i in range(120)]
    assert result.counts["duplicates"] == 180 and result.counts["valid"] == 120
    assert result.out_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()


# Labelled values: (raw value, expected output or None when the row must be rejected).
EMAILS = st.sampled_from([
    ("alice@example.com", ALICE_SHA), (" Alice@Example.COM\t", ALICE_SHA), (ALICE_SHA.upper(), ALICE_SHA),
    ("bob@x.org", _sha("bob@x.org")), ("josé@exämple.com", _sha("josé@exämple.com")),
    ("c+tag@y.io", _sha("c+tag@y.io")), ("no-at", None), ("a@@b", None), ("@x.com", None), ("", None),
    ("  ", None), (ALICE_SHA[:-1], None), ("a b@c.d", None),
])
TEXT = st.text(alphabet=st.sampled_from(list("ab ,\"\n\r=+-@é\t'")), max_size=6)
ROWS = st.lists(st.tuples(EMAILS, TEXT, st.integers(0, 9)), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, chunk=st.integers(1, 64), block_bytes=st.integers(1, 300))
def test_every_row_is_delivered_duplicated_or_rejected(tmp_path, rows, chunk, block_bytes):
    text = io.StringIO()
    text.write("email,first_name,country\r\n")
    line, expected_rejects, expected_out, seen = 2, {}, [], set()
    duplicates = 0
    for (raw, sha), name, shape in rows:
        fields = [raw, name, "FR"] if shape else [raw, name]  # shape 0: a row with a missing field
        record = format_row(fields)
        text.write(record)
        if not shape or sha is None:
            expected_rejects[line] = fields
        elif sha in seen:
            duplicates += 1
        else:
            seen.add(sha)
            expected_out.append([sha, name, "FR"])
        line += record.count("\n")
    result, out, rej = _run(tmp_path, text.getvalue().encode(), chunk=chunk, block_bytes=block_bytes, workers=0,
                            dedupe_partitions=2)
    assert _read(out)[1:] == expected_out
    rejects = _read(rej)[1:]
    assert {int(r[-2]): r[:-2] for r in rejects} == {
        ln: [f if not f.startswith(("=", "+", "-", "@", "\t", "\r")) else "'" + f for f in fields]
        + [""] * (3 - len(fields)) for ln, fields in expected_rejects.items()}
    assert all(r[-1] for r in rejects)
    assert [int(r[-2]) for r in rejects] == sorted(expected_rejects)
    counts = result.counts
    assert counts["received"] == len(expected_out) + len(expected_rejects) + duplicates
    assert (counts["valid"], counts["rejected"], counts["duplicates"]) == (
        len(expected_out), len(expected_rejects), duplicates)
