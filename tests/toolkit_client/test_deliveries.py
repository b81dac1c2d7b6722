"""Shares, jobs and PULL consumer deliveries through the client, with dropped and corrupted downloads."""
from __future__ import annotations

import csv
import hashlib
import socket

import pytest

from exchange.toolkit.client import ChecksumMismatch, Conflict, NetworkError, NotFound, WaitTimeout

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]
ROWS = 3000
SOURCE = "email,country\n" + "".join(f"Person.{i}@Example.com ,{'FR' if i % 2 else 'DE'}\n" for i in range(ROWS))
SOURCE += "not-an-email,FR\nperson.0@example.com,DE\n"  # one reject, one duplicate


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def flow(live, client, tmp_path):
    """A PUSH producer with an uploaded audience and a PULL consumer; returns a namespace of both."""
    producer = client.register_endpoint({"name": "CDP", "producer": {"transport": "push"},
                                         "identifiers": ["email"], "attributes": ["country"]})
    source = tmp_path / "source.csv"
    source.write_text(SOURCE)
    live.client(producer["endpoint_key"]).upload_audience_data(producer["id"], "people", source, gzip=True)
    consumer = client.register_endpoint({"name": "Warehouse", "consumer": {"transport": "pull"},
                                         "identifiers": ["email_sha256"], "attributes": ["country"]})
    audience = client.search_audiences(producer=producer["id"]).items[0]

    class Flow:
        consumer_client = live.client(consumer["endpoint_key"])

        @staticmethod
        def share(**extra) -> dict:
            body = {"audience_id": audience["id"], "destination_id": consumer["id"],
                    "destination_audience": "People", "mapping": MAPPING, **extra}
            return client.create_share(body)

    Flow.consumer_id = consumer["id"]
    yield Flow
    Flow.consumer_client.close()


def ready_delivery(client, flow) -> tuple[dict, dict]:
    share = flow.share()
    job = client.wait_job(share["last_job_id"], 30, interval=0.05, until={"awaiting_consumer", "failed"})
    assert job["state"] == "awaiting_consumer", job
    [delivery] = flow.consumer_client.list_deliveries(state="ready").items
    return job, delivery


class Dropper:
    """Cuts the first ``times`` delivery downloads after ``after`` bytes by closing the socket."""

    def __init__(self, after: int, times: int = 1, corrupt: bool = False):
        self.after, self.times, self.corrupt = after, times, corrupt
        self.ranges: list[str | None] = []

    def __call__(self, app):
        def wsgi(environ, start_response):
            path = environ["PATH_INFO"]
            if not (path.startswith("/v1/deliveries/") and path.endswith("/data")):
                return app(environ, start_response)
            self.ranges.append(environ.get("HTTP_RANGE"))
            body = app(environ, start_response)
            if self.corrupt:
                return [chunk.replace(b"FR", b"IT") for chunk in body]
            if len(self.ranges) > self.times:
                return body
            return self._cut(body, environ["werkzeug.socket"])
        return wsgi

    def _cut(self, body, sock):
        sent = 0
        try:
            for chunk in body:
                if sent + len(chunk) >= self.after:
                    yield chunk[: self.after - sent]
                    sock.shutdown(socket.SHUT_RDWR)
                    raise ConnectionResetError("test: connection dropped")
                sent += len(chunk)
                yield chunk
        finally:
            getattr(body, "close", lambda: None)()


def test_pull_download_ack_completes_the_job(live, client, flow, tmp_path):
    job, delivery = ready_delivery(client, flow)
    assert (delivery["row_count"], delivery["mode"]) == (ROWS, "add")
    assert flow.consumer_client.get_delivery(delivery["id"])["sha256"] == delivery["sha256"]
    path = flow.consumer_client.download_delivery(delivery["id"], tmp_path)
    assert path == tmp_path / f"delivery-{delivery['id']}.csv"
    rows = list(csv.DictReader(path.open()))
    assert {r["email_sha256"] for r in rows} == {sha(f"person.{i}@example.com") for i in range(ROWS)}
    acked = flow.consumer_client.ack_delivery(delivery["id"], len(rows), 0, "loaded")
    assert (acked["state"], acked["accepted"]) == ("acknowledged", ROWS)
    with pytest.raises(Conflict):
        flow.consumer_client.ack_delivery(delivery["id"], len(rows))
    done = client.wait_job(job["id"], 30, interval=0.05)
    assert done["state"] == "partially_succeeded" and done["counts"]["acknowledged"] == ROWS
    assert flow.consumer_client.list_deliveries(state="ready").total == 0
    rejects = client.download_rejects(job["id"], tmp_path / "rejects.csv")
    [reject] = list(csv.DictReader(rejects.open()))
    assert reject["email"] == "not-an-email" and reject["_reason"]
    kinds = {e["kind"] for e in client.job_events(job["id"])}
    assert "state" in kinds


def test_download_resumes_after_a_dropped_connection(live, client, flow, tmp_path):
    _job, delivery = ready_delivery(client, flow)
    dropper = Dropper(after=50_000, times=2)
    live.wrapper = dropper
    got: list[int] = []
    path = flow.consumer_client.download_delivery(delivery["id"], tmp_path / "out.csv", progress=got.append)
    assert dropper.ranges == [None, "bytes=50000-", "bytes=100000-"]
    assert sum(got) == delivery["size"] == path.stat().st_size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == delivery["sha256"]
    assert not (tmp_path / "out.csv.part").exists()


def test_an_interrupted_download_resumes_on_the_next_call(live, client, flow, tmp_path):
    _job, delivery = ready_delivery(client, flow)
    dropper = Dropper(after=30_000, times=1)
    live.wrapper = dropper
    target = tmp_path / "out.csv"
    with pytest.raises(NetworkError):
        flow.consumer_client.download_delivery(delivery["id"], target, max_resumes=0)
    assert (tmp_path / "out.csv.part").stat().st_size == 30_000 and not target.exists()
    path = flow.consumer_client.download_delivery(delivery["id"], target)
    assert dropper.ranges == [None, "bytes=30000-"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == delivery["sha256"]


def test_a_corrupted_download_is_refused(live, client, flow, tmp_path):
    _job, delivery = ready_delivery(client, flow)
    live.wrapper = Dropper(after=0, corrupt=True)
    with pytest.raises(ChecksumMismatch):
        flow.consumer_client.download_delivery(delivery["id"], tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == [tmp_path / "source.csv"]


def test_share_controls_and_job_cancel(client, flow):
    share = flow.share(schedule={"type": "interval", "every": "PT1H"})
    assert share["last_job_id"] is None and share["delta"] is True
    assert client.pause_share(share["id"])["status"] == "paused"
    assert client.resume_share(share["id"])["status"] == "active"
    assert client.update_share(share["id"], {"mode": "replace"})["mode"] == "replace"
    assert [s["id"] for s in client.iterate(client.list_shares)] == [share["id"]]
    job = client.run_share(share["id"])
    assert client.list_jobs(share_id=share["id"]).items[0]["id"] == job["id"]
    with pytest.raises(WaitTimeout) as info:
        client.wait_job(job["id"], 0.2, interval=0.05, until={"never"})
    assert info.value.job["id"] == job["id"]
    client.wait_job(job["id"], 30, interval=0.05, until={"awaiting_consumer", "failed"})
    cancelled = client.cancel_job(job["id"])
    assert cancelled["cancel_requested"] or cancelled["state"] == "cancelled"
    assert client.wait_job(job["id"], 30, interval=0.05)["state"] == "cancelled"
    client.delete_share(share["id"])
    with pytest.raises(NotFound):
        client.get_share(share["id"])
