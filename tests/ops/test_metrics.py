"""Metrics mean the same at every scrape (issue 18 §2).

``exchange serve`` with three gunicorn workers behind one port: every scrape sums all its processes
(prometheus_client multiprocess mode), so request counts equal the requests made and never go back;
an ``exchange worker``-style process serves its own figures on ``--metrics-port``; job figures
(durations by outcome, rows by phase and transport, queue depth) come out of a real job.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.test_deliveries import _pull_job
from tests.scaled.deployment import free_port

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m["labels"] or ""))
            out[(m["name"], labels)] = float(m["value"])
    return out


def total(samples, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def test_job_figures_after_a_real_job(live):
    _pull_job(live)
    text = live.client.get("/metrics").get_data(as_text=True)
    samples = parse(text)
    assert total(samples, "exchange_database_up") == 1
    assert total(samples, "exchange_jobs", state="awaiting_consumer") == 1
    assert total(samples, "exchange_queue_depth") == 0
    assert "exchange_queue_oldest_age_seconds 0.0" in text
    assert total(samples, "exchange_scheduler_leader") == 0  # no scheduler runs in this test runtime
    assert total(samples, "exchange_http_request_duration_seconds_count", route="/v1/shares") >= 1


def test_finished_job_counts_rows_by_phase_and_duration(live):
    from exchange import metrics

    before = parse(metrics.render().decode())
    c, job = _pull_job(live)
    h = {"Authorization": f"Bearer {c['endpoint_key']}"}
    d = live.client.get("/v1/deliveries?state=ready", headers=h).json["items"][0]
    assert live.client.get(f"/v1/deliveries/{d['id']}/data", headers=h).status_code == 200
    assert live.client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 50}, headers=h).status_code == 200
    after = parse(metrics.render().decode())

    def grew(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)
    assert grew("exchange_jobs_finished_total", outcome="succeeded") == 1
    assert grew("exchange_job_duration_seconds_count", outcome="succeeded") == 1
    assert grew("exchange_rows_moved_total", phase="fetch", transport="push") == 50
    assert grew("exchange_rows_moved_total", phase="transform", transport="pull") == 50
    assert grew("exchange_rows_moved_total", phase="deliver", transport="pull") == 50
    # bytes are those fetched from a producer (job.bytes; 0 for an uploaded PUSH audience)
    assert grew("exchange_bytes_moved_total", transport="push") == live.get(f"/v1/jobs/{job['id']}").json["bytes"]


@pytest.fixture
def served(tmp_path):
    """``exchange serve --workers 3`` (embedded shape) on a free port; yields its base URL."""
    from exchange.db import upgrade

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "PROMETHEUS_"))}
    env.update(EXCHANGE_VAR_DIR=str(tmp_path / "var"), EXCHANGE_WORKERS="1", EXCHANGE_SCHEDULER="false",
               EXCHANGE_SECRET_KEY="metrics-test")
    upgrade(f"sqlite:///{tmp_path / 'var' / 'exchange.db'}")
    stale = tmp_path / "var" / "metrics" / str(port)
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"stale from a previous run")
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "exchange.cli", "serve", "--port", str(port), "--workers", "3",
                             "--threads", "4"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        yield url, stale
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_scrapes_of_a_multiprocess_serve_only_grow(served):
    url, folder = served
    assert not (folder / "counter_999999.db").exists()  # cleaned at start
    session = requests.Session()
    seen_pids: set[str] = set()
    made = 0
    previous: dict = {}
    route = 'exchange_http_request_duration_seconds_count'
    for round_ in range(12):
        for _ in range(5):
            r = requests.get(f"{url}/healthz", headers={"Connection": "close"}, timeout=5)  # new connection:
            assert r.status_code == 200                                                  # any worker answers
            made += 1
        samples = parse(session.get(f"{url}/metrics", timeout=5).text)
        assert total(samples, route, route="/healthz") == made, round_  # every worker's requests, summed
        for key, value in samples.items():
            if key[0].endswith(("_total", "_count", "_sum", "_bucket")) and key in previous:
                assert value >= previous[key], (key, previous[key], value)
        previous = samples
        seen_pids |= {p.name.rsplit("_", 1)[-1] for p in folder.glob("*.db")}
    # the figures came from several processes (3 gunicorn workers at least), summed behind one port
    assert len(seen_pids) >= 3, seen_pids
    assert total(previous, "exchange_database_up") == 1


def test_worker_metrics_port_serves_its_own_figures(runtime):
    from exchange import metrics

    port = free_port()
    server, _thread = metrics.serve_metrics(port, "127.0.0.1", db=runtime.db)
    try:
        metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "exchange_webhook_attempts_total" in text and "exchange_queue_depth 0.0" in text
    finally:
        server.shutdown()
