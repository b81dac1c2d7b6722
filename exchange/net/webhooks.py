"""Standard Webhooks signing and verification (SPEC §5.3, https://www.standardwebhooks.com).

The signature is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. Secrets are exchanged in
the ``whsec_<base64>`` form; the key is the decoded bytes. ``webhook-id`` stays the same across
retries of one event so receivers can de-duplicate; the timestamp is fresh for each attempt.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300


def generate_webhook_secret() -> str:
    """A new per-subscription secret in ``whsec_`` form (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: bytes | str) -> bytes:
    """Raw key bytes. Strings are base64 with an optional ``whsec_`` prefix, as the reference libraries do."""
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError("A webhook secret must be base64, optionally prefixed with 'whsec_'.") from exc
    if not key:
        raise ValueError("A webhook secret must not be empty.")
    return key


def sign_webhook(secret: bytes | str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def webhook_headers(
    secret: bytes | str, msg_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """Headers for one delivery attempt of message ``msg_id`` carrying the JSON ``body``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_webhook(secret, msg_id, ts, body),
        "Content-Type": "application/json",
    }


def verify_webhook(
    secret: bytes | str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """True when ``headers`` carry a valid v1 signature of ``body`` within ``tolerance`` seconds.

    Header names are matched case-insensitively; several space-separated signatures are allowed
    (receivers see both during a secret rotation).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    ts_text = lowered.get("webhook-timestamp")
    sig_header = lowered.get("webhook-signature")
    if not msg_id or not ts_text or not sig_header:
        return False
    try:
        timestamp = int(ts_text)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False  # too old (replay) or too far in the future
    expected = sign_webhook(secret, msg_id, timestamp, body).encode()
    for candidate in sig_header.split():
        if candidate.startswith(f"{SIGNATURE_VERSION},") and hmac.compare_digest(candidate.encode(), expected):
            return True
    return False
