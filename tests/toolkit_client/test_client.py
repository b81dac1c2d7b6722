"""The toolkit client against a live exchange on loopback: control plane, uploads, errors, retries."""
from __future__ import annotations

import gzip
import hashlib
import io
import time

import pytest

from exchange.toolkit.client import (
    ApiError,
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    NetworkError,
    NotFound,
    Unauthorized,
    ValidationError,
)
from exchange.toolkit.reference_endpoint import ReferenceEndpoint

CSV = "email,country\nAlice@Example.com,FR\nbob@example.com,DE\nnot-an-email,FR\n"


def push_producer(client: Client, name: str = "CDP") -> dict:
    return client.register_endpoint({"name": name, "producer": {"transport": "push"}, "identifiers": ["email"],
                                     "attributes": ["country"]})


def test_endpoint_lifecycle_and_pagination(client):
    created = [push_producer(client, f"CDP {i}") for i in range(3)]
    assert all(e["endpoint_key"].startswith("aex_") for e in created)
    first = client.list_endpoints(page_size=2)
    assert (len(first.items), first.total, first.has_next) == (2, 3, True)
    assert sorted(e["name"] for e in client.iterate(client.list_endpoints, page_size=2)) == [
        "CDP 0", "CDP 1", "CDP 2"]
    eid = created[0]["id"]
    assert client.update_endpoint(eid, {"name": "Renamed"})["name"] == "Renamed"
    assert client.disable_endpoint(eid)["status"] == "disabled"
    assert [e["id"] for e in client.iterate(client.list_endpoints, status="disabled")] == [eid]
    assert client.enable_endpoint(eid)["status"] == "active"
    client.delete_endpoint(eid)
    with pytest.raises(NotFound) as info:
        client.get_endpoint(eid)
    assert info.value.status == 404 and info.value.title == "Not found" and info.value.request_id


def test_verify_and_refresh_a_pull_producer(client, tmp_path):
    (tmp_path / "loyal.csv").write_text(CSV)
    with ReferenceEndpoint(producer_dir=tmp_path, credential="crm-secret") as crm:
        ep = client.register_endpoint({"name": "CRM", "contact_url": crm.url, "producer": {"transport": "pull"},
                                       "identifiers": ["email"], "attributes": ["country"],
                                       "credential": "crm-secret"})
        verdict = client.verify_endpoint(ep["id"])
        assert verdict["ok"] and verdict["reachable"] and verdict["checks"]
        (tmp_path / "more.csv").write_text(CSV)
        refreshed = client.refresh_endpoint(ep["id"])
        assert (refreshed["found"], refreshed["new"]) == (2, 1)
    found = client.search_audiences("loyal", producer=ep["id"]).items
    assert [a["external_id"] for a in found] == ["loyal"]
    assert client.get_audience(found[0]["id"])["size"] == 3


def test_push_producer_metadata_and_streamed_uploads(live, client, tmp_path):
    ep = push_producer(client)
    producer = live.client(ep["endpoint_key"])
    meta = producer.put_audience_metadata(ep["id"], "loyal", {"name": "Loyal", "identifiers": ["email"],
                                                              "tags": ["vip"]})
    assert (meta["name"], meta["tags"]) == ("Loyal", ["vip"])
    path = tmp_path / "loyal.csv"
    path.write_bytes(CSV.encode())
    expected = hashlib.sha256(CSV.encode()).hexdigest()
    seen: list[int] = []
    plain = producer.upload_audience_data(ep["id"], "loyal", path, progress=seen.append)
    assert (plain["rows"], plain["sha256"], sum(seen)) == (3, expected, len(CSV))
    compressed = producer.upload_audience_data(ep["id"], "loyal", str(path), gzip=True)
    assert (compressed["rows"], compressed["sha256"]) == (3, expected)
    gz = tmp_path / "loyal.csv.gz"
    gz.write_bytes(gzip.compress(CSV.encode()))
    assert producer.upload_audience_data(ep["id"], "loyal", gz)["sha256"] == expected
    with path.open("rb") as fh:
        assert producer.upload_audience_data(ep["id"], "loyal", fh)["rows"] == 3
    # a non-seekable stream is sent once, without retries
    assert producer.upload_audience_data(ep["id"], "loyal", io.BufferedReader(io.BytesIO(CSV.encode())))["rows"] == 3
    assert client.search_audiences(tag="vip").items[0]["size"] == 3


@pytest.mark.parametrize(("call", "error", "status"), [
    (lambda c: c.get_share("missing"), NotFound, 404),
    (lambda c: c.register_endpoint({"name": "x", "producer": {"transport": "carrier-pigeon"},
                                    "identifiers": ["email"]}), ValidationError, 422),
    (lambda c: c.create_key(scope="endpoint"), ValidationError, 422),
    (lambda c: c.ack_delivery("missing", 1), NotFound, 404),
    (lambda c: c.list_jobs(state="sleeping"), ValidationError, 422),
])
def test_problem_documents_become_typed_errors(client, call, error, status):
    with pytest.raises(error) as info:
        call(client)
    assert isinstance(info.value, ApiError) and info.value.status == status
    assert info.value.detail and str(info.value).startswith(str(status))
    if status == 422:
        assert info.value.errors and all(isinstance(v, list) for v in info.value.errors.values())


