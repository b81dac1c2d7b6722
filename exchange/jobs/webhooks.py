"""Signed webhooks on job state changes (SPEC §5.3): retried in the background, never failing a job."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import ExchangeError
from ..models import Account, Endpoint, Job, Share
from ..net import RetryPolicy, call_with_retries
from ..net.webhooks import post_webhook

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhooks")
_last: dict[str, str] = {}
_lock = threading.Lock()
# Four attempts over about ten seconds (backoff 1, 2, 4 s with jitter), a minute of 429 waits at most.
RETRY = RetryPolicy(max_attempts=4, base=1.0, cap=8.0, max_rate_limit_wait=60.0)


def notify_state(rt: Runtime, job_id: str) -> None:
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


def _send(rt: Runtime, url: str, secret: str, body: bytes, *,
          sleep: Callable[[float], object] = time.sleep) -> bool:
    """POST one event with the shared retry loop; True when the subscriber took it."""
    msg_id = "msg_" + uuid.uuid4().hex

    def attempt() -> None:
        with rt.http() as http:
            post_webhook(http, url, secret, msg_id, body)

    try:
        call_with_retries(attempt, policy=RETRY, sleep=sleep)
        return True
    except ExchangeError as exc:
        log.warning("webhook %s gave up: %s", msg_id, exc.detail)
    except Exception as exc:  # noqa: BLE001 - a failing webhook never fails the job
        log.warning("webhook %s gave up: %s", msg_id, type(exc).__name__)
    return False
