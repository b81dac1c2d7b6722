"""Exact duplicate detection on the identifier key, in bounded memory, for block-parallel transforms.

The transform stages every accepted row in input order; a row's *position* is
``(block index << 32) | line within the block's staged output``, so positions order rows exactly
as the input does. Duplicates inside one block never reach staging (the block's own set drops
them, first occurrence first). Across blocks:

1. :func:`bucket_keys` (in the block worker) hash-partitions the block's staged keys into
   ``partitions`` buckets: all copies of a key land in the same bucket, whatever the block.
2. :class:`PartitionFiles` (in the coordinating process) appends each block's buckets, in block
   order, to one keys file and one positions file per partition.
3. :func:`later_copies` reads one partition at a time and returns the positions of every copy of
   a key that is not its first occurrence; the partitions are independent, so they are resolved
   in parallel by the block workers.
4. :func:`drop_lines` removes those records, block by block, rewriting the staging file in place.

Keys are compared in full (escaped only so that one key is one line), never through a truncated
hash. Partitioning uses Python's ``hash``, so every process of one transform must share one hash
seed (the workers are started with the same ``PYTHONHASHSEED``). Memory is one partition's keys:
~``rows / partitions`` keys (10M rows, 64 partitions: ~156k keys, ~30 MB).
"""
from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from operator import itemgetter
from typing import IO

import numpy as np

__all__ = ["PartitionFiles", "bucket_keys", "drop_lines", "later_copies"]


def _escape(key: str) -> str:
    return key.replace("\\", "\\\\").replace("\n", "\\n")


def bucket_keys(keys: list[str], positions: Sequence[int] | None, partitions: int, block: int
                ) -> list[tuple[int, bytes, bytes]]:
    """``(partition, keys as lines, positions as int64)`` for every non-empty partition.

    ``positions`` gives each key's staged line in the block (``None``: key ``i`` is on line ``i``).
    The grouping is done by numpy (a stable argsort of the partition numbers), not a loop per key."""
    n = len(keys)
    if not n:
        return []
    part = np.fromiter(map(hash, keys), dtype=np.int64, count=n) % partitions
    order = np.argsort(part, kind="stable")
    counts = np.bincount(part, minlength=partitions)
    place = (order if positions is None else np.asarray(positions, dtype=np.int64)[order]) | (block << 32)
    place = place.astype(np.int64)
    grouped = [keys[order[0]]] if n == 1 else list(itemgetter(*order.tolist())(keys))
    out = []
    start = 0
    for b, count in enumerate(counts.tolist()):
        if not count:
            continue
        bucket = grouped[start:start + count]
        text = "\n".join(bucket) + "\n"
        if "\\" in text or text.count("\n") != count:
            text = "\n".join(map(_escape, bucket)) + "\n"
        out.append((b, text.encode("utf-8", "surrogatepass"), place[start:start + count].tobytes()))
        start += count
    return out


class PartitionFiles:
    """The keys and positions files of every partition, appended to in block order."""

    def __init__(self, workdir: str, partitions: int):
        self.partitions = partitions
        self.paths = [(os.path.join(workdir, f"keys-{p:03d}.txt"), os.path.join(workdir, f"pos-{p:03d}.bin"))
                      for p in range(partitions)]
        self._files: list[tuple[IO[bytes], IO[bytes]] | None] = [None] * partitions
        self.used: set[int] = set()

    def append(self, buckets: list[tuple[int, bytes, bytes]]) -> None:
        for b, keys, positions in buckets:
            files = self._files[b]
            if files is None:
                kp, pp = self.paths[b]
                files = self._files[b] = (open(kp, "wb"), open(pp, "wb"))  # noqa: SIM115
                self.used.add(b)
            files[0].write(keys)
            files[1].write(positions)

    def close(self) -> None:
        for files in self._files:
            if files is not None:
                files[0].close()
                files[1].close()
        self._files = [None] * self.partitions


def later_copies(keys_path: str, positions_path: str) -> bytes:
    """Positions (int64, ascending) of the rows of one partition whose key occurred earlier."""
    with open(keys_path, "rb") as f:
        keys = f.read().split(b"\n")
    keys.pop()  # the text ends with a newline
    positions = array("q")
    with open(positions_path, "rb") as f:
        positions.frombytes(f.read())
    # Written in input order, so assigning from the end leaves each key's first position.
    first = dict(zip(reversed(keys), reversed(positions)))
    if len(first) == len(keys):
        return b""
    kept = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    return np.setdiff1d(np.frombuffer(positions, dtype=np.int64), kept, assume_unique=True).tobytes()


def drop_lines(data: bytes, first_line: int, drops: Sequence[int], multi: dict[int, int]) -> bytes:
    """``data`` (whole lines, from line ``first_line`` on) without the records starting at the
    ``drops`` line numbers; ``multi`` gives the line count of records spanning several lines."""
    lines: list[bytes | None] = list(data.split(b"\n"))
    for drop in drops:
        start = drop - first_line
        for k in range(start, start + multi.get(drop, 1)):
            lines[k] = None
    return b"\n".join([line for line in lines if line is not None])