def test_validation_errors_name_the_fields(client):
    with pytest.raises(ValidationError) as info:
        client.register_endpoint({"name": "CRM", "producer": {"transport": "pull"}, "identifiers": ["email"]})
    assert "contact_url" in info.value.errors


def test_keys_and_authentication_errors(live, client):
    created = client.create_key("ci")
    other = live.client(created["key"])
    assert other.list_keys().total == 2
    client.revoke_key(created["id"])
    with pytest.raises(Unauthorized, match="revoked"):
        other.list_keys()
    with pytest.raises(Unauthorized):
        live.client("aex_nothing_here").list_endpoints()
    with pytest.raises(Unauthorized):
        live.client(None).list_endpoints()
    ep = push_producer(client)
    with pytest.raises(Forbidden):  # endpoint keys do data-plane work only
        live.client(ep["endpoint_key"]).list_endpoints()


def test_idempotency_key_conflict_is_a_conflict(client):
    body = {"name": "k1"}
    client.request("POST", "/v1/keys", json=body, headers={"Idempotency-Key": "same"}).close()
    with pytest.raises(Conflict):
        client.request("POST", "/v1/keys", json={"name": "k2"}, headers={"Idempotency-Key": "same"})


def test_bad_base_url_is_refused():
    with pytest.raises(ValueError):
        Client("ftp://example.com", "k")


def test_network_error_after_retries(closed_port):
    client = Client(f"http://127.0.0.1:{closed_port}", "aex_a_b", retries=2, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(NetworkError, match="refused|Errno"):
        client.list_endpoints()
    assert time.monotonic() - started < 5


class Flaky:
    """Answers the first ``failures`` calls to ``path`` with ``status`` (and Retry-After), then passes."""

    def __init__(self, path: str, failures: int, status: int, method: str = "POST", retry_after: str = "0"):
        self.path, self.failures, self.status, self.method = path, failures, status, method
        self.retry_after = retry_after
        self.keys: list[str | None] = []
        self.bodies: list[bytes] = []

    def __call__(self, app):
        def wsgi(environ, start_response):
            if environ["PATH_INFO"] == self.path and environ["REQUEST_METHOD"] == self.method:
                self.keys.append(environ.get("HTTP_IDEMPOTENCY_KEY"))
                if len(self.keys) <= self.failures:
                    length = environ.get("CONTENT_LENGTH")
                    stream = environ["wsgi.input"]  # chunked bodies arrive de-chunked, ending at EOF
                    self.bodies.append(stream.read(int(length)) if length else stream.read())
                    start_response(f"{self.status} Unavailable", [
                        ("Content-Type", "application/problem+json"), ("Retry-After", self.retry_after)])
                    return [b'{"title": "Busy", "status": %d, "detail": "try later"}' % self.status]
            return app(environ, start_response)
        return wsgi


@pytest.mark.parametrize("status", [429, 503])
def test_retries_keep_one_idempotency_key(live, client, status):
    flaky = Flaky("/v1/keys", failures=2, status=status)
    live.wrapper = flaky
    key = client.create_key("retried")
    assert key["key"] and len(flaky.keys) == 3
    assert len(set(flaky.keys)) == 1 and flaky.keys[0]
    assert client.list_keys().total == 2  # created once


def test_retries_give_up_with_the_last_problem(live, client):
    live.wrapper = Flaky("/v1/keys", failures=10, status=503)
    with pytest.raises(ApiError) as info:
        client.create_key("never")
    assert info.value.status == 503 and info.value.detail == "try later"


def test_bad_request_is_not_retried(live, client):
    flaky = Flaky("/v1/keys", failures=1, status=400)
    live.wrapper = flaky
    with pytest.raises(BadRequest):
        client.create_key("x")
    assert len(flaky.keys) == 1


def test_adapters(client):
    names = {a["name"] for a in client.list_adapters()}
    assert {"equativ", "batch", "stackadapt", "equals"} <= names


def test_retry_after_is_honoured(live, client):
    live.wrapper = Flaky("/v1/keys", failures=1, status=429, retry_after="1")
    started = time.monotonic()
    client.create_key("patient")
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("gzip_it", [False, True])
def test_a_retried_upload_sends_the_whole_file_again(live, client, tmp_path, gzip_it):
    ep = push_producer(client)
    path = tmp_path / "loyal.csv"
    path.write_text(CSV)
    flaky = Flaky(f"/v1/endpoints/{ep['id']}/audiences/loyal/data", failures=1, status=503, method="PUT")
    live.wrapper = flaky
    result = live.client(ep["endpoint_key"]).upload_audience_data(ep["id"], "loyal", path, gzip=gzip_it)
    assert (result["rows"], result["sha256"]) == (3, hashlib.sha256(CSV.encode()).hexdigest())
    assert len(flaky.keys) == 2
    first = gzip.decompress(flaky.bodies[0]) if gzip_it else flaky.bodies[0]
    assert first == CSV.encode()
