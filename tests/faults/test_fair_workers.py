"""More slow destinations than workers: other shares keep moving (jobs/budget.py).

Two worker threads, three consumers that each take 0.4 s per part (inside every timeout, so nothing
fails: they are merely slow) for 25 parts. Without time slices the three slow jobs would hold both
workers for ~10 s each before a fourth share could start; with them, the fourth (fast) share starts
as soon as a slow job's slice ends and completes while the slow ones are still delivering; the slow
ones then finish with every part delivered exactly once. A second test checks the per-destination
budget: with ``destination_concurrency=1`` a second share to a busy destination waits although a
worker is free, while a share to another destination runs at once.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint
from tests.faults.helpers import MAPPING, TERMINAL, members, sha

ROWS = 25
SLICE = 1.0
DELAY = 0.4  # per part: a slow job needs ROWS * DELAY = 10 s


@pytest.fixture
def live_settings() -> dict:
    return {"workers": 2, "http_read_timeout": 5.0, "lease_seconds": 20, "fair_slice_seconds": SLICE,
            "yield_pause_seconds": 0.3}


def _source(name: str) -> str:
    return "email,country\n" + "".join(f"{name}{i}@example.com,FR\n" for i in range(ROWS))


def _wait(api, job_id, timeout):
    deadline = time.monotonic() + timeout
    while (job := api.get(f"/v1/jobs/{job_id}").json)["state"] not in TERMINAL:
        assert time.monotonic() < deadline, (job["state"], job_id)
        time.sleep(0.05)
    return job


def _world(api, tmp_path, consumers: dict[str, ProtocolEndpoint]):
    prod = ProtocolEndpoint(producer_dir=tmp_path / "p", credential="pt")
    for name in consumers:
        prod.write_audience(name, _source(name))
    prod.start()
    r = api.post("/v1/endpoints", json=dict(name="P", contact_url=prod.url, producer={"transport": "pull"},
                                            identifiers=["email"], attributes=["country"], credential="pt"))
    assert r.status_code == 201, r.json
    auds = {a["external_id"]: a["id"] for a in api.get("/v1/audiences", query_string={"page_size": 100}).json["items"]}
    dests = {}
    for name, cons in consumers.items():
        cons.start()
        r = api.post("/v1/endpoints", json=dict(name=f"C-{name}", contact_url=cons.url, identifiers=["email_sha256"],
                                                attributes=["country"], credential="ct",
                                                consumer={"transport": "push", "max_rows_per_request": 1}))
        assert r.status_code == 201, r.json
        dests[name] = r.json["id"]

    def share(name, dest=None):
        r = api.post("/v1/shares", json={"audience_id": auds[name], "destination_id": dests[dest or name],
                                         "destination_audience": f"D-{name}", "mapping": MAPPING, "mode": "add"})
        assert r.status_code == 201, r.json
        return r.json["last_job_id"]
    return prod, share


@pytest.mark.slow
def test_more_slow_destinations_than_workers(live, tmp_path):
    slow = {f"slow{i}": ProtocolEndpoint(consumer_dir=tmp_path / f"s{i}", credential="ct") for i in range(3)}
    for cons in slow.values():
        cons.script("POST", f"/audiences/D-{next(k for k, v in slow.items() if v is cons)}/data",
                    [Fault(delay=DELAY, forever=True)])
    fast = ProtocolEndpoint(consumer_dir=tmp_path / "f", credential="ct")
    prod, share = _world(live, tmp_path, {**slow, "fast": fast})
    try:
        slow_jobs = [share(name) for name in slow]
        # both workers are busy with slow destinations and a third slow job waits
        deadline = time.monotonic() + 15
        while sum(bool(c.requests_to("POST")) for c in slow.values()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        fast_job = _wait(live, share("fast"), timeout=20)
        took = time.monotonic() - started
        assert fast_job["state"] == "succeeded", fast_job
        assert sorted(members(fast, "D-fast")) == sorted(sha(f"fast{i}@example.com") for i in range(ROWS))
        states = [live.get(f"/v1/jobs/{j}").json["state"] for j in slow_jobs]
        assert "delivering" in states or "queued" in states, states  # the slow ones are not done yet
        assert took < ROWS * DELAY, took  # without time slices it waits for a whole slow job (and more)
        for name, job_id in zip(slow, slow_jobs):
            job = _wait(live, job_id, timeout=60)
            assert job["state"] == "succeeded", job
            assert sorted(members(slow[name], f"D-{name}")) == sorted(sha(f"{name}{i}@example.com")
                                                                      for i in range(ROWS))
            keys = Counter(r.header("Idempotency-Key") for r in slow[name].requests_to("POST") if r.status == 200)
            assert len(keys) == ROWS and set(keys.values()) == {1}, keys  # each part accepted exactly once
        events = " ".join(e["message"] for j in slow_jobs
                          for e in live.get(f"/v1/jobs/{j}/events").json["items"])
        assert "giving the worker to a waiting share" in events
    finally:
        for cons in (*slow.values(), fast, prod):
            cons.stop()


@pytest.mark.parametrize("live_settings", [{"workers": 2, "destination_concurrency": 1, "fair_slice_seconds": SLICE,
                                            "lease_seconds": 20}])
def test_destination_budget(live, tmp_path):
    busy = ProtocolEndpoint(consumer_dir=tmp_path / "b", credential="ct")
    busy.script("POST", "/audiences/D-a/data", [Fault(delay=0.4, forever=True)])
    other = ProtocolEndpoint(consumer_dir=tmp_path / "o", credential="ct")
    prod, share = _world(live, tmp_path, {"a": busy, "b": ProtocolEndpoint(consumer_dir=tmp_path / "x",
                                                                           credential="ct"), "c": other})
    try:
        first = share("a")
        while not busy.requests_to("POST"):
            time.sleep(0.05)
        second = share("b", dest="a")  # the same destination: must wait for the first
        third = _wait(live, share("c"), timeout=10)  # another destination runs on the free worker
        assert third["state"] == "succeeded", third
        assert live.get(f"/v1/jobs/{second}").json["state"] == "queued"
        assert live.get(f"/v1/jobs/{first}").json["state"] == "delivering"
        assert _wait(live, first, 30)["state"] == "succeeded"
        assert _wait(live, second, 30)["state"] == "succeeded"
    finally:
        for cons in (busy, other, prod):
            cons.stop()
