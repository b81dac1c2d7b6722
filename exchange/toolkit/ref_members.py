"""Member files of the reference PUSH consumer: keys, row validation and streaming rewrites.

A destination audience is one CSV file whose rows are its members. A member is identified by its
identifier columns: all identifier columns of the data at hand form the key, and a row whose
identifier values are all empty cannot be a member. These helpers read, validate and rewrite such
files without ever holding a whole file in memory; the caller decides what to keep.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from exchange.toolkit.ref_csv import CsvRows, split_columns

Key = tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """Column layout of some CSV data: header, identifier columns and their positions."""

    header: list[str]
    key_columns: tuple[str, ...]
    key_index: tuple[int, ...]

    @classmethod
    def of(cls, header: list[str], extra_identifiers: Iterable[str] = ()) -> Layout:
        identifiers, _ = split_columns(header, extra_identifiers)
        return cls(list(header), tuple(identifiers), tuple(header.index(c) for c in identifiers))

    def key(self, row: list[str]) -> Key:
        return tuple(row[i] for i in self.key_index)

    def projector(self, columns: Iterable[str]) -> Callable[[list[str]], Key]:
        """Key of a row of *this* layout over ``columns`` (absent columns read as empty)."""
        positions = [self.header.index(c) if c in self.header else -1 for c in columns]
        return lambda row: tuple(row[p] if p >= 0 else "" for p in positions)

    def mapper(self, target: list[str]) -> Callable[[list[str]], list[str]]:
        """Re-lay a row of this layout out in ``target``'s column order, padding with empty values."""
        if target == self.header:
            return lambda row: row
        positions = [self.header.index(c) if c in self.header else -1 for c in target]
        return lambda row: [row[p] if p >= 0 else "" for p in positions]


def union_header(first: list[str], second: list[str]) -> list[str]:
    """``first`` followed by the columns of ``second`` it lacks (column order stays stable)."""
    return first + [column for column in second if column not in first]


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0


def valid_rows(rows: CsvRows, layout: Layout, tally: Tally) -> Iterator[tuple[Key, list[str]]]:
    """(key, row) for every usable row; counts accepted and rejected rows in ``tally``.

    A row is rejected when its field count differs from the header's or when every identifier value
    is empty; such rows are counted, not fatal (SPEC §6).
    """
    width = len(layout.header)
    for _line, row in rows:
        if len(row) != width:
            tally.rejected += 1
            continue
        key = layout.key(row)
        if not any(value.strip() for value in key):
            tally.rejected += 1
            continue
        tally.accepted += 1
        yield key, row


def read_stored_header(path: Path) -> list[str] | None:
    """Header of a stored member file, or None when there is no file yet."""
    try:
        with path.open("r", encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), [])
    except FileNotFoundError:
        return None


def iter_stored(path: Path, width: int) -> Iterator[list[str]]:
    """Rows of a stored member file (header skipped), forced to ``width`` fields."""
    with path.open("r", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            if not row:
                continue
            if len(row) != width:
                # Only a hand-edited file can get here; keep the member rather than lose it.
                row = (row + [""] * width)[:width]
            yield row


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, the identity of its content for caches; None when absent."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def new_writer(handle) -> csv.Writer:  # type: ignore[name-defined]
    return csv.writer(handle, lineterminator="\n")


def write_atomically(target: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    """Write a member file through a temporary file in the same folder, then rename it into place.

    Readers see either the old file or the complete new one, never a half-written file.
    """
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            writer = new_writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
