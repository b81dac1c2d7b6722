"""Member files of the reference PUSH consumer: keys, row validation and streaming rewrites.

A destination audience is one CSV file whose rows are its members. A member is identified by its
identifier columns: all identifier columns of the data at hand form the key, and a row whose
identifier values are all empty cannot be a member. These helpers read, validate and rewrite such
files without ever holding a whole file in memory; the caller decides what to keep.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from pathlib import Path

from exchange.toolkit.ref_csv import CsvRows, split_columns

#: A member's key: its identifier values joined by the unit separator (one compact string per
#: member rather than a tuple, which halves the memory of key sets). A value containing U+001F
#: could alias another key; such values do not occur in identifiers.
Key = str
KEY_SEPARATOR = "\x1f"
_BLANK = KEY_SEPARATOR + " \t\r\n"


def key_function(positions: Sequence[int]) -> Callable[[list[str]], Key]:
    """The key of a row from the values at ``positions`` (-1 reads as an empty value)."""
    if positions and all(p >= 0 for p in positions):
        if len(positions) == 1:
            return itemgetter(positions[0])
        getter, join = itemgetter(*positions), KEY_SEPARATOR.join
        return lambda row: join(getter(row))
    return lambda row: KEY_SEPARATOR.join([row[p] if p >= 0 else "" for p in positions])


@dataclass(frozen=True)
class Layout:
    """Column layout of some CSV data: header, identifier columns and their positions."""

    header: list[str]
    key_columns: tuple[str, ...]
    key_index: tuple[int, ...]
    key: Callable[[list[str]], Key] = field(compare=False, repr=False)

    @classmethod
    def of(cls, header: list[str], extra_identifiers: Iterable[str] = ()) -> Layout:
        identifiers, _ = split_columns(header, extra_identifiers)
        index = tuple(header.index(c) for c in identifiers)
        return cls(list(header), tuple(identifiers), index, key_function(index))

    def projector(self, columns: Iterable[str]) -> Callable[[list[str]], Key]:
        """Key of a row of *this* layout over ``columns`` (absent columns read as empty)."""
        return key_function([self.header.index(c) if c in self.header else -1 for c in columns])

    def mapper(self, target: list[str]) -> Callable[[list[str]], list[str]] | None:
        """Re-lay a row of this layout out in ``target``'s column order, padding with empty values.

        None when the layouts already agree, so hot loops can skip the call.
        """
        if target == self.header:
            return None
        positions = [self.header.index(c) if c in self.header else -1 for c in target]
        return lambda row: [row[p] if p >= 0 else "" for p in positions]


def union_header(first: list[str], second: list[str]) -> list[str]:
    """``first`` followed by the columns of ``second`` it lacks (column order stays stable)."""
    return first + [column for column in second if column not in first]


def is_blank_key(key: Key) -> bool:
    """True when every identifier value is empty: such a row cannot be a member."""
    return not key.strip(_BLANK)


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0


def valid_rows(rows: CsvRows, layout: Layout, tally: Tally) -> Iterator[tuple[Key, list[str]]]:
    """(key, row) for every usable row; counts accepted and rejected rows in ``tally``.

    A row is rejected when its field count differs from the header's or when every identifier value
    is empty; such rows are counted, not fatal (SPEC §6). Blank lines are skipped silently.
    """
    width, key_of, blank = len(layout.header), layout.key, _BLANK
    with rows.reading() as reader:
        for row in reader:
            if len(row) != width:
                if row:
                    tally.rejected += 1
                continue
            key = key_of(row)
            if not key.strip(blank):
                tally.rejected += 1
                continue
            tally.accepted += 1
            yield key, row


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a hot loop over many rows.

    Every parsed row is a new list, so the collector runs every few hundred rows and, once a large
    key set is alive, each full collection walks all of it: that doubled the CPU time of a
    million-row replace. Rows hold no reference cycles, so nothing is lost by pausing. The pause is
    counted across threads and the collector comes back when the last hot loop ends.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


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


def format_rows(rows: Iterable[list[str]]) -> str:
    """CSV text of ``rows`` exactly as ``csv.writer`` (minimal quoting, ``\n``) would write them.

    About twice as fast as the csv writer, which calls ``write`` once per row: rows that need no
    quoting (no comma inside a field, no quote, no line break, not one empty field) are joined as is,
    and only the others go through the csv module.
    """
    join = ",".join
    lines = []
    for row in rows:
        line = join(row)
        if not line or '"' in line or "\n" in line or "\r" in line or line.count(",") != len(row) - 1:
            quoted = io.StringIO()
            # The writer decides quoting by the line terminator's characters: keep "\n" and cut it off.
            csv.writer(quoted, lineterminator="\n").writerow(row)
            line = quoted.getvalue()[:-1]
        lines.append(line)
    lines.append("")
    return "\n".join(lines) if len(lines) > 1 else ""


def write_rows(handle, rows: Iterable[list[str]], batch: int = 10_000) -> None:
    """Write rows to a text file in batches: one ``write`` per batch keeps memory flat and calls few."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, batch)):
        handle.write(format_rows(chunk))


def write_atomically(target: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    """Write a member file through a temporary file in the same folder, then rename it into place.

    Readers see either the old file or the complete new one, never a half-written file.
    """
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            write_rows(handle, [header])
            write_rows(handle, rows)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
