"""The scheduler: due runs become jobs once, missed runs collapse, leases elect one leader, restarts re-arm."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from exchange.models import Job, Share
from exchange.runtime import Runtime
from exchange.shares.scheduler import Scheduler, acquire_lease, schedule_due
from tests.e2e.conftest import audience_by_external, register

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]
ROOT = Path(__file__).resolve().parents[2]


def _share(api, schedule) -> dict:
    p = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"])
    api.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=b"email\na@x.io\n",
                   headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    c = register(api, name="Wh", identifiers=["email_sha256"], consumer={"transport": "pull"})
    r = api.post("/v1/shares", json={"audience_id": audience_by_external(api, "a")["id"], "destination_id": c["id"],
                                     "mapping": MAPPING, "schedule": schedule})
    assert r.status_code == 201, r.json
    return r.json


def _jobs(rt, share_id) -> list[Job]:
    with rt.db.session() as s:
        return list(s.scalars(select(Job).where(Job.share_id == share_id).order_by(Job.scheduled_for)))


def test_interval_after_downtime_runs_once(api, runtime):
    share = _share(api, {"type": "interval", "every": "PT1H"})
    next_run = datetime.fromisoformat(share["next_run_at"])
    # the exchange was down for 3 hours and 10 minutes
    now = next_run + timedelta(hours=2, minutes=10)
    created = schedule_due(runtime, now)
    assert len(created) == 1
    jobs = _jobs(runtime, share["id"])
    assert len(jobs) == 1 and jobs[0].scheduled_for == next_run + timedelta(hours=2)
    assert jobs[0].trigger == "schedule"
    after = api.get(f"/v1/shares/{share['id']}").json
    assert datetime.fromisoformat(after["next_run_at"]) == next_run + timedelta(hours=3)
    assert schedule_due(runtime, now) == []  # the same tick again creates nothing
    assert schedule_due(runtime, now + timedelta(minutes=50)) != []  # the next hour does


def test_paused_share_does_not_run(api, runtime):
    share = _share(api, {"type": "interval", "every": "PT1H"})
    api.post(f"/v1/shares/{share['id']}/pause")
    assert schedule_due(runtime, datetime.now(UTC) + timedelta(days=1)) == []


def test_at_runs_once(api, runtime):
    at = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    share = _share(api, {"type": "at", "at": at.isoformat()})
    assert datetime.fromisoformat(share["next_run_at"]) == at
    assert len(schedule_due(runtime, at + timedelta(seconds=1))) == 1
    assert schedule_due(runtime, at + timedelta(days=3)) == []
    assert api.get(f"/v1/shares/{share['id']}").json["next_run_at"] is None


def test_lease_elects_one_leader_with_failover(runtime):
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    assert acquire_lease(runtime, "a", t0, seconds=15)
    assert not acquire_lease(runtime, "b", t0 + timedelta(seconds=5), seconds=15)
    assert acquire_lease(runtime, "a", t0 + timedelta(seconds=10), seconds=15)  # renewal
    # a dies: b takes over once a's lease lapsed
    assert not acquire_lease(runtime, "b", t0 + timedelta(seconds=20), seconds=15)
    assert acquire_lease(runtime, "b", t0 + timedelta(seconds=26), seconds=15)
    assert not acquire_lease(runtime, "a", t0 + timedelta(seconds=27), seconds=15)


def test_restart_rearms_schedules(api, runtime, config):
    share = _share(api, {"type": "cron", "cron": "0 6 * * *", "timezone": "Europe/Paris"})
    due = datetime.fromisoformat(share["next_run_at"])
    assert due.astimezone(timezone(timedelta(hours=1))).hour in (6, 7)
    runtime.shutdown()
    # a new process: nothing in memory, the database says what is due
    rt2 = Runtime(config)
    try:
        sched = Scheduler(rt2)
        sched.tick(now=due + timedelta(seconds=2))
        assert [j.scheduled_for for j in _jobs(rt2, share["id"])] == [due]
    finally:
        rt2.shutdown()


_TICKER = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
from datetime import datetime
from exchange.config import Config
from exchange.runtime import Runtime
from exchange.shares.scheduler import schedule_due
cfg = Config.from_env({}, database_url=sys.argv[2], executor="inline", scheduler=False)
rt = Runtime(cfg)
created = []
for now in json.loads(sys.argv[3]):
    created += schedule_due(rt, datetime.fromisoformat(now))
print(json.dumps(created))
"""


def test_two_processes_create_each_run_once(api, runtime, config):
    shares = [_share(api, {"type": "interval", "every": "PT1H"}) for _ in range(3)]
    start = min(datetime.fromisoformat(s["next_run_at"]) for s in shares)
    ticks = json.dumps([(start + timedelta(minutes=m)).isoformat() for m in range(0, 240, 7)])
    procs = [subprocess.Popen([sys.executable, "-c", _TICKER, str(ROOT), config.database_url, ticks],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    with runtime.db.session() as s:
        per_time = list(s.execute(select(Job.share_id, Job.scheduled_for, func.count())
                                  .group_by(Job.share_id, Job.scheduled_for)))
        total = s.scalar(select(func.count()).select_from(Job).where(Job.trigger == "schedule"))
        n_shares = s.scalar(select(func.count()).select_from(Share))
    assert n_shares == 3
    assert all(n == 1 for _, _, n in per_time)
    assert total == len(outs[0]) + len(outs[1])  # every created job was reported by exactly one process
    assert total == 3 * 4  # four hourly runs in four hours, per share
