"""PUSH producer uploads: stream a CSV body to the blob store, checking, counting and hashing as it goes.

The body is never held whole in memory. While it streams through:

- gzip bodies are inflated incrementally, bounded by an absolute cap (``max_decompressed_bytes``)
  and by a ratio to the compressed bytes received so far (``max_inflate_ratio``): a 2 MB bomb
  inflating to 2 GB is refused (413) after a few hundred MB at most, before anything is kept;
- the data plane's fatal CSV limits (:class:`exchange.transfer.csvio.CsvLimits`, the same values
  the job's reader applies) are enforced: a NUL byte, a physical line longer than
  ``max_line_chars``, a header with more than ``max_columns`` columns, a quoted field running for
  more than ``max_line_chars`` bytes or never closed → 422 before the version becomes current;
- records are counted as the reader will see them: blank lines are not records, a quoted field's
  embedded newlines do not end a record, a quote opens a quoted field only at the start of a field
  (``a"b`` is a literal quote, as in the lenient reader).

Row-level problems (a row with the wrong number of fields, bad UTF-8 inside a row, a field longer
than ``max_field_chars``) stay row-level: the job rejects those rows and delivers the rest.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

try:  # ISA-L's gzip: same format, a third of the CPU (see compressed())
    from isal import isal_zlib as _gzip

    _GZIP_MAX_LEVEL = 3
except ImportError:  # pragma: no cover - isal is a dependency; plain zlib still works
    _gzip = zlib  # type: ignore[misc]
    _GZIP_MAX_LEVEL = 9

from ..errors import CsvDataError, PayloadTooLarge
from ..identifiers import IDENTIFIER_TYPES
from ..transfer.csvio import CsvLimits

KNOWN_IDENTIFIERS = IDENTIFIER_TYPES  # defined once, in exchange/identifiers.py
_BLANK_AFTER = re.compile(rb"\n\r?(?=\n)")  # a newline followed by an empty (or lone-CR) line
# a whole quoted field, "" escapes included (possessive: an unclosed field never matches a prefix)
_QUOTED_FIELD = re.compile(rb'"[^"]*+(?:""[^"]*+)*+"')
_INFLATE_FLOOR = 16 << 20  # the ratio bound applies beyond this many inflated bytes


@dataclass
class UploadStats:
    bytes: int = 0  # inflated (CSV) bytes
    records: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    header: list[str] | None = None
    limits: CsvLimits = field(default_factory=CsvLimits)
    _head: bytearray = field(default_factory=bytearray)
    _in_quotes: bool = False
    _just_closed: bool = False  # the last byte closed a quoted field ("" inside one is an escaped quote)
    _prev: bytes = b""  # last byte seen (b"" at the start of the file)
    _line_blank: bool = True  # the current physical line is empty so far (or a lone CR)
    _run: int = 0  # bytes since the last newline
    _quoted: int = 0  # bytes inside the current quoted field
    _lines: int = 0  # newlines seen
    _quote_line: int = 0  # physical line where the open quoted field started

    @property
    def rows(self) -> int:
        return max(0, self.records - 1)


class Inflater:
    """Incremental gunzip of an upload, bounded by ``max_bytes`` inflated and ``max_ratio`` × compressed.

    Concatenated gzip members are one body (RFC 1952 §2.2), as the job's reader treats them."""

    def __init__(self, max_bytes: int, max_ratio: float = 0.0):
        self.max_bytes, self.max_ratio = max_bytes, max_ratio
        self._d = zlib.decompressobj(wbits=31)
        self.total = self.consumed = 0

    def _bound(self, n: int) -> None:
        self.total += n
        if self.total > self.max_bytes:
            raise PayloadTooLarge(f"The decompressed upload exceeds {self.max_bytes} bytes.")
        if self.max_ratio > 0 and self.total > _INFLATE_FLOOR and self.total > self.max_ratio * self.consumed:
            raise PayloadTooLarge(f"The gzip body inflates more than {self.max_ratio:g} times its size "
                                  "(a decompression bomb?); upload it uncompressed or in parts.")

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self.consumed += len(chunk)
        data = chunk
        try:
            while data:
                out = self._d.decompress(data, 1 << 20)
                self._bound(len(out))
                if out:
                    yield out
                data = self._d.unconsumed_tail
                if self._d.eof:
                    data = self._d.unused_data + data
                    if data:
                        self._d = zlib.decompressobj(wbits=31)
        except zlib.error:
            raise CsvDataError("The body is not valid gzip.") from None

    def end(self) -> Iterator[bytes]:
        if not self._d.eof:
            raise CsvDataError("The gzip body is truncated.")
        tail = self._d.flush()
        if tail:
            self._bound(len(tail))
            yield tail


