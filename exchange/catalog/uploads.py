"""PUSH producer uploads: stream a CSV body to the blob store, counting rows and hashing as it goes.

The body is never held whole in memory. Gzip bodies are inflated incrementally with a bound on the
inflated size (zip bombs get 413). The blob only becomes visible when the upload completed, so a
failed upload leaves the previous data version in place.
"""
from __future__ import annotations

import csv
import hashlib
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import CsvDataError, PayloadTooLarge
from ..identifiers import IDENTIFIER_TYPES

KNOWN_IDENTIFIERS = IDENTIFIER_TYPES  # defined once, in exchange/identifiers.py


@dataclass
class UploadStats:
    bytes: int = 0
    records: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    header: list[str] | None = None
    _head: bytearray = field(default_factory=bytearray)
    _in_quotes: bool = False
    _last: int = 10  # last byte seen (newline at start)

    @property
    def rows(self) -> int:
        return max(0, self.records - 1)


def inflate(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    d = zlib.decompressobj(wbits=47)  # gzip or zlib, auto-detected
    total = 0
    for chunk in chunks:
        try:
            out = d.decompress(chunk, 1 << 20)
            while True:
                total += len(out)
                if total > max_bytes:
                    raise PayloadTooLarge("The decompressed upload exceeds the size limit.")
                if out:
                    yield out
                if not d.unconsumed_tail:
                    break
                out = d.decompress(d.unconsumed_tail, 1 << 20)
        except zlib.error:
            raise CsvDataError("The body is not valid gzip.") from None
    if not d.eof:
        raise CsvDataError("The gzip body is truncated.")
    tail = d.flush()
    if tail:
        yield tail


def _count(stats: UploadStats, chunk: bytes) -> None:
    # Records end at newlines outside quotes; a doubled quote toggles twice, so parity is enough.
    if b'"' not in chunk and not stats._in_quotes:
        stats.records += chunk.count(b"\n")
    else:
        parts = chunk.split(b'"')
        for i, part in enumerate(parts):
            if i:
                stats._in_quotes = not stats._in_quotes
            if not stats._in_quotes:
                stats.records += part.count(b"\n")
    stats._last = chunk[-1]


def _parse_header(head: bytes) -> list[str]:
    if b"\x00" in head:
        raise CsvDataError("The body is not CSV (it contains NUL bytes).")
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvDataError("The header row is not valid UTF-8.") from None
    header = next(csv.reader(io.StringIO(text)), [])
    header = [h.strip() for h in header]
    if not header or all(not h for h in header):
        raise CsvDataError("The CSV has no header row.")
    if any(not h for h in header):
        raise CsvDataError("A column in the header row has no name.")
    if len(set(header)) != len(header):
        raise CsvDataError("The header row names a column twice.")
    return header


def measured(chunks: Iterable[bytes], stats: UploadStats, *, max_bytes: int) -> Iterator[bytes]:
    """Pass chunks through, recording size, SHA-256, record count and the header."""
    for chunk in chunks:
        if not chunk:
            continue
        stats.bytes += len(chunk)
        if stats.bytes > max_bytes:
            raise PayloadTooLarge("The upload exceeds the size limit.")
        if stats.header is None:
            stats._head.extend(chunk)
            if b"\n" in stats._head or len(stats._head) > 1 << 20:
                stats.header = _parse_header(bytes(stats._head))
        stats.sha256.update(chunk)
        _count(stats, chunk)
        yield chunk
    if stats.header is None:
        if not stats._head.strip():
            raise CsvDataError("The body is empty: a CSV with a header row is required.")
        stats.header = _parse_header(bytes(stats._head))
    if stats._last != 10:
        stats.records += 1  # last record without a trailing newline


def split_columns(header: list[str]) -> tuple[list[str], list[str]]:
    ids = [h for h in header if h in KNOWN_IDENTIFIERS]
    return ids, [h for h in header if h not in ids]
