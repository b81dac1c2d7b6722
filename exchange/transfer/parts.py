"""Cutting a CSV file into parts of at most N records without parsing a row (for PUSH deliveries).

Works on bytes: a record ends at a newline outside quotes, and quote parity per line tells which
newlines are inside a quoted field (RFC 4180 doubles quotes inside fields, so parity holds), so no
row is decoded or re-encoded. Every part starts with the header.

The file is read in large blocks of whole lines. A block without any quote (the usual output of
a hashed share), read while no quoted field is open, has a record per newline: its cut points are
found by counting newlines in C rather than looking at every line in Python. Other blocks go line
by line. Both give the same parts.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

READ_BYTES = 8 << 20


def csv_parts(fh: BinaryIO, size: int, *, read_bytes: int = READ_BYTES) -> Iterator[tuple[bytes, int]]:
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
    for block in _line_blocks(fh, read_bytes):
        pos = 0
        if not inside and b'"' not in block:
            whole = block.rfind(b"\n") + 1  # an unterminated last line (at the end of the file) goes below
            lines = block.count(b"\n", 0, whole)
            while lines >= size - rows:
                need = size - rows
                end = _after_newlines(block, pos, need)
                buf.append(block[pos:end])
                yield b"".join(buf), size
                buf, rows, pos, lines = [header], 0, end, lines - need
            if pos < whole:
                buf.append(block[pos:whole])
                rows += lines
            pos = whole
            if pos == len(block):
                continue
        for line in io.BytesIO(block[pos:] if pos else block):
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


def _line_blocks(fh: BinaryIO, read_bytes: int) -> Iterator[bytes]:
    """The rest of ``fh`` in blocks that end at a newline (the last block: wherever the file ends)."""
    carry = b""
    while True:
        data = fh.read(read_bytes)
        if not data:
            if carry:
                yield carry
            return
        data = carry + data if carry else data
        cut = data.rfind(b"\n") + 1
        if not cut:
            carry = data
            continue
        carry = data[cut:]
        yield data[:cut] if carry else data


def _after_newlines(block: bytes, pos: int, n: int) -> int:
    """The index just past the ``n``-th newline of ``block`` at or after ``pos`` (there are at least ``n``)."""
    if n <= 0:
        return pos
    while n > 256:
        # guess from the average line length from pos on, a little short, then count what the guess holds
        rest_lines = block.count(b"\n", pos)
        guess = pos + (len(block) - pos) * (n - n // 64) // rest_lines
        got = block.count(b"\n", pos, guess)
        if got >= n:  # a skewed block: fall back to halving the range
            guess = pos + (guess - pos) // 2
            got = block.count(b"\n", pos, guess)
            if got >= n:
                break
        pos, n = guess, n - got
    for _ in range(n):
        pos = block.index(b"\n", pos) + 1
    return pos
