"""The credential of an endpoint connected by OAuth 2.0: refreshed before it expires and, once, on a 401.

:func:`bearer` is what :func:`exchange.catalog.endpoints.credential` returns for such an endpoint: an
object that formats as the current access token (``f"Bearer {token}"``) and that
:mod:`exchange.endpoint_client` asks to :meth:`~OAuthBearer.refresh` when the endpoint answers 401.
A refresh the provider refuses disables the endpoint, records an audit entry
(``endpoint.disabled``), sends a signed ``endpoint.disabled`` webhook to the account and raises
:class:`~exchange.errors.InvalidCredentials`, so the job fails with a clear message.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid

from ..errors import InvalidCredentials
from ..models import Account, Application, Endpoint
from ..runtime import Runtime
from . import oauth

log = logging.getLogger(__name__)
ACTOR = "system:oauth2"


class OAuthBearer:
    """The access token of one connected endpoint; ``str()`` is the token itself."""

    def __init__(self, rt: Runtime, endpoint_id: str, access_token: str):
        self.rt, self.endpoint_id, self.access_token = rt, endpoint_id, access_token
        self.refreshed = 0

    def __str__(self) -> str:
        return self.access_token

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:  # never the token
        return f"OAuthBearer(endpoint={self.endpoint_id})"

    def refresh(self) -> None:
        """Called after a 401: get a new access token (or disable the endpoint and raise)."""
        self.access_token = _refresh(self.rt, self.endpoint_id, force=True, stale=self.access_token)
        self.refreshed += 1


def bearer(rt: Runtime, ep: Endpoint) -> OAuthBearer:
    token = json.loads(rt.secrets.decrypt(ep.credential_enc))
    if oauth.expiring(token):
        return OAuthBearer(rt, ep.id, _refresh(rt, ep.id, force=False, stale=token["access_token"]))
    return OAuthBearer(rt, ep.id, token["access_token"])


def _refresh(rt: Runtime, endpoint_id: str, *, force: bool, stale: str) -> str:
    """Refresh under a row lock; a token someone else refreshed meanwhile is used as it is."""
    with rt.db.session() as s:
        ep = s.get(Endpoint, endpoint_id, with_for_update=True)
        if ep is None or ep.credential_type != "oauth2" or not ep.credential_enc:
            raise InvalidCredentials("The endpoint's connection is gone; reconnect the application.")
        token = json.loads(rt.secrets.decrypt(ep.credential_enc))
        if token["access_token"] != stale and not oauth.expiring(token):
            return token["access_token"]  # refreshed by another worker
        if not force and not oauth.expiring(token):
            return token["access_token"]
        app = s.get(Application, ep.application_id) if ep.application_id else None
        if app is None:
            raise InvalidCredentials("The application of this endpoint no longer exists; its token cannot be "
                                     "renewed.")
        try:
            new = oauth.refresh(rt, app, token)
        except oauth.OAuthRefused as exc:
            why = exc.detail.removeprefix("The provider refused: ")
            detail = (f"The provider refused to renew the access token ({why}); the endpoint is disabled. "
                      "Reconnect the application to enable it again.")
            _disable(rt, s, ep, detail)
            s.commit()
            raise InvalidCredentials(detail) from None
        ep.credential_enc = rt.secrets.encrypt(oauth.dumps(new))
        return new["access_token"]


def _disable(rt: Runtime, s, ep: Endpoint, detail: str) -> None:
    from ..auth.audit import add_entry

    ep.status, ep.last_refresh_error = "disabled", detail
    add_entry(s, account_id=ep.account_id, actor=ACTOR, action="endpoint.disabled", object_type="endpoint",
              object_id=ep.id, remote_addr=None)
    account = s.get(Account, ep.account_id)
    targets = [(u, enc) for u, enc in ((account.webhook_url, account.webhook_secret_enc) if account else (None, None),
                                       (ep.webhook_url, ep.webhook_secret_enc)) if u and enc]
    body = json.dumps({"type": "endpoint.disabled", "timestamp": int(time.time()),
                       "data": {"endpoint_id": ep.id, "application_id": ep.application_id,
                                "reason": detail}}).encode()
    for url, enc in targets:
        threading.Thread(target=send_webhook, args=(rt, url, rt.secrets.decrypt(enc), body),
                         name="endpoint-webhook", daemon=True).start()


def send_webhook(rt: Runtime, url: str, secret: str, body: bytes, attempts: int = 3) -> bool:
    """A signed (Standard Webhooks) POST, retried a few times; never raises."""
    from ..net import webhook_headers

    msg_id = "msg_" + uuid.uuid4().hex
    for attempt in range(attempts):
        try:
            headers = {"Content-Type": "application/json", **webhook_headers(secret, msg_id, body)}
            with rt.http() as http:
                resp = http.post(url, data=body, headers=headers, timeout=(5, 10))
            if resp.status_code < 300:
                return True
            if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                return False
        except Exception as exc:  # noqa: BLE001 - a webhook never fails the caller
            log.info("endpoint webhook attempt %d failed: %s", attempt + 1, type(exc).__name__)
        time.sleep(0.5 * 4 ** attempt)
    return False


def revoke(rt: Runtime, ep: Endpoint) -> bool:
    """Deleting a connected endpoint revokes its tokens at the provider when it offers RFC 7009."""
    if ep.credential_type != "oauth2" or not ep.credential_enc or not ep.application_id:
        return False
    with rt.db.session() as s:
        app = s.get(Application, ep.application_id)
        if app is None:
            return False
        return oauth.revoke(rt, app, json.loads(rt.secrets.decrypt(ep.credential_enc)))
