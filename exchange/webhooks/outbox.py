"""Writing webhook messages: in the caller's session, so they commit (or roll back) with the state change."""
from __future__ import annotations

import json
import time
import uuid

from sqlalchemy.orm import Session

from ..models import Account, Endpoint, Share, WebhookMessage, WebhookSubscriber, utcnow


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def subscribers_of_job(session: Session, job) -> list[tuple[str, str]]:
    """``(subscriber id, url)`` of everyone notified about ``job``: its destination, then its account."""
    found: list[tuple[str, str]] = []
    share = session.get(Share, job.share_id) if job.share_id else None
    if share is not None:
        dest = session.get(Endpoint, share.destination_id)
        if dest is not None and dest.webhook_url and dest.webhook_secret_enc:
            found.append((f"endpoint:{dest.id}", dest.webhook_url))
    account = session.get(Account, job.account_id)
    if account is not None and account.webhook_url and account.webhook_secret_enc:
        found.append((f"account:{account.id}", account.webhook_url))
    return found


def job_payload(job, state: str) -> str:
    return json.dumps({"type": f"job.{state}", "timestamp": int(time.time()),
                       "data": {"job_id": job.id, "share_id": job.share_id, "state": state,
                                "counts": job.counts, "error": job.error}}, separators=(",", ":"))


def enqueue_job_state(session: Session, job, previous: str | None, state: str) -> list[str]:
    """One message per subscriber for a job's move to ``state``; returns the message ids.

    Called by the state machine inside the transition's transaction. A disabled subscriber's message
    is still written (failed, with the reason), so the delivery log shows it and it can be redelivered.
    """
    if state == previous:
        return []
    subscribers = subscribers_of_job(session, job)
    if not subscribers:
        return []
    body = job_payload(job, state)
    now = utcnow()
    ids = []
    for sub_id, _url in subscribers:
        health = session.get(WebhookSubscriber, sub_id)
        msg = WebhookMessage(id=new_message_id(), account_id=job.account_id, subscriber=sub_id, job_id=job.id,
                             event_type=f"job.{state}", payload=body, status="pending", attempts=0,
                             next_attempt_at=now, created_at=now)
        if health is not None and health.disabled_at is not None:
            msg.status = "failed"
            msg.last_error = f"subscriber disabled since {health.disabled_at.isoformat()}; not sent"
        session.add(msg)
        ids.append(msg.id)
    return ids


def purge_finished(rt, cutoff) -> int:
    """Delete delivered and failed messages written before ``cutoff`` (pending ones are kept)."""
    from sqlalchemy import delete

    with rt.db.session() as s:
        res = s.execute(delete(WebhookMessage).where(WebhookMessage.status.in_(("delivered", "failed")),
                                                     WebhookMessage.created_at < cutoff))
        return res.rowcount or 0
