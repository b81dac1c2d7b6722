"""Standard Webhooks signatures: known vector, independent HMAC, verification rules."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from exchange.net import generate_webhook_secret, sign_webhook, verify_webhook, webhook_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'


def test_published_vector() -> None:
    # The example from the Standard Webhooks / Svix documentation.
    assert sign_webhook(SECRET, MSG_ID, TIMESTAMP, BODY) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_matches_an_independent_hmac() -> None:
    key = b"\x01\x02 raw key bytes"
    body = b'{"type":"job.succeeded","job_id":"j1"}'
    expected = base64.b64encode(hmac.new(key, b"evt_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert sign_webhook(key, "evt_1", 1700000000, body) == f"v1,{expected}"
    assert sign_webhook("whsec_" + base64.b64encode(key).decode(), "evt_1", 1700000000, body) == f"v1,{expected}"
    assert sign_webhook(base64.b64encode(key).decode(), "evt_1", 1700000000, body) == f"v1,{expected}"


def test_headers_and_verification_round_trip() -> None:
    secret = generate_webhook_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    headers = webhook_headers(secret, "evt_42", b'{"state":"failed"}', timestamp=1_700_000_000)
    assert headers["webhook-id"] == "evt_42" and headers["webhook-timestamp"] == "1700000000"
    assert headers["Content-Type"] == "application/json"
    assert verify_webhook(secret, headers, b'{"state":"failed"}', now=1_700_000_100)
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify_webhook(secret, upper, b'{"state":"failed"}', now=1_700_000_100)


@pytest.mark.parametrize(
    ("change", "now"),
    [
        ({}, 1_700_000_301),  # too old
        ({}, 1_699_999_699),  # too far in the future
        ({"webhook-id": "evt_other"}, 1_700_000_000),
        ({"webhook-timestamp": "1700000001"}, 1_700_000_000),
        ({"webhook-timestamp": "yesterday"}, 1_700_000_000),
        ({"webhook-signature": "v1,AAAA"}, 1_700_000_000),
        ({"webhook-signature": ""}, 1_700_000_000),
    ],
)
def test_verification_rejects(change: dict, now: int) -> None:
    secret = generate_webhook_secret()
    headers = webhook_headers(secret, "evt_1", b"{}", timestamp=1_700_000_000) | change
    assert not verify_webhook(secret, headers, b"{}", tolerance=300, now=now)


def test_tampered_body_or_other_secret_fails() -> None:
    secret = generate_webhook_secret()
    headers = webhook_headers(secret, "evt_1", b'{"a":1}', timestamp=1_700_000_000)
    assert not verify_webhook(secret, headers, b'{"a":2}', now=1_700_000_000)
    assert not verify_webhook(generate_webhook_secret(), headers, b'{"a":1}', now=1_700_000_000)


def test_any_of_several_signatures_may_match() -> None:
    old, new = generate_webhook_secret(), generate_webhook_secret()
    sig_old = sign_webhook(old, "evt_1", 1_700_000_000, b"{}")
    sig_new = sign_webhook(new, "evt_1", 1_700_000_000, b"{}")
    headers = {"webhook-id": "evt_1", "webhook-timestamp": "1700000000", "webhook-signature": f"{sig_new} {sig_old}"}
    assert verify_webhook(old, headers, b"{}", now=1_700_000_000)
    assert verify_webhook(new, headers, b"{}", now=1_700_000_000)


def test_invalid_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign_webhook("whsec_not base64!!", "evt_1", 1, b"")
    with pytest.raises(ValueError, match="empty"):
        sign_webhook(b"", "evt_1", 1, b"")
