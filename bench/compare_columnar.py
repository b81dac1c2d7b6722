"""Benchmark of the DuckDB fast path of the transform against the Python path (SPEC §14).

Audiences come from ``sample_data/generate.py --rows N`` (email, phone_e164, customer_id, first_name,
country); the mapping is the §14 one (email -> email_sha256 with [normalize_email, sha256] plus two
pass-through attributes). Each run is a fresh subprocess so its peak RSS is its own; wall time and
CPU time (user + system, DuckDB's threads included) are both reported because the 2-core machine
is shared. ``python bench/bench_columnar.py [--rows 1000000 10000000] [--python]``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_transform import _CHILD  # noqa: E402 - one child program for both benchmarks


def measure(path: str, workdir: str, fast: bool) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, ROOT, path, workdir, "1" if fast else "0"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--python", action="store_true", help="also time the Python path")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-columnar-") as tmp:
        for rows in args.rows:
            path = os.path.join(tmp, f"audience-{rows}.csv")
            subprocess.run([sys.executable, os.path.join(ROOT, "sample_data", "generate.py"), "--rows",
                            str(rows), "--out", path], check=True, capture_output=True)
            for fast in (True, False) if args.python else (True,):
                for _ in range(args.repeat):
                    m = measure(path, tmp, fast)
                    n = m["counts"]["received"]
                    print(f"{rows:>10} {'duckdb' if fast else 'python':<7} wall {m['wall']:7.2f}s "
                          f"({n / m['wall']:>9,.0f} rows/s)  cpu {m['cpu']:7.2f}s ({n / m['cpu']:>9,.0f} "
                          f"rows/CPU-s)  peak RSS {m['rss_mb']:6.1f} MB  out {m['sha'][:12]}", flush=True)
            os.unlink(path)


if __name__ == "__main__":
    main()
