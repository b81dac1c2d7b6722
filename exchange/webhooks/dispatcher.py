"""Delivering the outbox: any process with a free worker claims due messages and sends them.

A message is claimed like a job (``UPDATE … WHERE lease free``), so two processes never send the same
attempt, and a process killed mid-attempt leaves the message to another once the short lease lapses.
Every attempt carries the message's id as ``webhook-id`` (receivers de-duplicate on it) and a fresh
timestamp and signature (Standard Webhooks). After a failure the next attempt waits
``base × 2^(attempt-1)`` seconds (capped, ±10 % jitter) until the retry window since the message was
written has passed; then the message fails. A subscriber whose deliveries kept failing for the whole
window is disabled: its pending messages fail, an event is recorded on the job and in the log, and
``POST /v1/webhooks/subscribers/{id}/enable`` turns it back on.
"""
from __future__ import annotations

import logging
import random
import threading
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from .. import metrics
from ..models import Account, Endpoint, Job, JobEvent, WebhookMessage, WebhookSubscriber, utcnow

log = logging.getLogger(__name__)
LEASE_SLACK = 5  # seconds beyond the connect and read timeouts a claimed attempt may take


def retry_delay(cfg, attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (exponential, capped, jittered)."""
    base = max(0.01, float(cfg.webhook_retry_base_seconds))
    delay = min(base * (2 ** max(0, attempts - 1)), float(cfg.webhook_retry_max_delay_seconds))
    return delay * (0.9 + 0.2 * (rng or random).random())


def _target(session, subscriber: str) -> tuple[str | None, str | None]:
    kind, _, ident = subscriber.partition(":")
    row = session.get(Account if kind == "account" else Endpoint, ident)
    if row is None:
        return None, None
    return row.webhook_url, row.webhook_secret_enc


def claim_due(rt, owner: str, limit: int = 10) -> list[str]:
    now = utcnow()
    free = or_(WebhookMessage.lease_owner.is_(None), WebhookMessage.lease_expires_at < now)
    with rt.db.session() as s:
        ids = list(s.scalars(select(WebhookMessage.id).where(
            WebhookMessage.status == "pending", WebhookMessage.next_attempt_at <= now, free)
            .order_by(WebhookMessage.next_attempt_at).limit(limit)))
    claimed = []
    until = now + timedelta(seconds=float(rt.config.http_connect_timeout) + float(rt.config.webhook_timeout_seconds)
                            + LEASE_SLACK)
    for msg_id in ids:
        with rt.db.session() as s:
            res = s.execute(update(WebhookMessage).where(and_(
                WebhookMessage.id == msg_id, WebhookMessage.status == "pending", free))
                .values(lease_owner=owner, lease_expires_at=until))
            if res.rowcount == 1:
                claimed.append(msg_id)
    return claimed


def dispatch_due(rt, owner: str, limit: int = 10) -> int:
    """Send up to ``limit`` due messages; returns how many attempts were made."""
    done = 0
    for msg_id in claim_due(rt, owner, limit):
        try:
            attempt(rt, msg_id, owner)
        except Exception:  # noqa: BLE001 - a bug or a database hiccup: the lease lapses, another tries
            log.exception("webhook message %s: attempt crashed", msg_id)
        done += 1
    return done


def attempt(rt, msg_id: str, owner: str) -> bool:
    """One delivery attempt of a claimed message; records the answer. True when delivered."""
    from ..net import webhook_headers

    with rt.db.session() as s:
        msg = s.get(WebhookMessage, msg_id)
        if msg is None or msg.lease_owner != owner or msg.status != "pending":
            return False
        url, secret_enc = _target(s, msg.subscriber)
        body, subscriber = msg.payload.encode(), msg.subscriber
    status, answer, error = None, None, None
    if not url or not secret_enc:
        error = "the subscriber has no webhook URL any more"
    else:
        try:
            headers = webhook_headers(rt.secrets.decrypt(secret_enc), msg_id, body)
            with rt.http() as http:
                resp = http.post(url, data=body, headers=headers, allow_redirects=False,
                                 timeout=(rt.config.http_connect_timeout, rt.config.webhook_timeout_seconds))
            status, answer = resp.status_code, (resp.text or "")[:500]
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer is a failed attempt
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
    delivered = status is not None and 200 <= status < 300
    _record(rt, msg_id, owner, subscriber, delivered, status, answer, error, gone=not url or not secret_enc)
    metrics.WEBHOOK_ATTEMPTS.labels("delivered" if delivered else "failed").inc()
    return delivered


def _record(rt, msg_id, owner, subscriber, delivered, status, answer, error, *, gone: bool) -> None:
    cfg = rt.config
    window = timedelta(seconds=cfg.webhook_retry_window_seconds)
    now = utcnow()
    with rt.db.session() as s:
        msg = s.get(WebhookMessage, msg_id)
        if msg is None or msg.lease_owner != owner:
            return  # taken over meanwhile (our attempt outlived the lease): the taker records its own
        msg.attempts += 1
        msg.last_attempt_at, msg.last_status, msg.last_response, msg.last_error = now, status, answer, error
        msg.lease_owner, msg.lease_expires_at = None, None
        health = s.get(WebhookSubscriber, subscriber)
        if health is None:
            health = WebhookSubscriber(id=subscriber, account_id=msg.account_id)
            s.add(health)
        if delivered:
            msg.status, msg.delivered_at = "delivered", now
            health.failing_since, health.last_success_at = None, now
            return
        if health.failing_since is None:
            health.failing_since = now
        expired = now - msg.created_at >= window
        if gone or expired:
            msg.status = "failed"
            metrics.WEBHOOK_GIVEN_UP.inc()
        else:
            msg.next_attempt_at = now + timedelta(seconds=retry_delay(cfg, msg.attempts))
        # failing for the whole window: continuously since the window began, or this message's whole
        # window passed without a single success (its first attempt may have come late)
        whole_window = now - health.failing_since >= window or (
            expired and (health.last_success_at is None or health.last_success_at < msg.created_at))
        if health.disabled_at is None and whole_window:
            health.disabled_at = now
            health.disabled_reason = (f"every delivery failed for {_span(window)} (since "
                                      f"{health.failing_since.isoformat()}); last: "
                                      f"{f'HTTP {status}' if status else error}")
            pending = s.scalars(select(WebhookMessage).where(WebhookMessage.subscriber == subscriber,
                                                             WebhookMessage.status == "pending"))
            for other in pending:
                other.status = "failed"
                other.last_error = (other.last_error or "") + " (subscriber disabled)"
            msg.status = "failed"
            metrics.WEBHOOK_SUBSCRIBERS_DISABLED.inc()
            log.warning("webhook subscriber %s disabled: %s", subscriber, health.disabled_reason)
            job = s.get(Job, msg.job_id) if msg.job_id else None
            if job is not None:
                s.add(JobEvent(job_id=job.id, kind="warning", state=job.state,
                               message=f"webhook subscriber {subscriber} disabled: {health.disabled_reason}",
                               data={"subscriber": subscriber, "message_id": msg_id}))


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    return f"{seconds} s"


class Dispatcher(threading.Thread):
    """A thread sending due messages (``exchange worker``; job-worker loops also send when idle)."""

    def __init__(self, rt, owner: str, poll: float = 1.0):
        super().__init__(daemon=True, name="webhook-dispatcher")
        self.rt, self.owner, self.poll = rt, owner, poll
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                busy = dispatch_due(self.rt, self.owner)
            except Exception:  # noqa: BLE001 - database briefly unavailable
                log.warning("webhook dispatch failed", exc_info=True)
                busy = 0
            if not busy:
                self.stop_event.wait(self.poll)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=15)
