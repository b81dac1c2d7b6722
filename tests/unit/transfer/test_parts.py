"""csv_parts: the block-wise cutter gives exactly the parts of the obvious line-by-line cutter."""
from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.transfer.parts import csv_parts


def reference_parts(data: bytes, size: int) -> list[tuple[bytes, int]]:
    """Line by line: a record ends at a newline when the quotes seen so far are balanced."""
    fh = io.BytesIO(data)
    header = fh.readline()
    while header.count(b'"') % 2:
        more = fh.readline()
        if not more:
            break
        header += more
    out, buf, rows, inside = [], [header], 0, False
    for line in fh:
        buf.append(line)
        if line.count(b'"') % 2:
            inside = not inside
        if not inside:
            rows += 1
            if rows == size:
                out.append((b"".join(buf), rows))
                buf, rows = [header], 0
    if rows:
        out.append((b"".join(buf), rows))
    return out


PIECES = st.sampled_from([b"a", b"bb", b"\n", b"\n", b'"', b",", b"\r\n", b"0123456789abcdef" * 4, b"\n\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=400), st.integers(1, 40), st.sampled_from([1, 3, 16, 1 << 20]))
def test_same_parts_as_line_by_line(pieces, size, read_bytes):
    data = b"".join(pieces)
    assert list(csv_parts(io.BytesIO(data), size, read_bytes=read_bytes)) == reference_parts(data, size)


def test_large_quote_free_blocks_are_cut_at_exact_record_counts():
    lines = [b"email_sha256,name\n"] + [b"%064x,n%d\n" % (i * 7919, i % 977) for i in range(60_000)]
    data = b"".join(lines) + b"last,no newline"
    for size, read_bytes in [(25_000, 1 << 16), (7, 1 << 20), (60_001, 1 << 20), (1, 1 << 12)]:
        parts = list(csv_parts(io.BytesIO(data), size, read_bytes=read_bytes))
        assert parts == reference_parts(data, size)
        assert sum(n for _, n in parts) == 60_001 and all(p.startswith(lines[0]) for p, _ in parts)


def test_skewed_line_lengths_and_a_quoted_field_across_blocks():
    data = (b"h\n" + b"\n" * 5000 + b"y" * 300_000 + b"\n" + b'"a\n' + b"b\n" * 3000 + b'c"\n' + b"z\n" * 4000)
    for size in (1, 999, 5001, 10_000):
        assert list(csv_parts(io.BytesIO(data), size, read_bytes=1 << 14)) == reference_parts(data, size)
