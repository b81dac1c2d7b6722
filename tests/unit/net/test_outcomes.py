"""The status/exception table and the errors raised from it."""
from __future__ import annotations

import email.utils
import time

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from exchange.errors import InvalidCredentials, PermanentTransferError, RetryableTransferError, UnsafeUrl
from exchange.net import (
    OutboundSession,
    RateLimitedTransferError,
    Resolution,
    classify,
    parse_retry_after,
    raise_for_outcome,
)

SECRET_URL = "https://api.partner.example/v1/audiences/7/data?mode=add&access_token=s3cret"


def make_response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.headers = CaseInsensitiveDict(headers or {})
    resp._content = body
    resp.request = requests.Request(
        "POST", SECRET_URL, headers={"Authorization": "Bearer top-secret-token"}
    ).prepare()
    resp.url = SECRET_URL
    return resp


@pytest.mark.parametrize(
    ("status", "resolution"),
    [
        (200, Resolution.OK), (201, Resolution.OK), (202, Resolution.OK), (204, Resolution.OK),
        (304, Resolution.OK), (302, Resolution.FAIL),
        (400, Resolution.FAIL), (404, Resolution.FAIL), (410, Resolution.FAIL), (413, Resolution.FAIL),
        (422, Resolution.FAIL), (401, Resolution.CREDENTIALS), (403, Resolution.CREDENTIALS),
        (408, Resolution.RETRY), (409, Resolution.RETRY), (423, Resolution.RETRY), (429, Resolution.RETRY),
        (500, Resolution.RETRY), (501, Resolution.FAIL), (502, Resolution.RETRY), (503, Resolution.RETRY),
        (504, Resolution.RETRY), (599, Resolution.RETRY),
    ],
)
def test_status_table(status: int, resolution: Resolution) -> None:
    assert classify(make_response(status)).resolution is resolution


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, InvalidCredentials), (403, InvalidCredentials), (404, PermanentTransferError),
        (501, PermanentTransferError), (503, RetryableTransferError), (429, RateLimitedTransferError),
    ],
)
def test_raise_for_outcome_raises_the_mapped_error(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        raise_for_outcome(make_response(status), credential_setting="api_token")
    message = str(info.value)
    assert "top-secret-token" not in message and "s3cret" not in message
    assert f"answered {status}" in message
    assert "https://api.partner.example/v1/audiences/7/data?mode=add&access_token=REDACTED" in message


def test_raise_for_outcome_returns_ok_response() -> None:
    resp = make_response(200)
    assert raise_for_outcome(resp) is resp


def test_invalid_credentials_names_the_setting() -> None:
    with pytest.raises(InvalidCredentials) as info:
        raise_for_outcome(make_response(401), credential_setting="credential")
    assert info.value.setting == "credential"
    assert "credential" in info.value.detail
    assert not info.value.retryable


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("99999", cap=600) == 600
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    now = time.time()
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert 85 <= parse_retry_after(date, now=now) <= 91
    past = email.utils.formatdate(now - 90, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_retry_after_is_carried_on_the_error() -> None:
    with pytest.raises(RetryableTransferError) as info:
        raise_for_outcome(make_response(503, {"Retry-After": "7"}))
    assert info.value.retry_after == 7.0
    assert info.value.retryable
    with pytest.raises(RateLimitedTransferError) as info:
        raise_for_outcome(make_response(429, {"Retry-After": "100000"}), retry_after_cap=60)
    assert info.value.retry_after == 60


def test_peer_problem_detail_is_included_and_redacted() -> None:
    body = b'{"detail": "column email missing; see https://docs.partner.example/x?key=abc"}'
    outcome = classify(make_response(422, {"Content-Type": "application/problem+json"}, body))
    assert "column email missing" in outcome.message
    assert "abc" not in outcome.message
    # Non-JSON bodies are not echoed: they may contain the rows we sent.
    assert "alice@" not in classify(make_response(400, {"Content-Type": "text/plain"}, b"alice@x.example")).message


@pytest.mark.parametrize(
    ("exc", "resolution"),
    [
        (requests.ConnectionError("Max retries exceeded with url: /x?token=s3cret"), Resolution.RETRY),
        (requests.ConnectTimeout("connect timeout"), Resolution.RETRY),
        (requests.ReadTimeout("read timeout"), Resolution.RETRY),
        (requests.exceptions.ChunkedEncodingError("Connection broken"), Resolution.RETRY),
        (ConnectionResetError(104, "reset by peer"), Resolution.RETRY),
        (requests.exceptions.SSLError("certificate verify failed"), Resolution.FAIL),
        (requests.TooManyRedirects("Exceeded 3 redirects."), Resolution.FAIL),
        (requests.exceptions.InvalidURL("bad"), Resolution.FAIL),
        (UnsafeUrl("The URL points at a loopback address"), Resolution.FAIL),
        (ValueError("boom"), Resolution.FAIL),
    ],
)
def test_exception_table(exc: BaseException, resolution: Resolution) -> None:
    outcome = classify(exc)
    assert outcome.resolution is resolution
    assert "s3cret" not in outcome.message


def test_raise_for_outcome_on_exception_chains_it() -> None:
    original = requests.ReadTimeout("read timed out")
    with pytest.raises(RetryableTransferError) as info:
        raise_for_outcome(original)
    assert info.value.__cause__ is original


def test_dropped_connection_mid_body_is_retryable(raw_server) -> None:
    def drop(conn) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/csv\r\n\r\nemail\na@x\n")

    port = raw_server(drop)
    session = OutboundSession(allow_private=True)
    with pytest.raises(requests.RequestException) as info:
        session.get(f"http://127.0.0.1:{port}/audiences/1/data").content  # noqa: B018
    assert classify(info.value).resolution is Resolution.RETRY
