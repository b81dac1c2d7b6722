"""The sharing end-to-end suite again, in scaled configuration (PostgreSQL, S3, Celery, 2 web + 2 workers).

The test functions are the ones of ``tests/e2e``; imported here they are collected a second time and
get this folder's ``live`` fixture (HTTP round-robin over two web processes, jobs in worker
processes). Left out, because they build their own in-process runtime or configuration:
``test_faults.test_producer_202_forever_fails_after_bound`` (needs ``source_wait_seconds=2``),
``test_faults.test_restart_mid_job_completes_once`` (stops in-process threads; ``test_kill.py``
kills real worker processes instead), ``test_deliveries.test_deadline_fails_the_job`` (expires every
delivery of the database; a scaled variant below touches only its own account's), and
``test_partners``/``test_scheduler`` (per-test adapter URLs; in-process scheduler internals).
"""
from __future__ import annotations

from datetime import timedelta

from exchange.jobs.delivery.acks import expire_overdue
from exchange.models import Delivery, utcnow
from tests.e2e.test_deliveries import (  # noqa: F401 - collected again with the scaled `live`
    _pull_job,
    test_download_range_etag_and_ack,
    test_other_endpoint_key_cannot_see_delivery,
    test_webhooks_signed_and_retried,
)
from tests.e2e.test_delta import (  # noqa: F401
    test_delta_sends_only_changes_and_recovers_from_failure,
    test_full_add_without_delta_resends_everything,
)
from tests.e2e.test_faults import (  # noqa: F401
    test_cancel_queued_and_finished,
    test_consumer_202_then_ack,
    test_consumer_429_retry_after_is_a_wait,
    test_consumer_500_then_200_is_retried_once,
    test_consumer_drops_connection_mid_upload,
    test_consumer_permanent_4xx_fails_job,
    test_gzip_source_accepted,
    test_invalid_utf8_row_is_rejected_not_fatal,
    test_malformed_rows_rejected_with_line_numbers,
    test_missing_header_fails,
    test_not_csv_fails,
    test_producer_304_means_no_change,
    test_producer_500_then_200,
    test_reject_threshold_fails_job_and_delivers_nothing,
    test_truncated_gzip_fails,
)
from tests.e2e.test_sharing import test_push_upload_gzip_and_errors, test_share_matrix  # noqa: F401


def test_deadline_fails_the_job_scaled(live):
    """As ``test_deliveries.test_deadline_fails_the_job``, for this account's delivery only."""
    c, job = _pull_job(live)
    with live.rt.db.session() as s:
        for d in s.query(Delivery).filter(Delivery.account_id == live.account_id):
            d.deadline_at = utcnow() - timedelta(seconds=1)
    # the leading web process's housekeeping may expire it first; either way it expires once
    expire_overdue(live.rt)
    job = live.get(f"/v1/jobs/{job['id']}").json
    assert job["state"] == "failed" and "deadline" in job["error"]["detail"]
    d = live.get("/v1/deliveries").json["items"][0]
    assert d["state"] == "expired"
    h = {"Authorization": f"Bearer {c['endpoint_key']}"}
    assert live.client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 1}, headers=h).status_code == 409
