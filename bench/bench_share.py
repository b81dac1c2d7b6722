"""End-to-end share benchmark (SPEC §14): PULL producer → exchange → PUSH consumer on loopback.

Three processes: the producer (the reference endpoint serving a generated CSV), a sink consumer
(counts rows, answers ``{"accepted": n}``, keeps nothing), and the exchange, which runs the share
with the inline executor and reports wall time and its own peak RSS. The baseline is ``curl``
downloading the same file from the producer and uploading it to the sink, in the same run.
Sizes: 1M and 10M rows (10M only when ``BENCH_FULL=1`` is not set to 0; it takes a few minutes).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

_SINK = r"""
import json, sys, zlib
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

def app(environ, start_response):
    req = Request(environ)
    n, d = 0, zlib.decompressobj(wbits=47) if req.headers.get("Content-Encoding") == "gzip" else None
    while True:
        chunk = req.stream.read(1 << 20)
        if not chunk:
            break
        n += (d.decompress(chunk) if d else chunk).count(b"\n")
    return Response(json.dumps({"accepted": max(0, n - 1), "rejected": 0}),
                    content_type="application/json")(environ, start_response)

server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.port, flush=True)
server.serve_forever()
"""

_PRODUCER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from exchange.toolkit.reference_endpoint import ReferenceEndpoint
ep = ReferenceEndpoint(producer_dir=sys.argv[2]).start()
print(ep.port, flush=True)
import threading; threading.Event().wait()
"""

_EXCHANGE = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from exchange.config import Config
from exchange.db import upgrade
from exchange.runtime import Runtime
from exchange.auth.keys import create_account
from exchange.catalog.endpoints import register_endpoint
from exchange.catalog.gather import refresh_endpoint
from exchange.shares.service import create_share
from exchange.models import Audience, Job
from sqlalchemy import select

var, producer, consumer, mapping = Path(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
cfg = Config.from_env({}, var_dir=var, executor="inline", scheduler=False, allow_private_urls=True)
upgrade(cfg.database_url)
rt = Runtime(cfg)
with rt.db.session() as s:
    acc, _ = create_account(s, "bench")
    p, _, _ = register_endpoint(rt, s, acc.id, {"name": "P", "contact_url": producer,
        "producer": {"transport": "pull"}, "identifiers": ["email"]})
    ids = ["email_sha256"] if mapping[0]["target"] == "email_sha256" else ["email"]
    c, _, _ = register_endpoint(rt, s, acc.id, {"name": "C", "contact_url": consumer, "identifiers": ids,
        "consumer": {"transport": "push", "max_rows_per_request": 250000, "gzip": False}})
refresh_endpoint(rt, p.id)
with rt.db.session() as s:
    aud = s.scalar(select(Audience).where(Audience.endpoint_id == p.id))
    t0 = time.perf_counter()
    share = create_share(rt, s, acc.id, {"audience_id": aud.id, "destination_id": c.id, "mapping": mapping,
        "mode": "add", "schedule": {"type": "now"}, "delta": False, "reject_threshold": 0.1})
rt.executor.drain()
wall = time.perf_counter() - t0
def _hwm():  # peak RSS of this process (ru_maxrss would inherit the parent's high-water mark)
    with open("/proc/self/status") as fh:
        return int(next(ln for ln in fh if ln.startswith("VmHWM")).split()[1]) / 1024

with rt.db.session() as s:
    job = s.scalar(select(Job))
    print(json.dumps({"wall": wall, "state": job.state, "counts": job.counts, "timings": job.timings,
                      "rss_mb": _hwm()}))
"""

HASHED = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
          {"source": "first_name", "target": "first_name"}, {"source": "country", "target": "country"}]
PASSTHROUGH = [{"source": "email", "target": "email"}, {"source": "first_name", "target": "first_name"},
               {"source": "country", "target": "country"}]


def _spawn(code: str, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([PY, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def _share(work: Path, producer: int, sink: int, mapping) -> dict:
    var = work / f"var-{time.monotonic_ns()}"
    out = subprocess.run([PY, "-c", _EXCHANGE, str(ROOT), str(var), f"http://127.0.0.1:{producer}",
                          f"http://127.0.0.1:{sink}", json.dumps(mapping)], capture_output=True, text=True,
                         check=True)
    shutil.rmtree(var, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _curl(work: Path, producer: int, sink: int) -> float:
    tmp = work / "curl.csv"
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sS", "-o", str(tmp), f"http://127.0.0.1:{producer}/audiences/audience/data"],
                   check=True)
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-X", "POST", "-H", "Content-Type: text/csv",
                    "--data-binary", f"@{tmp}", f"http://127.0.0.1:{sink}/audiences/x/data?mode=add"], check=True)
    took = time.perf_counter() - t0
    tmp.unlink()
    return took


def _measure(rows: int, *, with_passthrough: bool) -> list[dict]:
    sys.path.insert(0, str(ROOT / "sample_data"))
    from generate import generate_rows

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-share-") as tmp:
        work = Path(tmp)
        (work / "producer").mkdir()
        generate_rows(work / "producer" / "audience.csv", rows)
        prod, pport = _spawn(_PRODUCER, str(ROOT), str(work / "producer"))
        sink, sport = _spawn(_SINK)
        label = f"{rows // 1_000_000}M"
        try:
            r = _share(work, pport, sport, HASHED)
            assert r["state"] == "succeeded", r
            results += [
                {"benchmark": f"share {label} hashed", "metric": "rows/s end to end",
                 "value": rows / r["wall"], "unit": "rows/s", "target": ">= 500,000 (stretch 1M)"},
                {"benchmark": f"share {label} hashed", "metric": "peak RSS exchange", "value": r["rss_mb"],
                 "unit": "MB", "target": "<= 300 at 10M, <= 1.2x the 1M figure"},
                {"benchmark": f"share {label} hashed", "metric": "phase seconds",
                 "value": round(sum(r["timings"].values()), 2), "unit": "s",
                 "target": json.dumps(r["timings"])},
            ]
            if with_passthrough:
                curl = min(_curl(work, pport, sport) for _ in range(2))
                p = _share(work, pport, sport, PASSTHROUGH)
                results += [
                    {"benchmark": f"share {label} pass-through", "metric": "seconds", "value": p["wall"],
                     "unit": "s", "target": ""},
                    {"benchmark": f"share {label} pass-through", "metric": "curl download+upload", "value": curl,
                     "unit": "s", "target": "baseline, same run"},
                    {"benchmark": f"share {label} pass-through", "metric": "ratio to curl",
                     "value": p["wall"] / curl, "unit": "x", "target": "<= 4"},
                ]
        finally:
            prod.kill()
            sink.kill()
    return results


def run() -> list[dict]:
    rows = _measure(1_000_000, with_passthrough=True)
    if os.environ.get("BENCH_FULL", "1") != "0":
        rows += _measure(10_000_000, with_passthrough=False)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