def inflate(chunks: Iterable[bytes], max_bytes: int, *, max_ratio: float = 0.0) -> Iterator[bytes]:
    """Gunzip ``chunks``; refuse (413) past ``max_bytes`` inflated or ``max_ratio`` × compressed."""
    inflater = Inflater(max_bytes, max_ratio)
    for chunk in chunks:
        yield from inflater.feed(chunk)
    yield from inflater.end()


def _line_too_long(stats: UploadStats, line: int) -> None:
    raise CsvDataError(f"Line {line} is longer than {stats.limits.max_line_chars} bytes: is this CSV?")


def _check_lines(stats: UploadStats, chunk: bytes) -> None:
    """Physical line lengths, as the job's reader measures them (bytes, whatever the quoting)."""
    limit = stats.limits.max_line_chars
    first = chunk.find(b"\n")
    if first == -1:
        stats._run += len(chunk)
        if stats._run > limit:
            _line_too_long(stats, stats._lines + 1)
        return
    if stats._run + first > limit:
        _line_too_long(stats, stats._lines + 1)
    if len(chunk) > limit:  # only then can a whole line fit inside this chunk
        start, line = first + 1, stats._lines + 2
        while (end := chunk.find(b"\n", start)) != -1:
            if end - start > limit:
                _line_too_long(stats, line)
            start, line = end + 1, line + 1
    stats._run = len(chunk) - 1 - chunk.rfind(b"\n")
    if stats._run > limit:
        _line_too_long(stats, stats._lines + chunk.count(b"\n") + 1)


def _records_outside(stats: UploadStats, seg: bytes) -> int:
    """Count the records that end in ``seg`` (outside quotes): newlines that end a non-blank line.

    Returns the number of newlines in ``seg``."""
    n = seg.count(b"\n")
    if not n:
        if seg.strip(b"\r"):
            stats._line_blank = False
        return 0
    first = seg.find(b"\n")
    blanks = len(_BLANK_AFTER.findall(seg))
    if stats._line_blank and not seg[:first].strip(b"\r"):
        blanks += 1
    stats.records += n - blanks
    tail = seg[seg.rfind(b"\n") + 1:]
    stats._line_blank = not tail.strip(b"\r")
    return n


def _scan(stats: UploadStats, chunk: bytes) -> None:
    if b"\x00" in chunk:
        line = stats._lines + chunk.count(b"\n", 0, chunk.find(b"\x00")) + 1
        raise CsvDataError(f"The body is not CSV: NUL byte on line {line} (binary data?).")
    _check_lines(stats, chunk)
    limit = stats.limits.max_line_chars
    if b'"' in chunk:
        while stats._in_quotes and chunk:  # finish the field left open by the previous chunk, line by line
            line = chunk[:chunk.find(b"\n") + 1] or chunk
            _scan_exact(stats, line, limit)
            chunk = chunk[len(line):]
        if not chunk or _scan_quoted_fast(stats, chunk, limit):
            return
        cut = chunk.rfind(b"\n") + 1  # often only the last, unfinished row holds an open quote
        if 0 < cut < len(chunk) and _scan_quoted_fast(stats, chunk[:cut], limit):
            chunk = chunk[cut:]
    _scan_exact(stats, chunk, limit)


def _scan_exact(stats: UploadStats, chunk: bytes, limit: int) -> None:
    """Quote by quote: quoted fields that span chunks, escapes split between chunks."""
    parts = chunk.split(b'"') if b'"' in chunk else [chunk]
    offset, opened, outside_lines = 0, -1, 0
    for i, part in enumerate(parts):
        if i:
            previous = parts[i - 1]
            if stats._in_quotes:
                stats._in_quotes, stats._just_closed = False, True
            else:
                before = previous[-1:] if previous else (b'"' if i > 1 else stats._prev)
                if stats._just_closed and not previous:
                    stats._in_quotes = True  # "" inside a quoted field: an escaped quote
                elif before in (b",", b"\n", b""):
                    stats._in_quotes, stats._quoted, opened = True, 0, offset
                stats._just_closed = False
            stats._line_blank = False
            offset += 1
        if part:
            stats._just_closed = False
        if stats._in_quotes:
            stats._quoted += len(part)
            if stats._quoted > limit:
                _note_quote_line(stats, chunk, opened)
                raise CsvDataError(f"The quoted field starting on line {stats._quote_line} runs for more than "
                                   f"{limit} bytes: an unterminated quote?")
        else:
            outside_lines += _records_outside(stats, part)
        offset += len(part)
    if stats._in_quotes:
        _note_quote_line(stats, chunk, opened)
    # without quotes the one part is the chunk, its newlines counted already
    stats._lines += outside_lines if len(parts) == 1 and not stats._in_quotes else chunk.count(b"\n")
    stats._prev = chunk[-1:]


