"""Streaming CSV reading over byte chunks, and RFC 4180 writing.

Bodies arrive as an iterable of byte chunks (optionally gzip); :func:`open_csv` turns them into a
:class:`CsvStream` without ever holding more than a few buffers. Two kinds of problems exist:

- **Fatal** (:class:`~exchange.errors.CsvDataError`, or ``PayloadTooLarge`` for the decompressed
  bound): bad or truncated gzip, a NUL byte (binary data, not CSV), a physical line longer than
  ``max_line_chars`` (counted in bytes, which bounds memory), a missing / empty / duplicate-name /
  non-UTF-8 header, more columns than ``max_columns``.
- **Row-level** (:class:`Reject`, reading continues): wrong number of fields, a field longer than
  ``max_field_chars``, invalid UTF-8 inside the row, malformed quoting the parser cannot recover.

Records carry the physical line where they start (header = line 1 when the file starts with it);
a quoted field with embedded newlines spans several lines. Blank lines are skipped. Quoting is
lenient like most readers (``a"b`` is a literal quote); an unterminated quote swallows following
lines until the field limit, which then rejects that record and resumes on the next line.

Decoding uses ``surrogateescape`` so that one bad byte does not poison the stream; a strict
decoder runs beside it on non-ASCII input only, and rows are scanned for escaped bytes only once it
has seen one, so clean files pay nothing for the check.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import IO, NamedTuple

from exchange.errors import CsvDataError, PayloadTooLarge

__all__ = ["Batch", "CsvLimits", "CsvStream", "CsvWriter", "Reject", "open_csv"]

_PIECE = 1 << 18  # bound on one decompression step, so a gzip bomb never expands in one go
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class CsvLimits:
    max_columns: int = 1000
    max_field_chars: int = 65536
    max_line_chars: int = 1_048_576
    max_decompressed_bytes: int = 8 * 1024**3


class Reject(NamedTuple):
    line: int
    fields: list[str]
    reason: str


class Batch:
    """Good rows (each with exactly ``len(header)`` fields) and the rejects met while reading them.

    Start lines of rows are worked out only when asked for (:meth:`line_of`, used for rejects):
    in the common batch where every record is one line, it is arithmetic; otherwise the batch walks
    its rows, counting embedded newlines and stepping over blank lines and rejected records."""

    __slots__ = ("_base", "_end", "_others", "_starts", "rejects", "rows")

    def __init__(self, base: int):
        self.rows: list[list[str]] = []
        self.rejects: list[Reject] = []
        self._base = base  # end line of the record before this batch
        self._end = base
        self._others: list[tuple[int, int]] = []  # (start, end) of blank lines and rejected records
        self._starts: list[int] | None = None

    def line_of(self, index: int) -> int:
        if self._starts is None:
            if not self._others and self._end - self._base == len(self.rows):
                return self._base + 1 + index
            self._starts = self._walk()
        return self._starts[index]

    def _walk(self) -> list[int]:
        starts, others = [], sorted(self._others)
        cursor, k = self._base, 0
        for row in self.rows:
            while k < len(others) and others[k][0] <= cursor + 1:
                cursor = max(cursor, others[k][1])
                k += 1
            starts.append(cursor + 1)
            cursor += 1 + sum(f.count("\n") for f in row)
        return starts

    def _last_end(self) -> int:
        """End line of the last record consumed so far (only needed after a parse error)."""
        last = self._base
        if self.rows:
            last = self._walk()[-1] + sum(f.count("\n") for f in self.rows[-1])
        return max([last, *(end for _, end in self._others)])

    def _keep(self, keep: list[bool]) -> None:
        """Drop rows (turned into rejects by the caller) while keeping line numbers right."""
        starts = self._walk() if self._starts is None else self._starts
        self.rows = [r for r, k in zip(self.rows, keep) if k]
        self._starts = [s for s, k in zip(starts, keep) if k]


class _ByteSource(io.RawIOBase):
    """Raw stream over the chunks: gunzips, bounds sizes, and refuses binary data."""

    def __init__(self, chunks: Iterable[bytes], *, gzip: bool, limits: CsvLimits):
        self._chunks = iter(chunks)
        self._gzip = zlib.decompressobj(wbits=31) if gzip else None
        self._is_gzip = gzip
        self._tail = b""  # compressed input not yet decompressed
        self._in_member = False  # a gzip member has started and not ended yet
        self._buf = memoryview(b"")
        self._limits = limits
        self._total = 0
        self._lines = 0
        self._run = 0  # bytes since the last newline
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self.saw_bad_utf8 = False
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            if self._done:
                return 0
            piece = self._next_piece()
            if piece is None:
                self._done = True
                self._finish_utf8()
                return 0
            if piece:
                self._inspect(piece)
                self._buf = memoryview(piece)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def _next_piece(self) -> bytes | None:
        if not self._is_gzip:
            return next(self._chunks, None)
        while True:
            if self._tail:
                try:
                    out = self._gzip.decompress(self._tail, _PIECE)
                except zlib.error as exc:
                    raise CsvDataError(f"invalid gzip data: {exc}") from None
                self._tail = self._gzip.unconsumed_tail
                self._in_member = True
                if self._gzip.eof:
                    # Concatenated gzip members are valid gzip (RFC 1952 §2.2).
                    self._tail = self._gzip.unused_data + self._tail
                    self._gzip = zlib.decompressobj(wbits=31)
                    self._in_member = False
                if out:
                    return out
                continue
            chunk = next(self._chunks, None)
            if chunk is None:
                if self._in_member:
                    raise CsvDataError("gzip data is truncated (the stream ended inside a member)")
                return None  # zero bytes in: reported as an empty file by the header check
            self._tail = bytes(chunk)

    def _inspect(self, piece: bytes) -> None:
        limits = self._limits
        if not self._total and not self._is_gzip and piece.startswith(b"\x1f\x8b"):
            raise CsvDataError("the data is gzip-compressed but was not declared as gzip")
        self._total += len(piece)
        if self._is_gzip and self._total > limits.max_decompressed_bytes:
            raise PayloadTooLarge(f"decompressed data exceeds {limits.max_decompressed_bytes} bytes")
        nul = piece.find(b"\x00")
        if nul != -1:
            line = self._lines + piece.count(b"\n", 0, nul) + 1
            raise CsvDataError(f"not CSV: NUL byte on line {line} (binary data?)")
        self._check_line_lengths(piece)
        self._lines += piece.count(b"\n")
        if not self.saw_bad_utf8 and (not piece.isascii() or self._utf8.getstate()[0]):
            try:
                self._utf8.decode(piece)
            except UnicodeDecodeError:
                self.saw_bad_utf8 = True

    def _check_line_lengths(self, piece: bytes) -> None:
        limit = self._limits.max_line_chars
        first = piece.find(b"\n")
        if first == -1:
            self._run += len(piece)
            if self._run > limit:
                self._line_too_long(self._lines + 1)
            return
        if self._run + first > limit:
            self._line_too_long(self._lines + 1)
        if len(piece) > limit:  # only then can a whole line fit inside this piece
            start, line = first + 1, self._lines + 2
            while (end := piece.find(b"\n", start)) != -1:
                if end - start > limit:
                    self._line_too_long(line)
                start, line = end + 1, line + 1
        self._run = len(piece) - 1 - piece.rfind(b"\n")
        if self._run > limit:
            self._line_too_long(self._lines + piece.count(b"\n") + 1)

    def _line_too_long(self, line: int) -> None:
        raise CsvDataError(f"line {line} is longer than {self._limits.max_line_chars} bytes: not CSV?")

    def _finish_utf8(self) -> None:
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            self.saw_bad_utf8 = True


class CsvStream:
    """Header plus batches of rows from one CSV body; see the module docstring for the rules."""

    def __init__(self, chunks: Iterable[bytes], *, gzip: bool = False, limits: CsvLimits | None = None):
        self.limits = limits or CsvLimits()
        self._source = _ByteSource(chunks, gzip=gzip, limits=self.limits)
        text = io.TextIOWrapper(
            io.BufferedReader(self._source, 1 << 16),
            encoding="utf-8-sig", errors="surrogateescape", newline="\n",
        )
        # The csv module's limit is process-wide; it is the only check cheap enough per field.
        csv.field_size_limit(self.limits.max_field_chars)
        self._reader = csv.reader(chain(text, iter(self._note_eof, True)), strict=False)
        self.received = 0
        self._offset = 0  # lines before the text this reader sees (block mode)
        self._final = True
        self._eof_state: tuple[int, int, int] | None = None
        self._batch: Batch | None = None
        self.tail_line: int | None = None
        self.header = self._read_header()
        self._mark = self._reader.line_num  # end line of the last record dealt with

    @classmethod
    def block(cls, data: bytes, header: list[str], first_line: int, *, final: bool,
              limits: CsvLimits | None = None) -> CsvStream:
        """Records of one block of the body that starts at a record boundary on ``first_line``.

        ``data`` ends with a newline unless it is the end of the body (``final``). When a record
        is still open at the end of a non-final block (a quoted field running on past it), that
        record is left out and :attr:`tail_line` says on which line it starts: the caller reads
        it again together with the next block. Decoding, UTF-8 checks and line numbers are those
        of the streaming reader, so a body cut into blocks reads exactly like the whole body."""
        self = cls.__new__(cls)
        self.limits = limits or CsvLimits()
        self._source = _BlockFlags(data)
        text = data.decode("utf-8", "surrogateescape")
        csv.field_size_limit(self.limits.max_field_chars)
        self._eof_state = None
        self._batch = None
        lines = chain(io.StringIO(text, newline="\n"), iter(self._note_eof, True))
        self._reader = csv.reader(lines, strict=False)
        self.received = 0
        self._offset = first_line - 1
        self._final = final
        self.tail_line = None
        self.header = header
        self._mark = self._offset
        return self

    def _note_eof(self) -> bool:
        """Called once, when the reader asks for a line past the block: what was read by then."""
        b = self._batch
        self._eof_state = (len(b.rows), len(b._others), len(b.rejects)) if b is not None else (0, 0, 0)
        return True

    def _read_header(self) -> list[str]:
        try:
            row = next((r for r in self._reader if r), None)
        except csv.Error as exc:
            raise CsvDataError(f"the header row is not valid CSV: {exc}") from None
        if row is None:
            raise CsvDataError("the file is empty: a header row naming the columns is required")
        if any(_ESCAPED_BYTE.search(name) for name in row):
            raise CsvDataError("the header row is not valid UTF-8: is this a CSV file?")
        if len(row) > self.limits.max_columns:
            raise CsvDataError(f"the header has {len(row)} columns; at most {self.limits.max_columns}")
        names = [name.strip() for name in row]
        if not any(names):
            raise CsvDataError("the header row is blank: a header row naming the columns is required")
        seen: set[str] = set()
        for i, name in enumerate(names, 1):
            if not name:
                raise CsvDataError(f"column {i} of the header has no name")
            if name in seen:
                raise CsvDataError(f"duplicate column name {name!r} in the header")
            seen.add(name)
        return names

    def batches(self, size: int = 8192) -> Iterator[Batch]:
        reader, ncols, off = self._reader, len(self.header), self._offset
        eof = False
        while not eof:
            batch = self._batch = Batch(self._mark)
            rows, others, rejects = batch.rows, batch._others, batch.rejects
            append = rows.append
            while True:
                wanted = size - len(rows) - len(others)
                try:
                    for row in islice(reader, wanted):
                        if len(row) == ncols:
                            append(row)
                        elif row:
                            end = off + reader.line_num
                            start = end - sum(f.count("\n") for f in row)
                            if self._eof_state is not None and row[-1].endswith("\n"):
                                start += 1  # a quote left open at the end took the last line end in
                            others.append((start, end))
                            reason = f"expected {ncols} fields, found {len(row)}"
                            if self._source.saw_bad_utf8 and any(map(_ESCAPED_BYTE.search, row)):
                                reason = "invalid UTF-8 in row"
                            rejects.append(Reject(start, row, reason))
                        else:
                            others.append((off + reader.line_num, off + reader.line_num))
                except csv.Error as exc:
                    batch._end = off + reader.line_num
                    start = batch._last_end() + 1
                    others.append((start, off + reader.line_num))
                    rejects.append(Reject(start, [], self._csv_error_reason(exc)))
                    continue
                if len(rows) + len(others) < size:
                    eof = True
                break
            batch._end = self._mark = off + reader.line_num
            if self._eof_state is not None:
                eof = True  # the block is used up (the last record may still be open)
                if not self._final:
                    self._cut_open_record(batch)
            if self._source.saw_bad_utf8:
                self._reject_bad_utf8(batch)
            self.received += len(batch.rows) + len(batch.rejects)
            if batch.rows or batch.rejects:
                yield batch

    def _cut_open_record(self, batch: Batch) -> None:
        """Leave out a record the end of a non-final block cut short (see :meth:`block`)."""
        state = self._eof_state
        if (len(batch.rows), len(batch._others), len(batch.rejects)) == state:
            return  # the block ended between records
        if len(batch.rows) > state[0]:
            batch.rows.pop()
        else:
            batch._others.pop()
            batch.rejects.pop()
        batch._starts = None
        self.tail_line = batch._last_end() + 1
        batch._end = self.tail_line - 1

    def _csv_error_reason(self, exc: csv.Error) -> str:
        if "field limit" in str(exc):
            return f"a field is longer than {self.limits.max_field_chars} characters"
        if "new-line character" in str(exc):
            return "malformed CSV: carriage return inside an unquoted field"
        return f"malformed CSV: {exc}"

    @staticmethod
    def _reject_bad_utf8(batch: Batch) -> None:
        keep = [not any(map(_ESCAPED_BYTE.search, row)) for row in batch.rows]
        if all(keep):
            return
        for i, (row, ok) in enumerate(zip(batch.rows, keep)):
            if not ok:
                batch.rejects.append(Reject(batch.line_of(i), row, "invalid UTF-8 in row"))
        batch._keep(keep)

    def __iter__(self) -> Iterator[tuple[int, list[str]] | Reject]:
        """Records in file order: ``(start_line, fields)`` or a :class:`Reject` (convenient, slow)."""
        for batch in self.batches():
            items: list[tuple[int, list[str]] | Reject] = [
                (batch.line_of(i), r) for i, r in enumerate(batch.rows)
            ]
            items.extend(batch.rejects)
            items.sort(key=lambda item: item[0])
            yield from items


class _BlockFlags:
    """What :class:`_ByteSource` would have learnt about a block's bytes (UTF-8 validity)."""

    __slots__ = ("saw_bad_utf8",)

    def __init__(self, data: bytes):
        try:
            data.decode("utf-8")
            self.saw_bad_utf8 = False
        except UnicodeDecodeError:
            self.saw_bad_utf8 = True


