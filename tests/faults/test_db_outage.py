"""The database briefly unavailable while jobs are claimed and run.

The outage is injected at the driver level: while it lasts, every statement the engine sends fails
with the DBAPI's own ``OperationalError`` ("unable to open database file", what SQLite says when
its file is gone or unreadable; a dropped PostgreSQL connection looks the same to SQLAlchemy), so
every code path (API requests, the readiness probe, claims, lease renewals, progress updates) meets
it where it really would. The API must answer 503 problem documents (never 500), ``/readyz`` must
say 503, and every job must complete afterwards with each row delivered once.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import event

from tests.fakes.protocol_endpoint import Fault
from tests.faults.helpers import ROWS, members, setup_shares, sha, wait_all


class DatabaseOutage:
    """Every statement on ``engine`` fails while active (``with outage:``); see also :meth:`fail_next`."""

    def __init__(self, engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._active = False
        self._budget = 0
        self.failed = 0
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        with self._lock:
            in_worker = threading.current_thread().name.startswith("exchange-worker")
            fail = self._active or (self._budget > 0 and in_worker)
            if fail:
                self.failed += 1
                if not self._active:
                    self._budget -= 1
        if fail:
            raise sqlite3.OperationalError("unable to open database file")

    def fail_next(self, statements: int) -> None:
        """Fail the next ``statements`` statements of the job workers (a dropped connection)."""
        with self._lock:
            self._budget = statements

    def __enter__(self) -> DatabaseOutage:
        with self._lock:
            self._active = True
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self._active = False

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)


@pytest.fixture
def outage(live):
    """Attach a :class:`DatabaseOutage` to the live runtime's engine."""
    out = DatabaseOutage(live.rt.db.engine)
    yield out
    out.remove()


def _check_delivered_once(api, cons, shares, jobs) -> None:
    for name, share in shares.items():
        job = jobs[share["last_job_id"]]
        assert job["state"] == "succeeded", (job, [e["message"] for e in
                                                   api.get(f"/v1/jobs/{job['id']}/events").json["items"]])
        assert job["counts"]["delivered"] == ROWS and job["counts"]["acknowledged"] == ROWS, job["counts"]
        assert sorted(members(cons, f"D{name}")) == sorted(sha(f"{name}{i}@example.com") for i in range(ROWS))
        posts = [r for r in cons.requests_to("POST", f"/audiences/D{name}/data")]
        applied = Counter(r.header("Idempotency-Key") for r in posts)
        assert len(applied) == -(-ROWS // 2)  # every part once; a re-sent part carries the same key


@pytest.mark.slow
def test_outage_while_jobs_run_gives_503_and_loses_nothing(live, outage, tmp_path):
    names = ["a", "b", "c"]
    prod, cons, shares = setup_shares(live, tmp_path, names)
    with prod, cons:
        # every part takes a while, so the outage falls in the middle of the deliveries
        cons.script("POST", "/audiences/*/data", [Fault(delay=0.25, forever=True)])
        job_ids = [s["last_job_id"] for s in shares.values()]
        deadline = time.monotonic() + 20
        while len(cons.requests_to("POST")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        statuses: list[int] = []
        with outage:
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                r = live.get(f"/v1/jobs/{job_ids[0]}")
                statuses.append(r.status_code)
                assert r.status_code == 503, (r.status_code, r.get_data(as_text=True))
                assert r.mimetype == "application/problem+json" and r.json["status"] == 503
                assert r.headers.get("Retry-After")
                ready = live.client.get("/readyz")
                assert ready.status_code == 503 and "Database" in ready.json["detail"]
                run = live.post(f"/v1/shares/{shares['a']['id']}/run")
                assert run.status_code == 503, run.get_data(as_text=True)
                time.sleep(0.1)
        assert outage.failed > len(statuses)  # the workers met the outage too
        assert live.client.get("/readyz").status_code == 200
        assert live.get(f"/v1/jobs/{job_ids[0]}").status_code == 200
        jobs = wait_all(live, job_ids)
        _check_delivered_once(live, cons, shares, jobs)


@pytest.mark.parametrize("skip", [0, 3, 8])
def test_one_failed_statement_does_not_fail_the_job(live, outage, tmp_path, skip):
    """A single statement lost mid-job (a dropped connection) leaves the job to resume, not failed."""
    prod, cons, shares = setup_shares(live, tmp_path, ["a"])
    with prod, cons:
        cons.script("POST", "/audiences/*/data", [Fault(delay=0.2), Fault(delay=0.2)])
        job_id = shares["a"]["last_job_id"]
        deadline = time.monotonic() + 20
        while len(cons.requests_to("POST")) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05 * skip)
        outage.fail_next(1)
        jobs = wait_all(live, [job_id])
        assert outage.failed == 1
        _check_delivered_once(live, cons, shares, jobs)
