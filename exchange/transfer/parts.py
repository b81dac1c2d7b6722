"""Cutting a CSV file into parts of at most N records without parsing a row (for PUSH deliveries).

Works on bytes: a record ends at a newline outside quotes, and quote parity per line tells which
newlines are inside a quoted field (RFC 4180 doubles quotes inside fields, so parity holds), so no
row is decoded or re-encoded. Every part starts with the header.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO


def csv_parts(fh: BinaryIO, size: int) -> Iterator[tuple[bytes, int]]:
    """Bodies of at most ``size`` records, each with the header, as ``(body, records)``."""
    if size < 1:
        raise ValueError("a part holds at least one record")
    header = fh.readline()
    while header.count(b'"') % 2:
        more = fh.readline()
        if not more:
            break
        header += more
    buf: list[bytes] = [header]
    rows, inside = 0, False
    for line in fh:
        buf.append(line)
        if b'"' in line and line.count(b'"') % 2:
            inside = not inside
        if not inside:
            rows += 1
            if rows == size:
                yield b"".join(buf), rows
                buf, rows = [header], 0
    if rows:
        yield b"".join(buf), rows
