"""Durable webhooks (issue 18 §4): a subscriber that is down for a while, a restart between attempts and a
subscriber failing for the whole retry window; every message is delivered once per ``webhook-id``.

Backoff is shortened by configuration (``EXCHANGE_WEBHOOK_RETRY_*``) so the outage lasts seconds, not
minutes; the arithmetic is the same. Signatures are checked with the Standard Webhooks scheme
(https://www.standardwebhooks.com, ``exchange.net.verify_webhook``).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from exchange.app import create_app
from exchange.db import upgrade
from exchange.models import WebhookMessage
from exchange.net import verify_webhook
from exchange.runtime import Runtime
from exchange.webhooks.dispatcher import retry_delay
from tests.conftest import make_config, new_account
from tests.e2e.test_deliveries import _pull_job

FAST = dict(webhook_retry_base_seconds=0.2, webhook_retry_max_delay_seconds=1, webhook_retry_window_seconds=120)


class Subscriber:
    """A webhook receiver that answers 503 while ``down``; records every call (id, status)."""

    def __init__(self, down: bool = True):
        self.down = down
        self.calls: list[tuple[str, int]] = []
        self.bodies: dict[str, tuple[dict, bytes]] = {}
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.port}/hooks"

    def app(self, environ, start_response):
        req = Request(environ)
        msg_id = req.headers.get("webhook-id", "")
        status = 503 if self.down else 200
        self.calls.append((msg_id, status))
        if status == 200:
            self.bodies[msg_id] = (dict(req.headers), req.get_data())
        return Response("down for maintenance" if self.down else "ok", status=status)(environ, start_response)

    def delivered(self) -> Counter:
        return Counter(i for i, status in self.calls if status == 200)

    def close(self):
        self.server.shutdown()


def _live(tmp_path, **overrides):
    cfg = make_config(tmp_path, workers=2, max_attempts=4, **{**FAST, **overrides})
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    api = new_account(rt, app.test_client())
    api.rt = rt
    return api


def _messages(rt, **where) -> list[WebhookMessage]:
    with rt.db.session() as s:
        q = select(WebhookMessage).order_by(WebhookMessage.created_at)
        for k, v in where.items():
            q = q.where(getattr(WebhookMessage, k) == v)
        return list(s.scalars(q))


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_backoff_doubles_up_to_the_cap_within_three_days_by_default(config):
    import random

    rng = random.Random(1)
    delays = [retry_delay(config, n, rng) for n in range(1, 30)]
    assert 4.5 <= delays[0] <= 5.5 and 9 <= delays[1] <= 11 and 18 <= delays[2] <= 22
    assert max(delays) <= 21600 * 1.1
    assert config.webhook_retry_window_seconds == 3 * 86400
    # attempts that fit the default window: enough to ride out a multi-hour outage
    elapsed, n = 0.0, 0
    while elapsed < config.webhook_retry_window_seconds:
        n += 1
        elapsed += retry_delay(config, n, rng)
    assert 15 <= n <= 30


def test_subscriber_down_for_a_while_gets_every_message_once(tmp_path):
    hooks = Subscriber(down=True)
    live = _live(tmp_path)
    try:
        c, job = _pull_job(live, webhook_url=hooks.url)
        secret = c["webhook_secret"]
        # several attempts fail while it is down; the job is not held up by it
        _until(lambda: len(hooks.calls) >= 6, 15, "failed attempts while the subscriber is down")
        assert job["state"] == "awaiting_consumer"
        failing = live.get(f"/v1/webhooks/subscribers/endpoint:{c['id']}").json
        assert failing["state"] == "failing" and failing["messages"]["pending"] >= 1
        hooks.down = False
        expected = {m.id for m in _messages(live.rt, job_id=job["id"])}
        assert expected, "the job's state changes wrote outbox messages"
        _until(lambda: set(hooks.delivered()) == expected, 20, "every message delivered")
        time.sleep(1.0)  # nothing is sent again afterwards
        assert hooks.delivered() == Counter({i: 1 for i in expected})  # each id delivered exactly once
        for msg_id in expected:
            headers, body = hooks.bodies[msg_id]
            assert verify_webhook(secret, headers, body)
        failed_before = Counter(i for i, status in hooks.calls if status == 503)
        assert sum(failed_before.values()) >= 6 and set(failed_before) <= expected  # retries reused the ids

        _until(lambda: all(m["status"] == "delivered" for m in
                           live.get(f"/v1/webhooks/subscribers/endpoint:{c['id']}/messages").json["items"]),
               10, "every message recorded as delivered")
        log = live.get(f"/v1/webhooks/subscribers/endpoint:{c['id']}/messages").json
        assert log["total"] == len(expected)
        retried = [m for m in log["items"] if m["attempts"] > 1]
        assert retried and all(m["status"] == "delivered" and m["last_status"] == 200 for m in log["items"])
        states = {json.loads(hooks.bodies[m["id"]][1])["data"]["state"] for m in log["items"]}
        assert "awaiting_consumer" in states
        assert live.get(f"/v1/webhooks/subscribers/endpoint:{c['id']}").json["state"] == "active"
    finally:
        hooks.close()
        live.rt.shutdown()


def test_restart_between_attempts_delivers_with_the_same_ids(tmp_path):
    hooks = Subscriber(down=True)
    first = _live(tmp_path)
    try:
        c, job = _pull_job(first, webhook_url=hooks.url)
        expected = {m.id for m in _messages(first.rt, job_id=job["id"])}
        _until(lambda: set(i for i, _ in hooks.calls) == expected, 15, "a failed attempt of every message")
    finally:
        first.rt.shutdown()  # the process goes away with every message still pending
    assert all(m.status == "pending" for m in _messages(first.rt, job_id=job["id"]))
    hooks.down = False
    tried_before = len(hooks.calls)
    cfg = make_config(tmp_path, workers=2, **FAST)  # a new process on the same database
    second = Runtime(cfg)
    second.executor.start()
    try:
        _until(lambda: set(hooks.delivered()) == expected, 20, "delivery after the restart")
        time.sleep(0.5)
        assert hooks.delivered() == Counter({i: 1 for i in expected})
        assert len(hooks.calls) - tried_before == len(expected)  # after the restart: one successful call each
        _until(lambda: all(m.status == "delivered" and m.attempts >= 2 for m in _messages(second, job_id=job["id"])),
               10, "every message recorded as delivered")
    finally:
        second.shutdown()
        hooks.close()


def test_subscriber_failing_for_the_whole_window_is_disabled_then_redelivered(tmp_path):
    hooks = Subscriber(down=True)
    live = _live(tmp_path, webhook_retry_window_seconds=2)
    try:
        c, job = _pull_job(live, webhook_url=hooks.url)
        sub = f"endpoint:{c['id']}"
        state = _until(lambda: (lambda s: s if s["state"] == "disabled" else None)(
            live.get(f"/v1/webhooks/subscribers/{sub}").json), 15, "the subscriber to be disabled")
        assert "every delivery failed for 2 s" in state["disabled_reason"]
        assert state["messages"]["pending"] == 0 and state["messages"]["failed"] >= 1
        events = live.get(f"/v1/jobs/{job['id']}/events").json["items"]
        assert any(e["kind"] == "warning" and f"webhook subscriber {sub} disabled" in e["message"] for e in events)
        calls = len(hooks.calls)
        time.sleep(1.0)
        assert len(hooks.calls) == calls  # nothing more is sent to a disabled subscriber

        hooks.down = False
        assert live.post(f"/v1/webhooks/subscribers/{sub}/enable").json["state"] == "active"
        log = live.get(f"/v1/webhooks/subscribers/{sub}/messages?status=failed").json["items"]
        target = log[0]
        resp = live.post(f"/v1/webhooks/messages/{target['id']}/redeliver")
        assert resp.status_code == 202 and resp.json["status"] == "pending"
        _until(lambda: hooks.delivered()[target["id"]] == 1, 10, "the redelivered message")
        # the subscriber has it before the sender has recorded its answer: wait for the record too
        _until(lambda: live.get(f"/v1/webhooks/messages/{target['id']}").json["status"] == "delivered", 10,
               "the message to be recorded as delivered")
        assert hooks.delivered()[target["id"]] == 1
        assert live.get("/v1/webhooks/messages/msg_nope").status_code == 404
        assert live.get("/v1/webhooks/subscribers/endpoint:nope/messages").status_code == 404
    finally:
        hooks.close()
        live.rt.shutdown()


@pytest.mark.parametrize("status", ["failed", "delivered"])
def test_message_log_filters(tmp_path, status):
    live = _live(tmp_path)
    try:
        r = live.get(f"/v1/webhooks/subscribers/account:{live.account_id}/messages?status={status}")
        assert r.status_code == 404  # the account has no webhook URL: not a subscriber
        assert live.get("/v1/webhooks/subscribers").json == {"items": []}
        assert live.get("/v1/webhooks/subscribers/x/messages?status=bogus").status_code == 422
    finally:
        live.rt.shutdown()


def test_retention_purges_finished_messages_only(runtime, api):
    from datetime import timedelta

    from exchange.jobs.retention import purge_expired
    from exchange.models import utcnow

    old = utcnow() - timedelta(days=runtime.config.retention_days + 1)
    with runtime.db.session() as s:
        for status in ("delivered", "failed", "pending"):
            s.add(WebhookMessage(id=f"msg_{status}", account_id=api.account_id, subscriber="account:x",
                                 event_type="job.succeeded", payload="{}", status=status, created_at=old))
        s.add(WebhookMessage(id="msg_recent", account_id=api.account_id, subscriber="account:x",
                             event_type="job.succeeded", payload="{}", status="delivered"))
    purge_expired(runtime)
    assert {m.id for m in _messages(runtime)} == {"msg_pending", "msg_recent"}


def test_a_message_whose_whole_window_failed_disables_the_subscriber_even_if_first_tried_late(runtime, api):
    """The first attempt came late (a busy machine): the subscriber has not been failing for a whole window
    yet by the clock, but this message's whole window passed without a success."""
    from datetime import timedelta

    from exchange.models import Account, WebhookSubscriber, utcnow
    from exchange.net.webhooks import generate_webhook_secret
    from exchange.webhooks.dispatcher import attempt
    from tests.scaled.deployment import free_port

    runtime.config.webhook_retry_window_seconds = 60
    with runtime.db.session() as s:
        account = s.get(Account, api.account_id)
        account.webhook_url = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens
        account.webhook_secret_enc = runtime.secrets.encrypt(generate_webhook_secret())
        s.add(WebhookMessage(id="msg_late", account_id=api.account_id, subscriber=f"account:{api.account_id}",
                             event_type="job.succeeded", payload="{}", status="pending", lease_owner="me",
                             created_at=utcnow() - timedelta(seconds=61)))
    assert attempt(runtime, "msg_late", "me") is False
    with runtime.db.session() as s:
        health = s.get(WebhookSubscriber, f"account:{api.account_id}")
        assert health.disabled_at is not None and s.get(WebhookMessage, "msg_late").status == "failed"
