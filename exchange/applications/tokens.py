"""The credential of an endpoint connected by OAuth 2.0: refreshed before it expires and, once, on a 401.

:func:`bearer` is what :func:`exchange.catalog.endpoints.credential` returns for such an endpoint: an
object that formats as the current access token (``f"Bearer {token}"``) and that
:mod:`exchange.endpoint_client` asks to :meth:`~OAuthBearer.refresh` when the endpoint answers 401.
A refresh the provider refuses disables the endpoint, records an audit entry
(``endpoint.disabled``), queues a signed ``endpoint.disabled`` webhook (durable outbox) for the account and raises
:class:`~exchange.errors.InvalidCredentials`, so the job fails with a clear message.
"""
from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from ..errors import InvalidCredentials
from ..models import Account, Application, Endpoint
from . import oauth

if TYPE_CHECKING:
    from ..runtime import Runtime

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
    """Disable the endpoint, audit it, and queue signed ``endpoint.disabled`` webhooks in the durable
    outbox (same transaction) for the account's and the endpoint's subscribers."""
    from ..auth.audit import add_entry
    from ..models import WebhookMessage, utcnow
    from ..webhooks.outbox import new_message_id

    ep.status, ep.last_refresh_error = "disabled", detail
    add_entry(s, account_id=ep.account_id, actor=ACTOR, action="endpoint.disabled", object_type="endpoint",
              object_id=ep.id, remote_addr=None)
    account = s.get(Account, ep.account_id)
    subscribers = []
    if ep.webhook_url and ep.webhook_secret_enc:
        subscribers.append(f"endpoint:{ep.id}")
    if account is not None and account.webhook_url and account.webhook_secret_enc:
        subscribers.append(f"account:{account.id}")
    body = json.dumps({"type": "endpoint.disabled", "timestamp": int(time.time()),
                       "data": {"endpoint_id": ep.id, "application_id": ep.application_id, "reason": detail}},
                      separators=(",", ":"))
    now = utcnow()
    for sub in subscribers:
        s.add(WebhookMessage(id=new_message_id(), account_id=ep.account_id, subscriber=sub, job_id=None,
                             event_type="endpoint.disabled", payload=body, status="pending", attempts=0,
                             next_attempt_at=now, created_at=now))


def revoke(rt: Runtime, ep: Endpoint) -> bool:
    """Deleting a connected endpoint revokes its tokens at the provider when it offers RFC 7009."""
    if ep.credential_type != "oauth2" or not ep.credential_enc or not ep.application_id:
        return False
    with rt.db.session() as s:
        app = s.get(Application, ep.application_id)
        if app is None:
            return False
        return oauth.revoke(rt, app, json.loads(rt.secrets.decrypt(ep.credential_enc)))
