"""SIGKILL at every phase of a job: after a restart on the same var dir the job finishes exactly once.

The exchange runs as a real ``exchange serve`` process group (gunicorn + embedded executor). A
fault makes the phase under test slow, the test polls ``GET /v1/jobs/{id}`` until the job is in
that phase, ``kill -9``s the whole group (no cleanup, no lease release), starts the server again
and checks that the job then succeeds with the consumer holding exactly the expected rows, every
part accepted exactly once (each part's ``Idempotency-Key`` answered 200 once), and the job's
counts telling the same story.
"""
from __future__ import annotations

import csv
import gzip
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint
from tests.faults.helpers import ExchangeServer, sha

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]

# phase -> (source rows, consumer rows per request)
SIZES = {"fetching": (9, 2), "fetching_transforming": (300_000, 100_000), "transforming": (300_000, 100_000),
         "delivering": (9, 2), "delivering_applied": (9, 2)}


def _source(rows: int) -> str:
    return "email,country\n" + "".join(f"user{i}@example.com,FR\n" for i in range(rows))


def _consumer_rows(cons: ProtocolEndpoint) -> list[str]:
    with open(cons.consumer_file("D"), newline="", encoding="utf-8") as fh:
        return [r["email_sha256"] for r in csv.DictReader(fh)]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(SIZES))
def test_sigkill_in_phase_finishes_exactly_once(tmp_path: Path, phase: str) -> None:
    rows, per_request = SIZES[phase]
    parts = -(-rows // per_request)
    server = ExchangeServer(tmp_path / "var", lease_seconds=3, workers=2)
    api = server.create_account()
    prod = ProtocolEndpoint(producer_dir=tmp_path / "p", credential="pt")
    cons = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="ct")
    prod.write_audience("aud", _source(rows))
    if phase == "fetching":  # the first download hangs until after the kill
        prod.script("GET", "/audiences/aud/data", [Fault(delay=6.0)])
    elif phase == "fetching_transforming":  # half the body arrives (and is transformed), then it stalls
        half = len(gzip.compress(_source(rows).encode(), 6)) // 2
        prod.script("GET", "/audiences/aud/data", [Fault(stall_after_bytes=half, stall=8.0)])
    elif phase == "delivering":  # part 2 hangs, then is refused: it never reaches the audience
        cons.script("POST", "/audiences/D/data", [None, Fault(delay=6.0, status=503)])
    elif phase == "delivering_applied":  # part 2 is applied by the consumer after the exchange died
        cons.script("POST", "/audiences/D/data", [None, Fault(delay=3.0)])
    server.start()
    try:
        with prod, cons:
            api.base_url = server.url
            api.register(name="P", contact_url=prod.url, producer={"transport": "pull"}, identifiers=["email"],
                         attributes=["country"], credential="pt")
            c = api.register(name="C", contact_url=cons.url, identifiers=["email_sha256"],
                             attributes=["country"], credential="ct",
                             consumer={"transport": "push", "max_rows_per_request": per_request})
            aud = api.audience("aud")
            job_id = api.share(audience_id=aud["id"], destination_id=c["id"], destination_audience="D",
                               mapping=MAPPING, mode="add")["last_job_id"]

            state = "delivering" if phase.startswith("delivering") else phase.split("_")[0]
            if phase == "fetching_transforming":
                _wait_for(lambda: any("as it arrives" in m for m in api.events(job_id)), 30,
                          "the transform of the download")
                time.sleep(1.0)  # the first half is in the transform's hands
            elif phase == "fetching":
                _wait_for(lambda: prod.requests_to("GET", "/audiences/aud/data"), 30, "the download")
            elif phase == "transforming":  # kill as soon as the poller sees the phase
                _wait_for(lambda: api.job(job_id)["state"] not in ("queued", "fetching"), 60, "the transform")
            else:
                _wait_for(lambda: len(cons.requests_to("POST")) >= 2, 30, "part 2")
            server.kill()
            with sqlite3.connect(server.var_dir / "exchange.db") as db:
                left = db.execute("SELECT state, lease_owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
                progress = json.loads(db.execute("SELECT progress FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])
            assert left[0] == state and left[1], left  # the crash left the job in its phase, leased
            if phase == "fetching_transforming":  # neither the half-stored source nor a half output counts
                assert not progress.get("source_key") and not progress.get("output_key"), progress

            server.start()
            api.base_url = server.url
            job = api.wait_job(job_id, timeout=90)

            assert job["state"] == "succeeded", (job, api.events(job_id))
            expected = {sha(f"user{i}@example.com") for i in range(rows)}
            members = _consumer_rows(cons)
            assert len(members) == rows and set(members) == expected
            assert job["counts"]["delivered"] == rows and job["counts"]["acknowledged"] == rows
            assert job["attempts"] == 2, job

            posts = cons.requests_to("POST")
            accepted = Counter(r.header("Idempotency-Key") for r in posts if r.status == 200)
            assert len(accepted) == parts
            if phase == "delivering_applied":
                # part 2 arrived twice with the same key; the consumer applied it once and replayed
                keys = [r.header("Idempotency-Key") for r in posts]
                assert keys.count(keys[1]) == 2 and len(set(keys)) == parts
            else:
                assert set(accepted.values()) == {1}, accepted
            if phase in ("fetching", "fetching_transforming"):
                assert len(prod.requests_to("GET", "/audiences/aud/data")) == 2
            if phase == "transforming":
                # the fetched source was kept: the restart did not download it again
                assert len(prod.requests_to("GET", "/audiences/aud/data")) == 1
    finally:
        server.stop()
