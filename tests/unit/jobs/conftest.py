"""Engine fixtures: a runtime on a fresh SQLite file and one share whose job the tests drive directly."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from exchange.models import Account, Audience, Endpoint, Job, Share, utcnow


@dataclass
class Rows:
    account_id: str
    producer_id: str
    consumer_id: str
    audience_id: str
    share_id: str


def add_job(rt, share_id: str, **fields) -> str:
    with rt.db.session() as s:
        share = s.get(Share, share_id)
        job = Job(**{"account_id": share.account_id, "share_id": share_id, "trigger": "manual",
                     "mode": share.mode, "state": "queued", **fields})
        s.add(job)
        s.flush()
        return job.id


@pytest.fixture
def rows(runtime) -> Rows:
    """A PUSH producer with uploaded data, a PUSH consumer, an audience and a share (nothing is called)."""
    with runtime.db.session() as s:
        account = Account(name="Engine")
        s.add(account)
        s.flush()
        producer = Endpoint(account_id=account.id, name="producer", contact_url="http://127.0.0.1:9/p",
                            producer_transport="push")
        consumer = Endpoint(account_id=account.id, name="consumer", contact_url="http://127.0.0.1:9/c",
                            consumer_transport="push", identifiers=["email_sha256"], max_rows_per_request=2)
        s.add_all([producer, consumer])
        s.flush()
        aud = Audience(account_id=account.id, endpoint_id=producer.id, external_id="loyal", name="Loyal",
                       data_key=None)
        s.add(aud)
        s.flush()
        share = Share(account_id=account.id, audience_id=aud.id, destination_id=consumer.id,
                      destination_audience="loyal", mode="add", schedule={"type": "now"},
                      mapping=[{"source": "email", "target": "email_sha256",
                                "transform": ["normalize_email", "sha256"]}],
                      anchor_at=utcnow() - timedelta(seconds=1))
        s.add(share)
        s.flush()
        return Rows(account.id, producer.id, consumer.id, aud.id, share.id)
