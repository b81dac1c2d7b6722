"""PUSH consumer over HTTP: answers, bad input as 400 problems, parts, retries and streamed bodies."""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exchange.toolkit import ReferenceEndpoint

CSV_HEADERS = {"Content-Type": "text/csv"}


def push(
    http: requests.Session, endpoint: ReferenceEndpoint, audience: str, mode: str, body, **headers: str
) -> requests.Response:
    return http.post(
        f"{endpoint.url}/audiences/{audience}/data",
        params={"mode": mode},
        data=body,
        headers={**CSV_HEADERS, **headers},
        timeout=30,
    )


def test_add_answers_counts(endpoint: ReferenceEndpoint, http: requests.Session, consumer_dir: Path) -> None:
    response = push(http, endpoint, "Loyal customers", "add", "email,country\na@x.com,FR\n,FR\n")
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "rejected": 1}
    assert (consumer_dir / "Loyal_customers.csv").read_text() == "email,country\na@x.com,FR\n"


@pytest.mark.parametrize(
    ("mode", "body", "headers", "status", "detail"),
    [
        ("merge", "email\na\n", {}, 400, "mode"),
        ("add", "first_name,country\nAnn,FR\n", {}, 400, "no identifier column"),
        ("", "email\na\n", {}, 400, "mode"),
        ("add", '{"email": "a"}', {"Content-Type": "application/json"}, 400, "text/csv"),
        ("add", "", {}, 400, "header row is required"),
        ("add", "email\na\n", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (
            "add",
            gzip.compress(b"email\n" + b"a@x.com\n" * 500)[:-30],
            {"Content-Encoding": "gzip"},
            400,
            "truncated",
        ),
        ("add", "email\na\n", {"Content-Encoding": "br"}, 400, "Content-Encoding"),
        ("add", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {}, 400, ""),
        ("replace", "email\na\n", {"X-Exchange-Part": "two/3"}, 400, "n/N"),
        ("replace", "email\na\n", {"X-Exchange-Part": "4/3"}, 400, "n <= N"),
        ("replace", "email\na\n", {"X-Exchange-Part": "2/3"}, 409, "expected part 1"),
    ],
)
def test_bad_requests_are_problems_and_write_nothing(
    endpoint: ReferenceEndpoint,
    http: requests.Session,
    consumer_dir: Path,
    mode: str,
    body,
    headers: dict,
    status: int,
    detail: str,
) -> None:
    response = push(http, endpoint, "dest", mode, body, **headers)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and detail in problem["detail"]
    assert list(consumer_dir.iterdir()) == []


def test_replace_in_parts_with_retries(
    endpoint: ReferenceEndpoint, http: requests.Session, consumer_dir: Path
) -> None:
    push(http, endpoint, "dest", "add", "email\nold@x.com\n")
    target = consumer_dir / "dest.csv"
    key = {"Idempotency-Key": "job-1-delivery"}

    assert push(
        http, endpoint, "dest", "replace", "email\na@x.com\n", **key, **{"X-Exchange-Part": "1/2"}
    ).json() == {"accepted": 1, "rejected": 0}
    assert target.read_text() == "email\nold@x.com\n"
    # A retried part 1 (its answer was lost) is answered again without being applied twice.
    assert (
        push(
            http, endpoint, "dest", "replace", "email\na@x.com\n", **key, **{"X-Exchange-Part": "1/2"}
        ).status_code
        == 200
    )
    second = push(
        http,
        endpoint,
        "dest",
        "replace",
        gzip.compress(b"email\nb@x.com\n\n"),
        **key,
        **{"X-Exchange-Part": "2/2", "Content-Encoding": "gzip"},
    )
    assert second.json() == {"accepted": 1, "rejected": 0}
    assert target.read_text() == "email\na@x.com\nb@x.com\n"
    again = push(
        http,
        endpoint,
        "dest",
        "replace",
        gzip.compress(b"email\nb@x.com\n"),
        **key,
        **{"X-Exchange-Part": "2/2", "Content-Encoding": "gzip"},
    )
    assert again.json() == second.json()
    assert target.read_text() == "email\na@x.com\nb@x.com\n"


def generated_rows(count: int) -> Iterator[bytes]:
    yield b"email_sha256,country\n"
    for start in range(0, count, 10_000):
        yield "".join(f"{i:064x},FR\n" for i in range(start, min(start + 10_000, count))).encode()


def gzip_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        yield compressor.compress(chunk)
    yield compressor.flush()


def test_a_large_chunked_gzip_replace_streams_to_disk(
    endpoint: ReferenceEndpoint, http: requests.Session, consumer_dir: Path
) -> None:
    # A generator body is sent with Transfer-Encoding: chunked, as the exchange streams it.
    response = push(
        http, endpoint, "big", "replace", gzip_stream(generated_rows(100_000)), **{"Content-Encoding": "gzip"}
    )
    assert response.json() == {"accepted": 100_000, "rejected": 0}
    with (consumer_dir / "big.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 100_001 and rows[-1] == [f"{99_999:064x}", "FR"]
    # An add of new members afterwards appends to the committed file.
    assert (
        push(http, endpoint, "big", "add", f"email_sha256,country\n{'f' * 64},DE\n").json()["accepted"] == 1
    )
    assert (consumer_dir / "big.csv").read_text().endswith(f"{'f' * 64},DE\n")
