"""Streaming CSV reader and writer: line numbers, row-level rejects, fatal errors, gzip bounds."""
from __future__ import annotations

import csv
import gzip
import io
import os

import pytest

from exchange.errors import CsvDataError, PayloadTooLarge
from exchange.transfer.csvio import CsvLimits, CsvWriter, Reject, format_row, open_csv


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _records(data: bytes, *, chunk: int = 5, gz: bool = False, batch: int = 3, **limits):
    stream = open_csv(_split(data, chunk), gzip=gz, limits=CsvLimits(**limits))
    out = []
    for b in stream.batches(batch):
        out += [(b.line_of(i), r) for i, r in enumerate(b.rows)] + list(b.rejects)
    return stream.header, sorted(out, key=lambda item: item[0])


@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 16])
def test_bom_crlf_quoted_newlines_and_line_numbers(chunk):
    data = (b'\xef\xbb\xbfemail,name\r\n'
            b'a@x.com,"Smith, J"\r\n'
            b'\r\n'
            b'"b@x.com","multi\r\nline ""quoted"""\r\n'
            b'c@x.com,\xc3\xa9t\xc3\xa9\n')
    header, records = _records(data, chunk=chunk)
    assert header == ["email", "name"]
    assert records == [
        (2, ["a@x.com", "Smith, J"]),
        (4, ["b@x.com", 'multi\r\nline "quoted"']),
        (6, ["c@x.com", "été"]),
    ]


def test_row_level_problems_are_rejects_and_reading_continues():
    data = (b"a,b\n"
            b"1,2\n"
            b"only-one\n"
            b"1,2,3\n"
            b'"x\ny",\xff\xfe\n'  # invalid UTF-8 in a two-line record: only it is rejected
            b"3,4\n"
            b"5,6\r7\n"  # a stray carriage return cannot be parsed
            b"8,9")
    _, records = _records(data)
    assert records == [
        (2, ["1", "2"]),
        Reject(3, ["only-one"], "expected 2 fields, found 1"),
        Reject(4, ["1", "2", "3"], "expected 2 fields, found 3"),
        Reject(5, ["x\ny", "\udcff\udcfe"], "invalid UTF-8 in row"),
        (7, ["3", "4"]),
        Reject(8, [], "malformed CSV: carriage return inside an unquoted field"),
        (9, ["8", "9"]),
    ]


def test_field_longer_than_the_limit_rejects_only_that_row():
    data = b"a,b\n1," + b"x" * 101 + b"\n3,4\n"
    _, records = _records(data, max_field_chars=100)
    assert records == [Reject(2, [], "a field is longer than 100 characters"), (3, ["3", "4"])]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"\n\r\n\n", "empty"),
    (b",,\n1,2,3\n", "blank"),
    (b"a,,c\n1,2,3\n", "column 2 of the header has no name"),
    (b"email,Email,email\n", "duplicate column name 'email'"),
    (b"em\xffail\n", "not valid UTF-8"),
    (b"a,b\n1,2\n\x89PNG\x00\x00\n", "NUL byte on line 3"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "gzip-compressed but was not declared"),
    (b"\x89PNG\r\n\x1a\n\xff\xd8", "not valid UTF-8"),
])
def test_fatal_problems(data, message):
    with pytest.raises(CsvDataError, match=message):
        _records(data)


def test_too_many_columns_is_fatal():
    with pytest.raises(CsvDataError, match="at most 3"):
        _records(b"a,b,c,d\n", max_columns=3)


def test_overlong_line_is_fatal_and_bounded():
    with pytest.raises(CsvDataError, match="line 3 is longer than 1000 bytes"):
        _records(b"a\n1\n" + b"x" * 5000 + b"\n", chunk=256, max_line_chars=1000)
    with pytest.raises(CsvDataError, match="line 2 is longer"):
        _records(b"a\n" + b"y" * 1500 + b"\n2\n", chunk=1 << 20, max_line_chars=1000)


def test_gzip_in_small_chunks_and_concatenated_members():
    data = gzip.compress(b"id\n1\n2\n") + gzip.compress(b"3\n")
    _, records = _records(data, chunk=3, gz=True)
    assert records == [(2, ["1"]), (3, ["2"]), (4, ["3"])]


def test_truncated_gzip_is_fatal():
    data = gzip.compress(b"id\n" + b"".join(b"%d\n" % i for i in range(5000)))
    with pytest.raises(CsvDataError, match="truncated"):
        _records(data[:-9], chunk=100, gz=True, batch=100)


def test_corrupt_gzip_is_fatal():
    data = bytearray(gzip.compress(os.urandom(2000).hex().encode()))
    data[30:40] = b"\xff" * 10
    with pytest.raises(CsvDataError, match="gzip"):
        _records(bytes(data), chunk=64, gz=True)


def test_gzip_bomb_stops_at_the_decompressed_bound():
    bomb = gzip.compress(b"id\n" + b"1\n" * 50_000_000, compresslevel=9)  # 100 MB from ~100 kB
    stream_bytes = _split(bomb, 1 << 14)
    with pytest.raises(PayloadTooLarge, match="1000000 bytes"):
        stream = open_csv(stream_bytes, gzip=True, limits=CsvLimits(max_decompressed_bytes=1_000_000))
        for _ in stream.batches():
            pass


def test_received_counts_data_records_not_blank_lines():
    stream = open_csv([b"a,b\n1,2\n\n3\n4,5\n"])
    list(stream)
    assert stream.received == 3


@pytest.mark.parametrize("fields", [
    ["a", "b"], ["with,comma", 'with "quote"', "new\nline", "cr\rx"], [""], ["", ""], [" padded "],
    ["=1+1", "é", ""],
])
def test_writer_round_trips_through_a_standard_reader(fields):
    out = io.BytesIO()
    writer = CsvWriter(out)
    writer.writerow(fields)
    writer.writerow(["next"] * len(fields))
    writer.flush()
    assert writer.bytes_written == len(out.getvalue())
    text = out.getvalue().decode()
    assert "\r\n" not in text.replace('"cr\rx"', "")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [fields, ["next"] * len(fields)]


def test_format_row_quotes_only_where_needed():
    assert format_row(["a", "b c", "d,e", 'f"g']) == 'a,b c,"d,e","f""g"\n'
    assert format_row([""]) == '""\n'  # not a blank line, which readers skip
