"""Fuzzing the data path with hypothesis: hostile bytes never crash the reader, valid rows are never
lost, normalization either yields the documented shape or a reason."""
from __future__ import annotations

import csv
import gzip
import io
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.errors import CsvDataError, PayloadTooLarge
from exchange.transfer.csvio import CsvLimits, Reject, open_csv
from exchange.transfer.mapping import compile_mapping
from exchange.transfer.normalize import RowRejected, normalize_email, normalize_phone, sha256_hex

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def _chunks(data: bytes, size: int):
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def _read_all(data: bytes, size: int, gz: bool = False):
    stream = open_csv(_chunks(data, size), gzip=gz, limits=CsvLimits(max_decompressed_bytes=1 << 20))
    return stream.header, list(stream)


@FAST
@given(data=st.binary(max_size=400), size=st.integers(1, 64), gz=st.booleans())
def test_reader_never_crashes_on_arbitrary_bytes(data, size, gz):
    try:
        header, records = _read_all(data, size, gz)
    except (CsvDataError, PayloadTooLarge):
        return
    assert header and all(h for h in header)
    for rec in records:
        if isinstance(rec, Reject):
            assert rec.line >= 2 and rec.reason
        else:
            line, fields = rec
            assert line >= 2 and len(fields) == len(header)


FIELD = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=20)


@FAST
@given(rows=st.lists(st.lists(FIELD, min_size=3, max_size=3), max_size=30), size=st.integers(1, 97),
       crlf=st.booleans(), gz=st.booleans())
def test_valid_rows_are_never_lost(rows, size, crlf, gz):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    data = buf.getvalue().encode()
    data = gzip.compress(data) if gz else data
    header, records = _read_all(data, size, gz)
    got = [fields for rec in records if not isinstance(rec, Reject) for fields in [rec[1]]]
    rejected = [rec for rec in records if isinstance(rec, Reject)]
    assert header == ["a", "b", "c"]
    assert rejected == []
    assert got == rows


@FAST
@given(value=st.text(max_size=40))
def test_email_normalization_shape_or_reason(value):
    try:
        out = normalize_email(value)
    except RowRejected as exc:
        assert str(exc)
        return
    assert out == out.strip().lower() and out.count("@") == 1
    local, domain = out.split("@")
    assert local and domain
    assert normalize_email(out) == out  # idempotent
    assert re.fullmatch(r"[0-9a-f]{64}", sha256_hex(out))


@FAST
@given(value=st.text(alphabet="+0123456789 ()-.abc", max_size=22), country=st.sampled_from([None, "FR", "US", "GB"]))
def test_phone_normalization_shape_or_reason(value, country):
    try:
        out = normalize_phone(value, country)
    except RowRejected as exc:
        assert str(exc)
        return
    assert E164.match(out), out
    assert normalize_phone(out, country) == out


@FAST
@given(fields=st.lists(st.text(max_size=30), min_size=2, max_size=2))
def test_mapping_yields_a_row_or_a_reason(fields):
    mapper = compile_mapping([{"source": "e", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
                              {"source": "c", "target": "country", "transform": ["trim"]}],
                             ["e", "c"], identifier_types={"email_sha256"})
    try:
        out = mapper(fields)
    except RowRejected as exc:
        assert str(exc)
        return
    assert re.fullmatch(r"[0-9a-f]{64}", out[0]) and out[1] == fields[1].strip()
