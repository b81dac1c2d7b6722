"""The webhook delivery log, manual redelivery and re-enabling a subscriber (no Flask)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import NotFound
from ..models import Account, Endpoint, WebhookMessage, WebhookSubscriber, utcnow

STATUSES = ("pending", "delivered", "failed")


def _subscriber_rows(session: Session, account_id: str) -> list[tuple[str, str, str]]:
    """``(id, name, url)`` of the account's subscribers: the account's own URL and its endpoints'."""
    rows = []
    account = session.get(Account, account_id)
    if account is not None and account.webhook_url:
        rows.append((f"account:{account.id}", account.name, account.webhook_url))
    for ep in session.scalars(select(Endpoint).where(Endpoint.account_id == account_id,
                                                     Endpoint.webhook_url.is_not(None)).order_by(Endpoint.name)):
        rows.append((f"endpoint:{ep.id}", ep.name, ep.webhook_url))
    return rows


def list_subscribers(session: Session, account_id: str) -> list[dict]:
    counts: dict[str, dict[str, int]] = {}
    for sub, status, n in session.execute(
            select(WebhookMessage.subscriber, WebhookMessage.status, func.count())
            .where(WebhookMessage.account_id == account_id)
            .group_by(WebhookMessage.subscriber, WebhookMessage.status)):
        counts.setdefault(sub, {s: 0 for s in STATUSES})[status] = n
    out = []
    for sub_id, name, url in _subscriber_rows(session, account_id):
        health = session.get(WebhookSubscriber, sub_id)
        state = "active"
        if health is not None and health.disabled_at is not None:
            state = "disabled"
        elif health is not None and health.failing_since is not None:
            state = "failing"
        out.append({"id": sub_id, "name": name, "url": url, "state": state,
                    "failing_since": health.failing_since if health else None,
                    "last_success_at": health.last_success_at if health else None,
                    "disabled_at": health.disabled_at if health else None,
                    "disabled_reason": health.disabled_reason if health else None,
                    "messages": counts.get(sub_id, {s: 0 for s in STATUSES})})
    return out


def get_subscriber(session: Session, account_id: str, subscriber_id: str) -> dict:
    for sub in list_subscribers(session, account_id):
        if sub["id"] == subscriber_id:
            return sub
    raise NotFound("No such webhook subscriber in this account (an endpoint or the account with a webhook URL).")


def list_messages(session: Session, account_id: str, subscriber_id: str, *, status: str | None = None,
                  job_id: str | None = None, page: int = 1, page_size: int = 50) -> tuple[list, int]:
    get_subscriber(session, account_id, subscriber_id)
    where = [WebhookMessage.account_id == account_id, WebhookMessage.subscriber == subscriber_id]
    if status:
        where.append(WebhookMessage.status == status)
    if job_id:
        where.append(WebhookMessage.job_id == job_id)
    total = session.scalar(select(func.count()).select_from(WebhookMessage).where(*where)) or 0
    items = list(session.scalars(select(WebhookMessage).where(*where)
                                 .order_by(WebhookMessage.created_at.desc(), WebhookMessage.id)
                                 .offset((page - 1) * page_size).limit(page_size)))
    return items, total


def get_message(session: Session, account_id: str, message_id: str) -> WebhookMessage:
    msg = session.get(WebhookMessage, message_id)
    if msg is None or msg.account_id != account_id:
        raise NotFound("No such webhook message.")
    return msg


def redeliver(session: Session, account_id: str, message_id: str) -> WebhookMessage:
    """Send a message again, now, under the same ``webhook-id`` (receivers de-duplicate on it).

    Works on delivered and failed messages alike; a pending one is simply made due now. The retry
    window starts again for it."""
    msg = get_message(session, account_id, message_id)
    now = utcnow()
    msg.status, msg.next_attempt_at, msg.created_at = "pending", now, now
    msg.lease_owner, msg.lease_expires_at = None, None
    return msg


def enable(session: Session, account_id: str, subscriber_id: str) -> dict:
    """Turn a disabled subscriber back on (its failed messages stay failed; redeliver them if wanted)."""
    get_subscriber(session, account_id, subscriber_id)
    health = session.get(WebhookSubscriber, subscriber_id)
    if health is not None:
        health.disabled_at, health.disabled_reason, health.failing_since = None, None, None
    session.flush()
    return get_subscriber(session, account_id, subscriber_id)
