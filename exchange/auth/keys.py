"""API keys: random bearer tokens shown once, stored as a visible prefix plus a SHA-256 hash.

A key looks like ``aex_<prefix>_<secret>``. The prefix (12 hex chars) identifies the row and is safe
to display; the 32-byte secret is only ever stored hashed. SHA-256 is adequate because the secret is
high-entropy random data (a slow password hash would only add latency to every request).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import NotFound, Unauthorized
from ..models import Account, ApiKey, Endpoint, utcnow

KEY_PREFIX = "aex"
# last_used_at is written at most this often per key, so hot polling does not write on every call
LAST_USED_GRANULARITY = timedelta(seconds=30)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account key, an endpoint key, or a signed-in user."""

    account_id: str
    scope: str  # account | endpoint | user
    key_id: str | None = None
    key_prefix: str | None = None
    endpoint_id: str | None = None
    user_id: str | None = None

    @property
    def actor(self) -> str:
        if self.user_id:
            return f"user:{self.user_id}"
        return f"key:{self.key_prefix}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(session: Session, account_id: str, *, scope: str = "account", name: str = "",
              endpoint_id: str | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with the plaintext token (the only time it exists)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(account_id=account_id, scope=scope, name=name, endpoint_id=endpoint_id,
                 prefix=prefix, secret_hash=_hash(secret))
    session.add(key)
    session.flush()
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


class _KeyCache:
    """Tokens this process authenticated recently → their principal, for a bounded time.

    A status poller calls several times a second with the same key; without this every call looked
    the key up (and every 30 s wrote ``last_used_at``). Entries live ``ttl`` seconds
    (``EXCHANGE_API_KEY_CACHE_SECONDS``), so a key revoked, or deleted with its endpoint or account,
    through *another* process stops working within that time; in the process that revoked it, at once
    (``forget``). Only successful authentications are cached, keyed by the token's SHA-256 (the
    plaintext is never kept), at most ``size`` entries (oldest dropped first).
    """

    def __init__(self, size: int = 10_000, clock=time.monotonic) -> None:
        self.size, self.clock = size, clock
        self._items: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            item = self._items.get(digest)
            if item is None:
                return None
            if item[1] <= self.clock():
                del self._items[digest]
                return None
            return item[0]

    def put(self, digest: str, principal: Principal, ttl: float) -> None:
        with self._lock:
            self._items[digest] = (principal, self.clock() + ttl)
            self._items.move_to_end(digest)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget(self, *, key_id: str | None = None, account_id: str | None = None,
               endpoint_id: str | None = None) -> None:
        """Drop the entries of a key, of an account's keys or of an endpoint's keys."""
        with self._lock:
            for digest, (p, _) in list(self._items.items()):
                if ((key_id is not None and p.key_id == key_id)
                        or (account_id is not None and p.account_id == account_id)
                        or (endpoint_id is not None and p.endpoint_id == endpoint_id)):
                    del self._items[digest]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


key_cache = _KeyCache()


def authenticate(session: Session, token: str, *, cache_seconds: float = 0.0) -> Principal:
    """Resolve a bearer token to a principal, or raise Unauthorized (same message for every failure).

    With ``cache_seconds`` > 0 a token authenticated that recently by this process is answered from
    :data:`key_cache` without a query (see :class:`_KeyCache` for what that means for revocation)."""
    digest = ""
    if cache_seconds > 0:
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = key_cache.get(digest)
        if cached is not None:
            return cached
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        raise Unauthorized("The API key is malformed.")
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(parts[2])):
        raise Unauthorized("The API key is not valid.")
    if key.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        key.last_used_at = now
    principal = Principal(account_id=key.account_id, scope=key.scope, key_id=key.id, key_prefix=key.prefix,
                          endpoint_id=key.endpoint_id)
    if digest:
        key_cache.put(digest, principal, cache_seconds)
    return principal


def list_keys(session: Session, account_id: str) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.account_id == account_id)
                                .order_by(ApiKey.created_at)))


def get_key(session: Session, account_id: str, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.account_id != account_id:
        raise NotFound("No such API key.")
    return key


def revoke_key(session: Session, account_id: str, key_id: str) -> ApiKey:
    key = get_key(session, account_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    key_cache.forget(key_id=key.id)
    return key


def create_key(session: Session, account_id: str, *, scope: str, name: str = "",
               endpoint_id: str | None = None) -> tuple[ApiKey, str]:
    if any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for ch in name):
        from ..errors import ValidationFailed
        raise ValidationFailed("Names may not contain control characters.",
                               errors={"name": ["Control characters (such as NUL, tab or newline) are not allowed."]})
    if scope == "endpoint":
        ep = session.get(Endpoint, endpoint_id) if endpoint_id else None
        if ep is None or ep.account_id != account_id:
            from ..errors import ValidationFailed
            raise ValidationFailed("Unknown endpoint.", errors={"endpoint_id": ["No such endpoint."]})
    return issue_key(session, account_id, scope=scope, name=name,
                     endpoint_id=endpoint_id if scope == "endpoint" else None)


def create_account(session: Session, name: str) -> tuple[Account, str]:
    account = Account(name=name)
    session.add(account)
    session.flush()
    _key, token = issue_key(session, account.id, scope="account", name="first key")
    return account, token
