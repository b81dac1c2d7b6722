"""Where a row's CPU goes in the transform (SPEC §14): the profile that explains the remaining gap.

One 2 MiB block of the §14 audience (email → normalize_email + sha256, two attributes; ~1 %
duplicates, a few malformed emails) is run through the engine's own pieces in this process, each
timed as the minimum CPU time of several runs, in µs per row:

- ``block, plain path``: :meth:`BlockTransformer._run_plain` (what a worker does for a block);
- ``block, row path``: :meth:`BlockTransformer._run_rows` (the CSV reader + generated row loop,
  used for blocks with quotes or carriage returns) on the same block, for comparison;
- its parts: ``split`` (lines and fields), ``map`` (:class:`ColumnMapper`: normalize + hash),
  ``dedupe buckets`` (:func:`bucket_keys`);
- floors, the least any implementation in this interpreter pays: ``sha256 only`` (hashing the
  already-normalized emails with the same hash function) and ``csv.reader only``.

``rows/s per core`` is 1e6 / (µs per row): the block path's ceiling on one core, before the
coordinator, the fetch and the delivery take their share.
"""
from __future__ import annotations

import csv
import gc
import io
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = [
    {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
    {"source": "first_name", "target": "first_name", "transform": []},
    {"source": "country", "target": "country", "transform": []},
]


def _block(rows: int = 200_000, size: int = 2 << 20) -> bytes:
    rng = random.Random(7)
    names, countries = ["Alice", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Gus", "Hana"], ["FR", "DE", "US", "GB"]
    lines = []
    for i in range(rows):
        r = rng.random()
        j = rng.randrange(i) if r < 0.01 and i else i
        email = f"broken{i}.example.com" if r > 0.9995 else f" User{j}@Example.com"
        lines.append(f"{email},{names[i % 8]},{countries[i % 4]}\n")
    data = "".join(lines).encode()
    return data[:data.index(b"\n", size) + 1]


def _split(text: str) -> list[list[str]]:
    flat = ",".join(text.split("\n")[:-1]).split(",")
    return [flat[k::3] for k in range(3)]


def _cpu(fn, runs: int = 7) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best


def run() -> list[dict]:
    sys.path.insert(0, ROOT)
    from exchange.transfer.blocks import BlockSpec, BlockTransformer
    from exchange.transfer.columns import _sha256_small
    from exchange.transfer.csvio import CsvLimits
    from exchange.transfer.dedupe import bucket_keys

    data = _block()
    n = data.count(b"\n")
    spec = BlockSpec(RULES, ["email", "first_name", "country"], {"email_sha256"}, None, CsvLimits(), 64)
    t = BlockTransformer(spec)
    text = data.decode()
    lines = text.split("\n")[:-1]
    source = [col[:] for col in map(list, zip(*(line.split(",") for line in lines)))]
    mapped = t.columns.map([c[:] for c in source], n)
    keys = list(dict.fromkeys(mapped.columns[0]))
    emails = [e.strip().lower() for e in source[0]]
    gc.disable()  # as in the block workers
    try:
        parts = {
            "block, plain path": _cpu(lambda: t._run_plain(0, 2, data, True)),
            "block, row path": _cpu(lambda: t._run_rows(0, 2, data, True, True)),
            "  split (lines, fields)": _cpu(lambda: _split(text)),
            "  map (normalize + hash)": _cpu(lambda: t.columns.map([c[:] for c in source], n)),
            "  dedupe buckets": _cpu(lambda: bucket_keys(keys, None, 64, 1)),
            "floor: sha256 only": _cpu(lambda: [_sha256_small(e.encode()).hexdigest() for e in emails]),
            "floor: csv.reader only": _cpu(lambda: list(csv.reader(io.StringIO(text)))),
        }
    finally:
        gc.enable()
    rows = [{"benchmark": "transform profile (1 block)", "metric": f"{name}", "value": round(sec / n * 1e6, 3),
             "unit": "µs/row", "target": f"{n} rows, min CPU of 7 runs"} for name, sec in parts.items()]
    rows.append({"benchmark": "transform profile (1 block)", "metric": "plain path rows/s per core",
                 "value": round(n / parts["block, plain path"]), "unit": "rows/s",
                 "target": f"row path: {round(n / parts['block, row path']):,}"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['metric']:<28} {row['value']:>10} {row['unit']:<8} {row['target']}")