def open_csv(chunks: Iterable[bytes], *, gzip: bool = False, limits: CsvLimits | None = None) -> CsvStream:
    """Read the header now (fatal problems surface here) and return the stream of records."""
    return CsvStream(chunks, gzip=gzip, limits=limits)


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
_SPECIAL = re.compile(r'["\r\n]')


def format_row(fields: Iterable[str]) -> str:
    """One RFC 4180 record with its ``\\n`` terminator; quotes only where needed."""
    fields = list(fields)
    line = ",".join(fields)
    if _SPECIAL.search(line) is None and line.count(",") == len(fields) - 1:
        if line or len(fields) > 1:
            return line + "\n"
        return '""\n'  # a lone empty field would read back as a blank line, which is skipped
    return ",".join(
        '"' + f.replace('"', '""') + '"' if _NEEDS_QUOTES.search(f) else f for f in fields
    ) + "\n"


class CsvWriter:
    """RFC 4180 writer with ``\\n`` line endings over a binary file; tracks bytes written."""

    def __init__(self, fileobj: IO[bytes], *, flush_rows: int = 4096):
        self._file = fileobj
        self._buf: list[str] = []
        self._flush_rows = flush_rows
        self.bytes_written = 0

    def writerow(self, fields: Iterable[str]) -> None:
        self._buf.append(format_row(fields))
        if len(self._buf) >= self._flush_rows:
            self.flush()

    def write_formatted(self, line: str) -> None:
        """Append a record already produced by :func:`format_row`."""
        self._buf.append(line)
        if len(self._buf) >= self._flush_rows:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            data = "".join(self._buf).encode("utf-8")
            self._buf.clear()
            self._file.write(data)
            self.bytes_written += len(data)
