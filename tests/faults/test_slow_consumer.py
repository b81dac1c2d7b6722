"""A slow consumer does not block other jobs, and its own job ends within its timeouts.

Two consumers behind two shares of the same producer, two worker threads: the slow consumer takes
far longer than the exchange's read timeout (``http_read_timeout``, set low here) to answer, or
trickles its answer a byte at a time (slowloris-style). The share to the fast consumer must
complete while the slow one is still stuck, and the slow job must then end on its own.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint
from tests.faults.helpers import MAPPING, ROWS, TERMINAL, members, sha, source

READ_TIMEOUT = 1.0
TOTAL_TIMEOUT = 1.2  # http_total_timeout: a whole call, however slowly the bytes come


@pytest.fixture
def live_settings() -> dict:
    # a lease long enough that a busy CI machine never lets it lapse while the slow call waits
    return {"http_read_timeout": READ_TIMEOUT, "http_total_timeout": TOTAL_TIMEOUT, "max_attempts": 2,
            "lease_seconds": 20}


class TricklingServer:
    """Accepts, reads the request, then sends its answer one byte every ``interval`` for ``duration`` s."""

    def __init__(self, duration: float, interval: float = 0.25):
        self.duration, self.interval = duration, interval
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2.0)
            try:
                conn.recv(65536)  # the request (enough of it)
                head = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nX-Slow: " + b"z" * 10_000
                until = time.monotonic() + self.duration
                for byte in head:
                    if time.monotonic() > until or self._stop.is_set():
                        break
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def _setup(api, tmp_path, slow_url: str | None = None):
    prod = ProtocolEndpoint(producer_dir=tmp_path / "p", credential="pt")
    slow = ProtocolEndpoint(consumer_dir=tmp_path / "slow", credential="ct")
    fast = ProtocolEndpoint(consumer_dir=tmp_path / "fast", credential="ct")
    prod.write_audience("a", source("a"))
    for ep in (prod, slow, fast):
        ep.start()

    def post(body):
        r = api.post("/v1/endpoints", json=body)
        assert r.status_code == 201, r.json
        return r.json

    post(dict(name="P", contact_url=prod.url, producer={"transport": "pull"}, identifiers=["email"],
              attributes=["country"], credential="pt"))
    consumer = dict(identifiers=["email_sha256"], attributes=["country"], credential="ct",
                    consumer={"transport": "push", "max_rows_per_request": 5})
    dests = {"slow": post(dict(name="Slow", contact_url=slow_url or slow.url, **consumer)),
             "fast": post(dict(name="Fast", contact_url=fast.url, **consumer))}
    aud = next(a for a in api.get("/v1/audiences", query_string={"q": "a"}).json["items"] if a["external_id"] == "a")

    def share(which):
        r = api.post("/v1/shares", json={"audience_id": aud["id"], "destination_id": dests[which]["id"],
                                         "destination_audience": "D", "mapping": MAPPING, "mode": "add"})
        assert r.status_code == 201, r.json
        return r.json["last_job_id"]

    return prod, slow, fast, share


def _state(api, job_id):
    return api.get(f"/v1/jobs/{job_id}").json


def _wait(api, job_id, timeout):
    deadline = time.monotonic() + timeout
    while (job := _state(api, job_id))["state"] not in TERMINAL:
        assert time.monotonic() < deadline, (job["state"], job_id)
        time.sleep(0.05)
    return job


def _fast_passes_slow(api, fast, share, slow_job):
    started = time.monotonic()
    fast_job = _wait(api, share("fast"), timeout=15)
    assert fast_job["state"] == "succeeded", fast_job
    assert sorted(members(fast, "D")) == sorted(sha(f"a{i}@example.com") for i in range(ROWS))
    assert _state(api, slow_job)["state"] == "delivering"  # the slow one is still stuck meanwhile
    return time.monotonic() - started


def test_slow_consumer_times_out_without_blocking_others(live, tmp_path):
    prod, slow, fast, share = _setup(live, tmp_path)
    with prod, slow, fast:
        # every answer comes 3 read timeouts late (then the consumer handles the call normally)
        slow.script("POST", "/audiences/D/data", [Fault(delay=3 * READ_TIMEOUT, forever=True)])
        slow_job = share("slow")
        while not slow.requests_to("POST"):
            time.sleep(0.02)
        started = time.monotonic()
        _fast_passes_slow(live, fast, share, slow_job)
        job = _wait(live, slow_job, timeout=20)
        took = time.monotonic() - started
        assert job["state"] == "failed", job
        assert "timeout" in job["error"]["detail"].lower() or "no answer" in job["error"]["detail"].lower()
        # max_attempts=2 tries of at most READ_TIMEOUT each, plus a short backoff
        assert took < 2 * READ_TIMEOUT + 3, took
        assert len(slow.requests_to("POST")) == 2 and job["attempts"] == 1  # one run: the lease was kept


def _trickle_run(live, tmp_path, duration: float):
    trickle = TricklingServer(duration=duration)
    prod, slow, fast, share = _setup(live, tmp_path, slow_url=trickle.url)
    try:
        with prod, slow, fast:
            slow_job = share("slow")
            while not trickle.connections:
                time.sleep(0.02)
            started = time.monotonic()
            _fast_passes_slow(live, fast, share, slow_job)
            job = _wait(live, slow_job, timeout=duration + 20)
            return job, time.monotonic() - started, trickle.connections
    finally:
        trickle.close()


@pytest.mark.slow
def test_trickling_consumer_does_not_block_others(live, tmp_path):
    """Slowloris: bytes keep coming just within the read timeout; other shares keep moving."""
    job, took, connections = _trickle_run(live, tmp_path, duration=4.0)
    assert job["state"] == "failed", job  # the consumer never answered anything but a 503


def test_trickling_consumer_is_cut_off_within_a_deadline(live, tmp_path):
    """Each call ends at http_total_timeout although the peer keeps sending within the read timeout."""
    job, took, connections = _trickle_run(live, tmp_path, duration=30.0)
    assert job["state"] == "failed", job
    assert "deadline" in job["error"]["detail"].lower(), job["error"]
    # two attempts of TOTAL_TIMEOUT each plus a short backoff, long before the peer's 30 s
    assert took < 2 * TOTAL_TIMEOUT + 3, took
    assert job["attempts"] == 1 and connections <= 2, (job["attempts"], connections)  # one run at a time
