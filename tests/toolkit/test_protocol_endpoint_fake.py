"""The scriptable fake endpoint: every fault kind, request recording, raw data and the 202 consumer."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest
import requests

from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint
from tests.toolkit.conftest import TOKEN

CSV = "email,country\na@example.com,FR\nb@example.com,DE\n"


def post_csv(http: requests.Session, url: str, body: bytes, **headers: str) -> requests.Response:
    return http.post(url, data=body, headers={"Content-Type": "text/csv", **headers}, timeout=5)


def test_script_answers_in_order_then_handles_normally(
    fake: ProtocolEndpoint, http: requests.Session
) -> None:
    fake.script(
        "POST",
        "/audiences/x/data",
        [Fault(status=500), Fault(status=429, headers={"Retry-After": "7"}), None],
    )
    url = f"{fake.url}/audiences/x/data?mode=add"
    first, second, third = (post_csv(http, url, CSV.encode()) for _ in range(3))
    fourth = post_csv(http, url, CSV.encode())

    assert first.status_code == 500
    assert first.headers["Content-Type"] == "application/problem+json"
    assert (second.status_code, second.headers["Retry-After"]) == (429, "7")
    assert third.json() == {"accepted": 2, "rejected": 0}
    assert fourth.status_code == 200
    assert [r.status for r in fake.requests_to("POST")] == [500, 429, 200, 200]
    assert fake.consumer_file("x").read_text().splitlines() == CSV.splitlines()


def test_requests_are_recorded_with_decompressed_bodies(
    fake: ProtocolEndpoint, http: requests.Session
) -> None:
    post_csv(
        http,
        f"{fake.url}/audiences/x/data?mode=replace",
        gzip.compress(CSV.encode()),
        **{"Content-Encoding": "gzip", "Idempotency-Key": "k-1", "X-Exchange-Part": "1/1"},
    )
    http.get(f"{fake.url}/audiences", timeout=5)

    post, listing = fake.requests
    assert (post.method, post.path, post.query) == ("POST", "/audiences/x/data", {"mode": "replace"})
    assert post.body == CSV.encode() and post.raw_body[:2] == b"\x1f\x8b"
    assert post.header("idempotency-key") == "k-1" and post.header("X-EXCHANGE-PART") == "1/1"
    assert post.header("Authorization") == f"Bearer {TOKEN}"
    assert post.status == 200 and post.fault is None
    assert (listing.method, listing.path, listing.body) == ("GET", "/audiences", b"")
    fake.clear_requests()
    assert fake.requests == []


def test_dropped_connection_gives_no_answer(fake: ProtocolEndpoint, http: requests.Session) -> None:
    fake.script("POST", "/audiences/*/data", [Fault(drop_connection=True)])
    body = ("email\n" + "".join(f"user{i}@example.com\n" for i in range(2000))).encode()

    with pytest.raises(requests.ConnectionError):
        post_csv(http, f"{fake.url}/audiences/x/data?mode=add", body)

    (record,) = fake.requests
    assert record.status is None and record.fault == Fault(drop_connection=True)
    assert 0 < len(record.body) < len(body)
    assert not fake.consumer_file("x").exists()
    # The server is still healthy for the next call.
    assert post_csv(http, f"{fake.url}/audiences/x/data?mode=add", body).json()["accepted"] == 2000


def test_delay_makes_a_slow_answer(fake: ProtocolEndpoint, http: requests.Session) -> None:
    fake.write_audience("loyal", CSV)
    fake.script("GET", "/audiences", [Fault(delay=0.4), Fault(delay=0.4, status=503)])

    started = time.monotonic()
    assert http.get(f"{fake.url}/audiences", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.4
    with pytest.raises(requests.ReadTimeout):
        http.get(f"{fake.url}/audiences", timeout=0.1)


def test_forever_fault_answers_every_call(producer_dir: Path, consumer_dir: Path) -> None:
    with ProtocolEndpoint(producer_dir, consumer_dir) as fake:
        fake.write_audience("loyal", CSV)
        fake.script("GET", "/audiences/loyal/data", [Fault(status=202, forever=True)])
        answers = [requests.get(f"{fake.url}/audiences/loyal/data", timeout=5) for _ in range(3)]
    assert [(a.status_code, a.headers["Retry-After"]) for a in answers] == [(202, "1")] * 3


def test_drop_after_bytes_cuts_the_data_stream(fake: ProtocolEndpoint, http: requests.Session) -> None:
    fake.write_audience("big", "email\n" + "".join(f"user{i}@example.com\n" for i in range(5000)))
    fake.script("GET", "/audiences/big/data", [Fault(drop_after_bytes=1000)])

    with pytest.raises(requests.RequestException):
        http.get(f"{fake.url}/audiences/big/data", timeout=5)  # reads the whole body
    assert http.get(f"{fake.url}/audiences/big/data", timeout=5).text.count("\n") == 5001


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"%PDF-1.7 not a csv at all", {}),
        (gzip.compress(CSV.encode())[:20], {"Content-Encoding": "gzip"}),
        (b"email\n\xff\xfeinvalid@example.com\n", {}),
    ],
)
def test_serve_raw_sends_exact_bytes(fake: ProtocolEndpoint, body: bytes, headers: dict) -> None:
    fake.write_audience("loyal", CSV)
    fake.serve_raw("loyal", body, headers=headers)
    response = requests.get(
        f"{fake.url}/audiences/loyal/data",
        stream=True,
        timeout=5,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.raw.read(decode_content=False) == body
    assert response.headers.get("Content-Encoding") == headers.get("Content-Encoding")
    # Raw data never bypasses authentication.
    assert requests.get(f"{fake.url}/audiences/loyal/data", timeout=5).status_code == 401
    fake.serve_raw("loyal", None)
    assert (
        requests.get(
            f"{fake.url}/audiences/loyal/data", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}
        ).text
        == CSV
    )


def test_push_202_consumer_applies_and_waits_for_ack(producer_dir: Path, consumer_dir: Path) -> None:
    with ProtocolEndpoint(producer_dir, consumer_dir, push_202=True) as fake:
        response = requests.post(
            f"{fake.url}/audiences/dest/data?mode=add",
            data=CSV + "\nlonely\n",
            headers={"Content-Type": "text/csv", "X-Exchange-Job-Id": "job-9", "Idempotency-Key": "key-1"},
            timeout=5,
        )
        assert response.status_code == 202
        assert fake.pending_acks == [
            {
                "audience_id": "dest",
                "mode": "add",
                "part": None,
                "job_id": "job-9",
                "idempotency_key": "key-1",
                "accepted": 2,
                "rejected": 1,
            }
        ]
        assert fake.consumer_file("dest").read_text() == CSV


def test_unused_script_entries_fail_the_test(producer_dir: Path) -> None:
    with pytest.raises(AssertionError, match="never used"), ProtocolEndpoint(producer_dir) as fake:
        fake.script("*", "/audiences*", [None, Fault(status=500)])
        requests.get(f"{fake.url}/audiences", timeout=5)
