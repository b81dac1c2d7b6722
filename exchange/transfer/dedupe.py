"""Exact duplicate detection on the identifier key with bounded memory.

The transform writes every accepted row to a staging file in input order and calls
:meth:`Deduper.check` with the row's key and its position (first staging line, line count). Keys
are compared in full, never through a truncated hash, so no row is dropped unless it truly repeats
an earlier key. The **first occurrence wins** and the output keeps input order.

Memory stays bounded in two phases:

1. While the distinct keys seen fit in ``memory_bytes`` (32 MiB, estimated as key length + 100
   bytes each, ~200k SHA-256 keys) and ``memory_keys``, a plain set answers at once and duplicates
   never reach the staging file; small audiences are deduplicated in this single pass. (A larger
   budget measured no faster on 1M rows: a big set misses the CPU cache as often as the spill
   writes cost.)
2. Past that, the set is spilled to ``partitions`` temp files (hash-partitioned, so all copies of a
   key share one file, in input order) and every later key is appended there. :meth:`finish` then
   reads one partition at a time into a set and returns the staging lines of the later copies;
   :func:`copy_without` removes them while copying the staging file to the output.

A partition holds about ``rows / partitions`` keys (10M rows: ~156k keys, ~25 MB), so memory stays
flat up to ~50M rows with the default 64 partitions; raise ``partitions`` for larger audiences.
Python's ``hash`` only chooses the partition, so its per-process seed never changes the result.
"""
from __future__ import annotations

import heapq
import os
from array import array
from collections.abc import Callable, Iterator
from itertools import islice
from typing import IO

__all__ = ["Deduper", "copy_without"]

_KEY_OVERHEAD = 100  # str header (49-80 bytes) plus its set slot, per key held in memory


class Deduper:
    def __init__(self, workdir: str, *, memory_keys: int = 2_000_000, memory_bytes: int = 32 << 20,
                 partitions: int = 64, partition_of: Callable[[str], int] = hash):
        self._workdir = workdir
        self._memory_keys = memory_keys
        self._memory_bytes = memory_bytes
        self._bytes = 0
        self._partitions = partitions
        self._partition_of = partition_of
        self._seen: set[str] | None = set()
        self._files: list[IO[str]] = []
        self.duplicates = 0
        self.dropped_from_staging = 0  # the duplicates found by finish(): staged, then removed
        self.check: Callable[[str, int, int], bool] = self._check_in_memory

    @property
    def spilled(self) -> bool:
        return self._seen is None

    def _check_in_memory(self, key: str, start: int, nlines: int = 1) -> bool:
        """True when the row is new (to be staged); False for a duplicate known right away."""
        seen = self._seen
        if seen is None:  # callers may hold this bound method across the spill
            return self._check_spilled(key, start, nlines)
        if key in seen:
            self.duplicates += 1
            return False
        seen.add(key)
        self._bytes += len(key) + _KEY_OVERHEAD
        if self._bytes > self._memory_bytes or len(seen) >= self._memory_keys:
            self._spill()
        return True

    def _spill(self) -> None:
        self._files = [
            open(os.path.join(self._workdir, f"dedupe-{i:04d}.part"), "w",  # noqa: SIM115
                 encoding="utf-8", newline="", buffering=1 << 16)
            for i in range(self._partitions)
        ]
        self._check_spilled = self._make_spilled_check()
        for key in self._seen:
            self._check_spilled(key, "-")  # "-": already staged, the first occurrence by construction
        self._seen = None
        self.check = self._check_spilled

    def _make_spilled_check(self) -> Callable[[str, int, int], bool]:
        # One closure with everything bound locally: this runs once per row after the spill.
        writers = [f.write for f in self._files]
        count, partition_of = self._partitions, self._partition_of

        def check(key: str, start: int | str, nlines: int = 1) -> bool:
            if "\n" in key or "\\" in key:
                key = key.replace("\\", "\\\\").replace("\n", "\\n")
            position = start if nlines == 1 else f"{start}+{nlines}"
            writers[partition_of(key) % count](f"{position}\x00{key}\n")
            return True

        return check

    def finish(self) -> tuple[Iterator[int], dict[int, int]]:
        """Staging lines to drop (ascending) and the line counts of multi-line ones.

        Counts each dropped row in ``duplicates``. Empty when nothing was spilled."""
        if self._seen is not None:
            return iter(()), {}
        per_partition: list[array] = []
        multi: dict[int, int] = {}
        for f in self._files:
            f.close()
            drops = array("q")
            seen: set[str] = set()
            with open(f.name, encoding="utf-8", newline="\n") as part:
                for line in part:
                    position, _, key = line.partition("\x00")
                    if key not in seen:
                        seen.add(key)
                    elif position != "-":
                        start, _, count = position.partition("+")
                        drops.append(int(start))
                        if count:
                            multi[int(start)] = int(count)
            os.unlink(f.name)
            per_partition.append(drops)
            self.duplicates += len(drops)
            self.dropped_from_staging += len(drops)
        self._files = []
        return heapq.merge(*per_partition), multi

    def close(self) -> None:
        """Remove partition files (after an error or a cancellation too)."""
        for f in self._files:
            f.close()
            if os.path.exists(f.name):
                os.unlink(f.name)
        self._files = []


def copy_without(src: IO[bytes], dst: IO[bytes], drops: Iterator[int], multi: dict[int, int]) -> None:
    """Copy lines from ``src`` to ``dst`` except the records starting at the ``drops`` line numbers
    (0-based, ascending; ``multi`` gives the line count of records spanning several lines)."""
    position = 0
    for drop in drops:
        dst.writelines(islice(src, drop - position))
        skip = multi.get(drop, 1)
        for _ in islice(src, skip):
            pass
        position = drop + skip
    dst.writelines(src)
