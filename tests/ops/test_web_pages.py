"""Web pages of issue 18: the job page names its worker; the webhook pages show the delivery log and
redeliver (server-rendered, signed-in user, CSRF-protected forms)."""
from __future__ import annotations

import re

from exchange.auth.users import create_user
from exchange.models import WebhookMessage, WebhookSubscriber, utcnow
from tests.browser.test_web_client import PASSWORD, csrf, sign_in
from tests.ops.test_failover import _queued_job


def test_job_page_shows_worker_and_webhook_log_redelivers(runtime, api, client):
    from exchange.jobs.executor import claim_next
    from tests.e2e.conftest import register

    with runtime.db.session() as s:
        create_user(s, api.account_id, "alice@acme.test", PASSWORD)
    job_id = _queued_job(api)
    claim_next(runtime, "hostA:111:aaaaaa")
    sign_in(client)
    page = client.get(f"/jobs/{job_id}").text
    assert re.search(r'id="job-worker">hostA:111:aaaaaa \(heartbeat ', page)

    c = register(api, name="Hooked", identifiers=["email_sha256"], consumer={"transport": "pull"},
                 webhook_url="http://127.0.0.1:9/hooks")
    sub = f"endpoint:{c['id']}"
    with runtime.db.session() as s:
        s.add(WebhookSubscriber(id=sub, account_id=api.account_id, failing_since=utcnow(), disabled_at=utcnow(),
                                disabled_reason="every delivery failed for 3 day(s)"))
        s.add(WebhookMessage(id="msg_" + "a" * 32, account_id=api.account_id, subscriber=sub, job_id=job_id,
                             event_type="job.failed", payload="{}", status="failed", attempts=23,
                             last_status=503, last_response="down for maintenance"))
    listing = client.get("/webhooks").text
    assert "Hooked" in listing and ">disabled<" in listing
    log = client.get(f"/webhooks/{sub}").text
    assert "msg_" + "a" * 32 in log and "HTTP 503: down for maintenance" in log and ">23<" in log
    token = csrf(client, f"/webhooks/{sub}")
    r = client.post(f"/webhooks/messages/msg_{'a' * 32}/redeliver", data={"csrf_token": token})
    assert r.status_code == 302
    r = client.post(f"/webhooks/{sub}/enable", data={"csrf_token": token})
    assert r.status_code == 302
    with runtime.db.session() as s:
        assert s.get(WebhookMessage, "msg_" + "a" * 32).status == "pending"
        assert s.get(WebhookSubscriber, sub).disabled_at is None
    assert client.post(f"/webhooks/{sub}/enable").status_code in (400, 403)  # no CSRF token
    assert client.get("/webhooks/endpoint:nope").status_code == 404
