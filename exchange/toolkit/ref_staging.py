"""A replace in progress at the reference PUSH consumer: parts staged in a hidden file.

Part 1 of a ``replace`` opens the staging file, each part appends its rows (dropping keys already
staged), and the last part renames the staging file over the audience file in one atomic step, so
readers keep seeing the old members until the new set is complete. A part that fails half-way is
rolled back (file truncated, its keys forgotten) so that a retry of that part starts clean.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from exchange.toolkit.ref_csv import CsvRows
from exchange.toolkit.ref_members import (
    Key,
    Layout,
    Tally,
    format_rows,
    is_blank_key,
    iter_stored,
    union_header,
    write_rows,
)

STAGING_GLOB = ".*.tmp"
WRITE_BATCH = 10_000


class StagedReplace:
    """The staged member set of one replace; the caller serialises access (per-audience lock)."""

    def __init__(self, target: Path, total_parts: int, extra_identifiers: Iterable[str] = ()):
        self.target = target
        self.total_parts = total_parts
        self.next_part = 1
        self.path = target.parent / f".{target.stem}.replace-{uuid.uuid4().hex[:12]}.tmp"
        self._extra = tuple(extra_identifiers)
        self._layout: Layout | None = None
        self._keys: set[Key] = set()

    @staticmethod
    def remove_leftovers(folder: Path) -> None:
        """Delete staging and temporary files an earlier, interrupted process left behind."""
        for leftover in folder.glob(STAGING_GLOB):
            leftover.unlink(missing_ok=True)

    def accepts(self, number: int) -> bool:
        """The next part in sequence, or a re-send of the part just applied (harmless: keys dedupe)."""
        return number in (self.next_part, self.next_part - 1) and number <= self.total_parts

    def append(self, number: int, rows: CsvRows) -> Tally:
        """Stage the rows of part ``number``; on any error the staging file is left as it was.

        This is the hot loop of a large replace, so it iterates the csv reader directly and writes
        in batches instead of going through per-row helpers.
        """
        self._adopt_header(rows.header)
        layout = self._layout
        assert layout is not None
        incoming = Layout.of(rows.header, self._extra)
        relay, stage_key, key_of = incoming.mapper(layout.header), layout.key, incoming.key
        width, keys, tally = len(rows.header), self._keys, Tally()
        added: list[Key] = []
        batch: list[list[str]] = []
        offset = self.path.stat().st_size
        try:
            with self.path.open("a", encoding="utf-8", newline="") as handle, rows.reading() as reader:
                for row in reader:
                    if len(row) != width:
                        tally.rejected += bool(row)  # blank lines are not rows
                        continue
                    key = key_of(row)
                    if is_blank_key(key):
                        tally.rejected += 1
                        continue
                    tally.accepted += 1
                    if relay is not None:
                        row = relay(row)
                        key = stage_key(row)
                    if key in keys:
                        continue  # first row of a key wins within one replace
                    keys.add(key)
                    added.append(key)
                    batch.append(row)
                    if len(batch) >= WRITE_BATCH:
                        handle.write(format_rows(batch))
                        batch.clear()
                handle.write(format_rows(batch))
        except BaseException:
            os.truncate(self.path, offset)
            keys.difference_update(added)
            raise
        self.next_part = max(self.next_part, number + 1)
        return tally

    def commit(self) -> tuple[Layout, set[Key]]:
        """Make the staged set the audience's members; returns its layout and keys for caching."""
        assert self._layout is not None
        os.replace(self.path, self.target)
        return self._layout, self._keys

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def _adopt_header(self, header: list[str]) -> None:
        if self._layout is None:
            with self.path.open("w", encoding="utf-8", newline="") as handle:
                write_rows(handle, [header])
            self._layout = Layout.of(header, self._extra)
            return
        old = self._layout
        if all(column in old.header for column in header):
            return
        # A later part brings new columns: re-lay the staged rows out under the union header.
        new = Layout.of(union_header(old.header, header), self._extra)
        relay = old.mapper(new.header)
        rewritten = self.path.with_suffix(".union.tmp")
        keys: set[Key] = set()

        def relaid() -> Iterator[list[str]]:
            for row in iter_stored(self.path, len(old.header)):
                row = relay(row) if relay is not None else row
                keys.add(new.key(row))
                yield row

        with rewritten.open("w", encoding="utf-8", newline="") as handle:
            write_rows(handle, [new.header])
            write_rows(handle, relaid())
        os.replace(rewritten, self.path)
        self._layout, self._keys = new, keys
