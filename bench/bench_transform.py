"""Benchmark of the transform stage alone (SPEC §14): rows/s and peak RSS at 1M and 10M rows.

Synthetic audiences (email, first_name, country; ~1 % duplicates, a few malformed emails) are
generated into a temp dir; each size is transformed in a fresh subprocess so its peak RSS is its
own. The mapping is the §14 one: email -> email_sha256 with [normalize_email, sha256] plus two
pass-through attributes. ``rows/s`` is wall time; ``rows per CPU-second`` (coordinator + block workers) is
also reported because the shared 2-core machine is often busy with other work, which wall time
cannot separate out. ``python bench/bench_transform.py`` runs it alone.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (("1m", 1_000_000), ("10m", 10_000_000))

_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from exchange.transfer.pipeline import run_transform
path, workdir = sys.argv[2], sys.argv[3]
workers = int(sys.argv[4]) if len(sys.argv) > 4 else None

def chunks():
    with open(path, "rb") as f:
        while block := f.read(1 << 16):
            yield block

rules = [
    {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
    {"source": "first_name", "target": "first_name", "transform": []},
    {"source": "country", "target": "country", "transform": []},
]
cpu0, t0 = sum(os.times()[:4]), time.perf_counter()
result = run_transform(chunks(), gzip=False, rules=rules, identifier_types={"email_sha256"},
                       out_path=os.path.join(workdir, "out.csv"), rejects_path=os.path.join(workdir, "rej.csv"),
                       workers=workers)
wall = time.perf_counter() - t0
from exchange.transfer.blocks import POOL
POOL.clear()  # reap the pooled block workers, so that their CPU and peak RSS are counted below
cpu = sum(os.times()[:4]) - cpu0  # workers' CPU included
def _hwm():  # peak RSS of this process (ru_maxrss would inherit the parent's high-water mark)
    with open("/proc/self/status") as fh:
        return int(next(ln for ln in fh if ln.startswith("VmHWM")).split()[1]) / 1024

print(json.dumps({"wall": wall, "cpu": cpu, "counts": result.counts, "sha": result.out_sha256,
                  "rss_mb": _hwm(), "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "workers": result.workers, "load": os.getloadavg()[0]}))
"""

_NAMES = ["Alice", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Gus", "Hana"]
_COUNTRIES = ["FR", "DE", "US", "GB", "ES", "IT"]


def generate(path: str, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("email,first_name,country\n")
        buf: list[str] = []
        for i in range(rows):
            r = rng.random()
            j = rng.randrange(i) if r < 0.01 and i else i  # ~1 % repeat an earlier person
            email = f"broken{i}.example.com" if r > 0.9995 else f" User{j}@Example.com"
            buf.append(f"{email},{_NAMES[i % 8]},{_COUNTRIES[i % 6]}\n")
            if len(buf) >= 50_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


def _measure(path: str, workdir: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, ROOT, path, workdir],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run() -> list[dict]:
    rows: list[dict] = []
    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        for label, size in SIZES:
            path = os.path.join(tmp, f"audience-{label}.csv")
            generate(path, size)
            m = _measure(path, tmp)
            os.unlink(path)
            received = m["counts"]["received"]
            name = f"transform_{label}"
            rss[label] = max(m["rss_mb"], m["worker_rss_mb"])
            rows += [
                {"benchmark": name, "metric": "rows_per_s", "value": round(received / m["wall"]),
                 "unit": "rows/s", "target": ">= 500000"},
                {"benchmark": name, "metric": "rows_per_cpu_s", "value": round(received / m["cpu"]),
                 "unit": "rows/CPU-s", "target": "info"},
                {"benchmark": name, "metric": "peak_rss", "value": round(m["rss_mb"], 1), "unit": "MB",
                 "target": "<= 300 (coordinator)"},
                {"benchmark": name, "metric": "peak_rss_worker", "value": round(m["worker_rss_mb"], 1), "unit": "MB",
                 "target": f"<= 300 (largest of {m['workers']} block workers)"},
                {"benchmark": name, "metric": "load_average", "value": round(m["load"], 2), "unit": "",
                 "target": "1-min load at the end (2 cores, shared)"},
                {"benchmark": name, "metric": "duplicates", "value": m["counts"]["duplicates"], "unit": "rows",
                 "target": "info"},
            ]
    rows.append({"benchmark": "transform_10m_vs_1m", "metric": "peak_rss_ratio",
                 "value": round(rss["10m"] / rss["1m"], 2), "unit": "x", "target": "<= 1.2"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<22} {row['metric']:<16} {row['value']:>12} {row['unit']:<10} {row['target']}")
