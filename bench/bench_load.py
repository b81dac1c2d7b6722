"""Load benchmark (SPEC §14): job status latency under 50 concurrent pollers while 20 jobs run.

The exchange runs as it does in production: ``exchange serve`` (gunicorn, ``--threads 16``, the
embedded thread executor and scheduler in the web process) on a fresh var dir. A PULL producer (the
reference endpoint) serves a generated 100k-row audience and a sink consumer counts the rows it is
sent. 20 shares of that audience are created at once (20 jobs), and 50 poller threads, each with
its own keep-alive ``requests.Session``, call ``GET /v1/jobs/{id}`` round-robin over the jobs (one
call every ``BENCH_POLL_INTERVAL`` seconds each, default 0.1, i.e. up to 500 calls/s offered) until
every job is finished. Reported: status latency p50/p99/max, errors (any non-200 answer or failed
call), calls/s, and the wall time of the 20 jobs. The per-key rate limit is raised for the run: it
measures the server, not the limiter (which would rightly answer 429 to 500 calls/s on one key).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PY = sys.executable
JOBS = int(os.environ.get("BENCH_LOAD_JOBS", "20"))
POLLERS = int(os.environ.get("BENCH_LOAD_POLLERS", "50"))
ROWS = int(os.environ.get("BENCH_LOAD_ROWS", "100000"))
POLL_INTERVAL = float(os.environ.get("BENCH_POLL_INTERVAL", "0.1"))
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}
MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "first_name", "target": "first_name"}, {"source": "country", "target": "country"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class _Exchange:
    def __init__(self, var: Path):
        self.var, self.port, self.proc = var, _free_port(), None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
        self.env.update({"EXCHANGE_VAR_DIR": str(var), "EXCHANGE_ALLOW_PRIVATE_URLS": "true",
                         "EXCHANGE_SECRET_KEY": "bench-load-secret", "EXCHANGE_LOG_LEVEL": "WARNING",
                         "EXCHANGE_RATE_LIMIT_PER_MINUTE": "10000000", "PYTHONPATH": str(ROOT)})

    def cli(self, *args: str) -> str:
        return subprocess.run([PY, "-m", "exchange.cli", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def start(self) -> None:
        log = open(self.var.parent / "exchange.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [PY, "-m", "exchange.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--threads", "16"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("exchange serve did not become ready")

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _poll(base: str, token: str, job_ids: list[str], offset: int, stop: threading.Event,
          latencies: list[float], errors: list[str], states: dict[str, str]) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    i = offset
    while not stop.is_set():
        job_id = job_ids[i % len(job_ids)]
        i += 1
        started = time.perf_counter()
        try:
            r = session.get(f"{base}/v1/jobs/{job_id}", timeout=10)
            took = time.perf_counter() - started
            if r.status_code == 200:
                states[job_id] = r.json()["state"]
            else:
                errors.append(f"{r.status_code}")
        except requests.RequestException as exc:
            took = time.perf_counter() - started
            errors.append(type(exc).__name__)
        latencies.append(took)  # list.append is atomic under the GIL
        stop.wait(max(0.0, POLL_INTERVAL - took))


class Pollers:
    """``POLLERS`` threads calling ``GET /v1/jobs/{id}`` every ``POLL_INTERVAL`` s each, until stopped.

    Used by this benchmark and by ``bench_share`` (status latency while the big transfers run)."""

    def __init__(self, base: str, token: str, job_ids: list[str], count: int = POLLERS):
        self.stop_event, self.latencies, self.errors, self.states = threading.Event(), [], [], {}
        self.job_ids = job_ids
        self._threads = [threading.Thread(target=_poll, args=(base, token, job_ids, n, self.stop_event,
                                                               self.latencies, self.errors, self.states),
                                          daemon=True) for n in range(count)]
        self.started = time.perf_counter()
        for t in self._threads:
            t.start()
        self.seconds = 0.0

    def stop(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=15)
        self.seconds = time.perf_counter() - self.started

    def p99_ms(self) -> float:
        return _percentile(sorted(v * 1000 for v in self.latencies), 99)


def _spawn(code: str, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([PY, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc, int(proc.stdout.readline())


def _poll_until(base: str, token: str, job_ids: list[str], done) -> tuple[list[float], list[str], dict, float]:
    """Run the pollers until ``done(states)``; returns latencies (s), errors, last states, seconds polled."""
    stop, latencies, errors, states = threading.Event(), [], [], {}
    pollers = [threading.Thread(target=_poll, args=(base, token, job_ids, n, stop, latencies, errors, states),
                                daemon=True) for n in range(POLLERS)]
    started = time.perf_counter()
    for t in pollers:
        t.start()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not done(states):
        time.sleep(0.2)
    stop.set()
    for t in pollers:
        t.join(timeout=15)
    return latencies, errors, states, time.perf_counter() - started


def _measure() -> list[dict]:
    sys.path.insert(0, str(ROOT / "sample_data"))
    sys.path.insert(0, str(HERE))
    from bench_share import _PRODUCER, _SINK
    from generate import generate_rows

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        generate_rows(work / "producer" / "audience.csv", ROWS)
        prod, pport = _spawn(_PRODUCER, str(ROOT), str(work / "producer"))
        sink, sport = _spawn(_SINK)
        exchange = _Exchange(work / "var")
        try:
            exchange.cli("db", "upgrade")
            token = json.loads(exchange.cli("accounts", "create", "load", "--json").strip().splitlines()[-1])["api_key"]
            exchange.start()
            base = f"http://127.0.0.1:{exchange.port}"
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {token}"

            def post(path: str, body: dict) -> dict:
                r = api.post(base + path, json=body, timeout=60)
                if r.status_code != 201:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text}")
                return r.json()

            post("/v1/endpoints", {"name": "P", "contact_url": f"http://127.0.0.1:{pport}",
                                   "producer": {"transport": "pull"}, "identifiers": ["email"],
                                   "attributes": ["first_name", "country"]})
            sink_ep = post("/v1/endpoints", {"name": "Sink", "contact_url": f"http://127.0.0.1:{sport}",
                                             "identifiers": ["email_sha256"], "attributes": ["first_name", "country"],
                                             "consumer": {"transport": "push", "max_rows_per_request": 50_000,
                                                          "gzip": False}})
            audience = api.get(base + "/v1/audiences", timeout=30).json()["items"][0]

            t0 = time.perf_counter()
            job_ids = [post("/v1/shares", {"audience_id": audience["id"], "destination_id": sink_ep["id"],
                                           "destination_audience": f"load-{n}", "mapping": MAPPING,
                                           "mode": "add"})["last_job_id"] for n in range(JOBS)]
            latencies, errors, states, polled_for = _poll_until(
                base, token, job_ids,
                lambda st: len(st) == len(job_ids) and all(v in TERMINAL for v in st.values()))
            jobs_wall = time.perf_counter() - t0
            # the same pollers against the same (now finished) jobs with nothing running: the baseline
            idle_started = time.monotonic()
            idle, idle_errors, _, _ = _poll_until(base, token, job_ids, lambda st: time.monotonic() - idle_started > 5)
            succeeded = sum(1 for s in states.values() if s == "succeeded")
        finally:
            exchange.stop()
            prod.kill()
            sink.kill()

    lat = sorted(v * 1000 for v in latencies)
    label = f"load {JOBS} jobs x {ROWS // 1000}k rows, {POLLERS} pollers"
    return [
        {"benchmark": label, "metric": "status p50", "value": round(_percentile(lat, 50), 2), "unit": "ms",
         "target": ""},
        {"benchmark": label, "metric": "status p99", "value": round(_percentile(lat, 99), 2), "unit": "ms",
         "target": "<= 25"},
        {"benchmark": label, "metric": "status max", "value": round(lat[-1] if lat else float("nan"), 2),
         "unit": "ms", "target": ""},
        {"benchmark": label, "metric": "status errors", "value": len(errors), "unit": "calls",
         "target": "0" + (f" (seen: {sorted(set(errors))})" if errors else "")},
        {"benchmark": label, "metric": "status calls/s", "value": round(len(lat) / polled_for, 1), "unit": "calls/s",
         "target": f"offered <= {POLLERS / POLL_INTERVAL:.0f}" if POLL_INTERVAL else "closed loop"},
        {"benchmark": label, "metric": "status p99, no job running", "value": round(_percentile(
            sorted(v * 1000 for v in idle), 99), 2), "unit": "ms", "target": f"baseline; errors {len(idle_errors)}"},
        {"benchmark": label, "metric": "jobs wall time", "value": round(jobs_wall, 2), "unit": "s",
         "target": f"{succeeded}/{JOBS} succeeded"},
    ]


def run() -> list[dict]:
    return _measure()


if __name__ == "__main__":
    for row in run():
        print(row)
