"""End-to-end fixtures: an exchange with its worker pool running, and helpers to wait for jobs."""
from __future__ import annotations

import csv
import hashlib
import io
import time

import pytest

from exchange.app import create_app
from exchange.db import upgrade
from exchange.runtime import Runtime
from tests.conftest import make_config, new_account

TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}


@pytest.fixture
def live(tmp_path):
    """A runtime with background workers (2 threads) and an account client."""
    cfg = make_config(tmp_path, workers=2, max_attempts=4)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    api = new_account(rt, app.test_client())
    api.rt = rt
    api.rt_app = app
    api.other = new_account(rt, app.test_client(), "Other")
    yield api
    rt.shutdown()


@pytest.fixture
def other_api_live(live):
    """A second account on the same live exchange."""
    return live.other


def wait_job(api, job_id: str, until=TERMINAL | {"awaiting_consumer"}, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/jobs/{job_id}").json
        if job["state"] in until:
            return job
        if time.monotonic() > deadline:
            events = api.get(f"/v1/jobs/{job_id}/events").json
            raise AssertionError(f"job stuck in {job['state']}: {events}")
        time.sleep(0.05)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def read_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def register(api, **body) -> dict:
    r = api.post("/v1/endpoints", json=body)
    assert r.status_code == 201, r.json
    return r.json


def audience_by_external(api, external_id: str) -> dict:
    items = api.get("/v1/audiences", query_string={"q": external_id}).json["items"]
    match = [a for a in items if a["external_id"] == external_id]
    assert match, items
    return match[0]
