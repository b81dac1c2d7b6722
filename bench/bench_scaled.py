"""Scaled deployment benchmark (SPEC §12): Celery workers, PostgreSQL and S3 against the embedded default.

The deployment is ``tests/scaled/deployment.py``'s: a fresh PostgreSQL database, moto's S3 server,
Redis (or RabbitMQ), two ``exchange serve`` and one or two ``exchange worker --concurrency 2``
processes on loopback, configured by environment only. The producer (reference endpoint serving a
generated CSV) and the sink consumer (counts rows, keeps nothing) are ``bench_share``'s.

- 20 shares of one 100k-row audience created at once, with 1 and with 2 worker processes:
  throughput (all rows / first creation to last finish) and p99 job latency (creation to finish).
- the 1M-row hashed share in the scaled deployment (2 workers) against the embedded one (SQLite,
  local blobs, inline executor, as in ``bench_share``), same producer and sink, same run.

Without PostgreSQL, a broker or moto the rows say why they were skipped.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARES = 20
SMALL = 100_000
LARGE = 1_000_000
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}


def _bench_share():
    spec = importlib.util.spec_from_file_location("bench_share", HERE / "bench_share.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(benchmark: str, metric: str, value: float, unit: str, target: str) -> dict:
    return {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit, "target": target}


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _account(dep, producer_url: str, sink_url: str):
    from tests.conftest import new_account
    from tests.e2e.conftest import register

    api = new_account(dep.rt, dep.client(), "bench")
    register(api, name="P", contact_url=producer_url, producer={"transport": "pull"}, identifiers=["email"])
    c = register(api, name="Sink", contact_url=sink_url, identifiers=["email_sha256"],
                 consumer={"transport": "push", "max_rows_per_request": 250_000, "gzip": False})
    audience = api.get("/v1/audiences").json["items"][0]
    return api, audience, c


def _jobs_done(dep, job_ids: list[str], timeout: float) -> list:
    from sqlalchemy import select

    from exchange.models import Job

    deadline = time.monotonic() + timeout
    while True:
        with dep.rt.db.session() as s:
            jobs = list(s.scalars(select(Job).where(Job.id.in_(job_ids))))
        if all(j.state in TERMINAL for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not finished after {timeout}s: {sorted({j.state for j in jobs})}")
        time.sleep(0.1)


def _peak_rss_mb(pid: int) -> float:
    """Peak RSS of ``pid`` and its children (a gunicorn master's worker), from /proc."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total = max(total, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _concurrent(dep, workers: int, producer_url: str, sink_url: str) -> list[dict]:
    api, audience, c = _account(dep, producer_url, sink_url)
    mapping = _bench_share().HASHED
    job_ids = []
    started = time.perf_counter()
    for i in range(SHARES):
        r = api.post("/v1/shares", json={"audience_id": audience["id"], "destination_id": c["id"],
                                         "destination_audience": f"D{i}", "mapping": mapping, "mode": "add",
                                         "delta": False, "reject_threshold": 0.1})
        assert r.status_code == 201, r.json
        job_ids.append(r.json["last_job_id"])
    jobs = _jobs_done(dep, job_ids, timeout=900)
    wall = time.perf_counter() - started
    bad = [j.state for j in jobs if j.state != "succeeded"]
    assert not bad, bad
    latencies = [(j.finished_at - j.created_at).total_seconds() for j in jobs]
    span = (max(j.finished_at for j in jobs) - min(j.created_at for j in jobs)).total_seconds()
    label = f"scaled {SHARES}x100k, {workers} worker{'s' if workers > 1 else ''}"
    rss = max(_peak_rss_mb(p.pid) for p in dep.workers if p is not None)
    return [
        _row(label, "throughput", SHARES * SMALL / span, "rows/s", "2 workers > 1 worker"),
        _row(label, "p99 job latency", _p99(latencies), "s", f"median {sorted(latencies)[len(latencies) // 2]:.1f}s"),
        _row(label, "wall (client view)", wall, "s", ""),
        _row(label, "peak RSS per worker process", rss, "MB", f"concurrency {dep.concurrency}"),
    ]


def _single(dep, producer_url: str, sink_url: str) -> tuple[float, dict]:
    api, audience, c = _account(dep, producer_url, sink_url)
    started = time.perf_counter()
    r = api.post("/v1/shares", json={"audience_id": audience["id"], "destination_id": c["id"],
                                     "destination_audience": "big", "mapping": _bench_share().HASHED,
                                     "mode": "add", "delta": False, "reject_threshold": 0.1})
    assert r.status_code == 201, r.json
    job = _jobs_done(dep, [r.json["last_job_id"]], timeout=900)[0]
    assert job.state == "succeeded", job.error
    return time.perf_counter() - started, dict(job.timings or {})


def run() -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from tests.scaled.deployment import Deployment, unavailable_reason

    reason = unavailable_reason()
    if reason:
        return [_row(f"scaled {what}", "skipped", float("nan"), "", reason)
                for what in (f"{SHARES}x100k, 1 worker", f"{SHARES}x100k, 2 workers", "share 1M")]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    sys.path.insert(0, str(ROOT / "sample_data"))
    from generate import generate_rows

    share = _bench_share()
    # other work on the machine skews every figure below; say how busy it was
    rows: list[dict] = [_row("scaled", "machine load (1-min average) at start", os.getloadavg()[0], "",
                             f"{os.cpu_count()} CPUs")]
    with tempfile.TemporaryDirectory(prefix="bench-scaled-") as tmp:
        work = Path(tmp)
        for name, n in (("small", SMALL), ("large", LARGE)):
            (work / name).mkdir()
            generate_rows(work / name / "audience.csv", n)
        small, small_port = share._spawn(share._PRODUCER, str(ROOT), str(work / "small"))
        large, large_port = share._spawn(share._PRODUCER, str(ROOT), str(work / "large"))
        sink, sink_port = share._spawn(share._SINK)
        sink_url = f"http://127.0.0.1:{sink_port}"
        try:
            for workers in (1, 2):
                # production lease times: the bench measures throughput, not failover
                dep = Deployment(work / f"dep{workers}", workers=workers, lease_seconds=60,
                                 scheduler_lease_seconds=15).start()
                try:
                    rows += _concurrent(dep, workers, f"http://127.0.0.1:{small_port}", sink_url)
                    if workers == 2:
                        wall, timings = _single(dep, f"http://127.0.0.1:{large_port}", sink_url)
                finally:
                    dep.stop()
            embedded = share._share(work, large_port, sink_port, share.HASHED)
            assert embedded["state"] == "succeeded", embedded
            rows += [
                _row("share 1M hashed, scaled (2 workers)", "rows/s end to end", LARGE / wall, "rows/s",
                     f"phases {sum(timings.values()):.1f}s"),
                _row("share 1M hashed, embedded", "rows/s end to end", LARGE / embedded["wall"], "rows/s",
                     "same run, bench_share's configuration"),
                _row("share 1M hashed", "scaled / embedded wall", wall / embedded["wall"], "x",
                     "<= 1.5 (S3 and the broker cost little)"),
            ]
        finally:
            for proc in (small, large, sink):
                proc.kill()
                proc.wait()
    return rows


if __name__ == "__main__":
    for line in run():
        print(line)
