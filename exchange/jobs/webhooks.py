"""Signed webhooks on job state changes (SPEC §5.3): retried in the background, never failing a job."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ..models import Account, Endpoint, Job, Share

log = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhooks")
_last: dict[str, str] = {}
_lock = threading.Lock()
DELAYS = (0.5, 2.0, 8.0)


def notify_state(rt, job_id: str) -> None:
    """Queue one webhook per subscriber if the job's state changed since the last notification."""
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        with _lock:
            if _last.get(job_id) == job.state:
                return
            _last[job_id] = job.state
        targets = []
        share = s.get(Share, job.share_id) if job.share_id else None
        if share is not None:
            dest = s.get(Endpoint, share.destination_id)
            if dest and dest.webhook_url and dest.webhook_secret_enc:
                targets.append((dest.webhook_url, dest.webhook_secret_enc))
        account = s.get(Account, job.account_id)
        if account and account.webhook_url and account.webhook_secret_enc:
            targets.append((account.webhook_url, account.webhook_secret_enc))
        if not targets:
            return
        body = json.dumps({"type": f"job.{job.state}", "timestamp": int(time.time()),
                           "data": {"job_id": job.id, "share_id": job.share_id, "state": job.state,
                                    "counts": job.counts, "error": job.error}}).encode()
    for url, secret_enc in targets:
        _pool.submit(_send, rt, url, rt.secrets.decrypt(secret_enc), body)


def _send(rt, url: str, secret: str, body: bytes) -> bool:
    from ..net import webhook_headers

    msg_id = "msg_" + uuid.uuid4().hex
    for attempt, delay in enumerate((0.0,) + DELAYS):
        time.sleep(delay)
        try:
            headers = {"Content-Type": "application/json", **webhook_headers(secret, msg_id, body)}
            with rt.http() as http:
                resp = http.post(url, data=body, headers=headers, timeout=(5, 10))
            if resp.status_code < 300:
                return True
            if 400 <= resp.status_code < 500 and resp.status_code not in (408, 409, 429):
                break
        except Exception as exc:  # noqa: BLE001 - a failing webhook never fails the job
            log.info("webhook attempt %d failed: %s", attempt + 1, type(exc).__name__)
    log.warning("webhook %s gave up", msg_id)
    return False
