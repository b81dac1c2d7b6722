"""CSV format helpers for the reference endpoint: column roles, safe names, streaming reads.

Nothing here knows about HTTP. The producer and consumer folders use these helpers to infer an
audience's identifiers from its header, to count rows without loading a file, and to turn a stream of
(possibly gzip-compressed) byte chunks into CSV rows with a bounded amount of memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: Identifier column names the protocol knows (SPEC §6); every other column is an attribute.
IDENTIFIER_NAMES: tuple[str, ...] = (
    "email",
    "email_sha256",
    "phone_e164",
    "phone_sha256",
    "maid",
    "cookie_id",
    "customer_id",
)

#: Read and write granularity; large enough that per-chunk Python overhead is negligible.
CHUNK_SIZE = 256 * 1024

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class CsvFormatError(ValueError):
    """The bytes are not usable CSV (bad gzip, bad UTF-8, binary data, no header)."""


def split_columns(
    header: Iterable[str], extra_identifiers: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Split a header into (identifier columns, attribute columns), each in header order."""
    known = set(IDENTIFIER_NAMES) | set(extra_identifiers)
    identifiers: list[str] = []
    attributes: list[str] = []
    for column in header:
        (identifiers if column in known else attributes).append(column)
    return identifiers, attributes


def is_safe_id(audience_id: str) -> bool:
    """True when ``audience_id`` can be used as a file stem as is (no path tricks, no hidden files)."""
    return bool(_SAFE_ID.match(audience_id))


def safe_file_stem(audience_id: str) -> str:
    """Map a destination audience id (possibly a display name like "Loyal customers") to a file stem.

    Runs of characters outside ``[A-Za-z0-9._-]`` become ``_`` and dots and underscores are trimmed
    from both ends, so the result has no slash, never names a hidden file and never climbs out of the
    folder. Distinct ids may collide ("a b" and "a_b"); the reference endpoint accepts that in
    exchange for readable file names.
    """
    stem = _UNSAFE_CHARS.sub("_", audience_id).strip("._")[:200]
    return stem or "_"


def read_header(path: Path) -> list[str]:
    """The header row of a CSV file (a UTF-8 BOM is tolerated); empty list for an empty file."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        for row in csv.reader(handle):
            return [column.strip() for column in row]
    return []


def scan_file(path: Path) -> tuple[int, str]:
    """Count the data rows of a CSV file and hash its content in one streaming pass.

    Rows are records, not lines: a newline inside a quoted field does not start a row. Quote state is
    tracked by splitting each chunk on ``"`` (an escaped ``""`` toggles twice, so it cancels out),
    which keeps the scan in C speed. A final record without a trailing newline counts too. Blank
    lines are counted as rows, a known inexactness of this metadata figure.
    Returns (data rows excluding the header, hex SHA-256 of the bytes).
    """
    digest = hashlib.sha256()
    records = 0
    in_quotes = False
    last_byte = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            if b'"' not in chunk and not in_quotes:
                records += chunk.count(b"\n")
            else:
                for index, segment in enumerate(chunk.split(b'"')):
                    if index:
                        in_quotes = not in_quotes
                    if not in_quotes:
                        records += segment.count(b"\n")
            last_byte = chunk[-1:]
    if last_byte != b"\n":
        records += 1
    return max(records - 1, 0), digest.hexdigest()


class _ChunkStream(io.RawIOBase):
    """A read-only raw stream over an iterator of byte chunks, so ``io``'s C readers can sit on top."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def iter_body_chunks(stream, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Read a binary file-like object in chunks until it is exhausted."""
    while chunk := stream.read(chunk_size):
        yield chunk


def gunzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream chunk by chunk; raise CsvFormatError on corrupt or truncated data."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    mid_member = False
    try:
        for chunk in chunks:
            # Concatenated gzip members are legal (RFC 1952): start a new member after each end.
            while chunk:
                mid_member = True
                out = decompressor.decompress(chunk)
                if out:
                    yield out
                if decompressor.eof:
                    mid_member = False
                    chunk = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                else:
                    chunk = b""
    except zlib.error as exc:
        raise CsvFormatError(f"the body is not valid gzip: {exc}") from exc
    if mid_member:
        raise CsvFormatError("the gzip stream is truncated")


class CsvRows:
    """Rows of a CSV byte stream, decoded strictly as UTF-8 (BOM tolerated), header read first.

    ``reading()`` gives the rows after the header; errors in the bytes surface as
    :class:`CsvFormatError` while iterating, so a caller can stop mid-stream.
    """

    def __init__(self, chunks: Iterable[bytes], *, gzip: bool = False):
        source: Iterable[bytes] = gunzip_chunks(chunks) if gzip else chunks
        raw = _ChunkStream(iter(source))
        text = io.TextIOWrapper(io.BufferedReader(raw, CHUNK_SIZE), encoding="utf-8-sig", newline="")
        self._reader = csv.reader(text)
        self.header = self._read_header()

    def _read_header(self) -> list[str]:
        try:
            for row in self._reader:
                if row:
                    header = [column.strip() for column in row]
                    _check_header(header)
                    return header
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CsvFormatError(f"the header is not valid CSV/UTF-8: {exc}") from exc
        raise CsvFormatError("the body is empty: a header row is required")

    @contextmanager
    def reading(self) -> Iterator[Iterator[list[str]]]:
        """The csv reader over the data rows (blank lines come as ``[]``), iterated at C speed.

        Decoding and CSV errors raised while the caller iterates become :class:`CsvFormatError`.
        """
        reader = self._reader
        try:
            yield reader
        except UnicodeDecodeError as exc:
            raise CsvFormatError(f"the body is not valid UTF-8 near line {reader.line_num + 1}") from exc
        except csv.Error as exc:
            raise CsvFormatError(f"malformed CSV near line {reader.line_num}: {exc}") from exc


def _check_header(header: list[str]) -> None:
    if any("\x00" in column for column in header):
        raise CsvFormatError("the body looks binary, not CSV")
    if any(not column for column in header):
        raise CsvFormatError("the header has an empty column name")
    if len(set(header)) != len(header):
        raise CsvFormatError("the header names a column twice")