def _scan_quoted_fast(stats: UploadStats, chunk: bytes, limit: int) -> bool:
    """The common case in C speed: every quoted field of ``chunk`` opens and closes inside it.

    Complete quoted fields (opening at a field start, ``""`` escapes included) are replaced by one
    byte, so their newlines do not end records; what remains must hold no opening quote. Otherwise
    (a field spanning chunks, an escape split between chunks) returns False for the exact scan."""
    if stats._in_quotes or len(chunk) > limit or chunk.endswith(b'"'):
        return False
    if chunk.startswith(b'"') and (stats._just_closed or stats._prev not in (b",", b"\n", b"")):
        return False
    # each complete quoted field becomes one NUL (NUL bytes were refused already); all of them must
    # start a field (after a comma, a newline or the start), and no quote may be left over
    rest = _QUOTED_FIELD.sub(b"\x00", chunk)
    fields = rest.count(b"\x00")
    at_field_start = rest.count(b",\x00") + rest.count(b"\n\x00") + rest.startswith(b"\x00")
    if fields != at_field_start or b'"' in rest:
        return False
    _records_outside(stats, rest)  # (rest has fewer newlines than chunk: quoted ones are gone)
    stats._just_closed = False
    stats._lines += chunk.count(b"\n")
    stats._prev = chunk[-1:]
    return True


def _note_quote_line(stats: UploadStats, chunk: bytes, opened: int) -> None:
    """The line of the quoted field still open (worked out once, not for every quote)."""
    if opened >= 0:
        stats._quote_line = stats._lines + chunk.count(b"\n", 0, opened) + 1


def _parse_header(head: bytes, limits: CsvLimits) -> list[str]:
    if b"\x00" in head:
        raise CsvDataError("The body is not CSV (it contains NUL bytes).")
    line = head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    if len(line) > limits.max_line_chars:
        raise CsvDataError(f"Line 1 is longer than {limits.max_line_chars} bytes: is this CSV?")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvDataError("The header row is not valid UTF-8.") from None
    header = next(csv.reader(io.StringIO(text)), [])
    if len(header) > limits.max_columns:
        raise CsvDataError(f"The header has {len(header)} columns; at most {limits.max_columns} are accepted.")
    header = [h.strip() for h in header]
    if not header or all(not h for h in header):
        raise CsvDataError("The CSV has no header row.")
    if any(not h for h in header):
        raise CsvDataError("A column in the header row has no name.")
    if len(set(header)) != len(header):
        raise CsvDataError("The header row names a column twice.")
    return header


def check_chunk(stats: UploadStats, chunk: bytes, *, max_bytes: int) -> None:
    """Check one piece of the (inflated) CSV body and record size, SHA-256, records and header."""
    if not chunk:
        return
    stats.bytes += len(chunk)
    if stats.bytes > max_bytes:
        raise PayloadTooLarge("The upload exceeds the size limit.")
    if stats.header is None:
        stats._head.extend(chunk)
        if b"\n" in stats._head.lstrip(b"\r\n") or len(stats._head) > stats.limits.max_line_chars:
            stats.header = _parse_header(bytes(stats._head), stats.limits)
            stats._head = bytearray()
    stats.sha256.update(chunk)
    _scan(stats, chunk)


def check_end(stats: UploadStats) -> None:
    """The body ended: refuse an empty body or an open quoted field; count the last record."""
    if stats.header is None:
        if not stats._head.strip():
            raise CsvDataError("The body is empty: a CSV with a header row is required.")
        stats.header = _parse_header(bytes(stats._head), stats.limits)
    if stats._in_quotes:
        raise CsvDataError(f"The quoted field starting on line {stats._quote_line} is never closed "
                           "(unterminated quote).")
    if not stats._line_blank:
        stats.records += 1  # last record without a trailing newline


def measured(chunks: Iterable[bytes], stats: UploadStats, *, max_bytes: int) -> Iterator[bytes]:
    """Pass chunks through :func:`check_chunk`, then :func:`check_end`."""
    for chunk in chunks:
        if chunk:
            check_chunk(stats, chunk, max_bytes=max_bytes)
            yield chunk
    check_end(stats)


def compressed(chunks: Iterable[bytes], level: int = 1) -> Iterator[bytes]:
    """gzip ``chunks`` on the fly (level 1: most of the saving for a fraction of the CPU).

    With ISA-L (the ``isal`` package) when it is installed: the same gzip format at about a third
    of zlib's CPU, and a slightly smaller output (1M sample rows, 66 MB: 0.16 s and 24 % of the size
    against zlib level 1's 0.54 s and 26 %); the compression was most of an upload's CPU."""
    z = _gzip.compressobj(min(level, _GZIP_MAX_LEVEL), zlib.DEFLATED, 31)
    for chunk in chunks:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


def split_columns(header: list[str]) -> tuple[list[str], list[str]]:
    ids = [h for h in header if h in KNOWN_IDENTIFIERS]
    return ids, [h for h in header if h not in ids]
