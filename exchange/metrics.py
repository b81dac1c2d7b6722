"""Prometheus metrics of every layer, consistent across processes.

Any module may import this one: it imports nothing of the exchange above ``models`` (no Flask, no
engine), so the engine, the adapters' driver and the API all record into the same collectors.

Two kinds of figures:

* **Events counted where they happen** (requests, rows moved, webhook deliveries, lease takeovers,
  partner calls, job durations). With ``PROMETHEUS_MULTIPROC_DIR`` set (``exchange serve`` manages
  it) every process — each gunicorn worker, the runner and its job processes — writes its values to
  files in that folder, and a scrape of any gunicorn worker sums them all (prometheus_client's
  multiprocess mode), so back-to-back scrapes of one port never go backwards. Without it (``exchange
  worker``, tests) the values live in this process.
* **State read from the database at scrape time** (jobs by state, queue depth, oldest queued age,
  the scheduler's leader): :class:`DatabaseCollector`; every process reports the same figures.

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is first imported in a process:
prometheus_client chooses its value storage at import time. ``exchange serve`` sets it before it
starts anything.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# --- API -----------------------------------------------------------------------------------------
REQUEST_LATENCY = Histogram(
    "exchange_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# --- jobs ----------------------------------------------------------------------------------------
ROWS_MOVED = Counter("exchange_rows_moved", "Rows moved, by phase (fetch, transform, deliver) and transport "
                     "(push, pull, adapter)", ["phase", "transport"])
BYTES_MOVED = Counter("exchange_bytes_moved", "Bytes of source data fetched, by transport", ["transport"])
JOB_DURATION = Histogram(
    "exchange_job_duration_seconds", "Wall time of finished jobs from start to end, by outcome (final state)",
    ["outcome"], buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
JOBS_FINISHED = Counter("exchange_jobs_finished", "Jobs that reached a final state, by state", ["outcome"])
LEASE_TAKEOVERS = Counter("exchange_lease_takeovers", "Jobs taken over after their worker's lease lapsed")
LOST_SECONDS = Counter("exchange_lease_lost_seconds", "Seconds between a lost worker's last heartbeat and "
                       "the takeover of its job, summed")
# --- partners ------------------------------------------------------------------------------------
PARTNER_REQUESTS = Counter("exchange_partner_requests", "Calls to partner APIs, by adapter and result "
                           "(ok, rate_limited, retry, failed)", ["adapter", "result"])
PARTNER_WAIT_SECONDS = Counter("exchange_partner_rate_limit_wait_seconds",
                               "Seconds spent waiting out partner 429s, by adapter", ["adapter"])
# --- webhooks ------------------------------------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter("exchange_webhook_attempts", "Webhook delivery attempts, by result "
                           "(delivered, failed)", ["result"])
WEBHOOK_GIVEN_UP = Counter("exchange_webhook_given_up", "Webhook messages abandoned after the retry window")
WEBHOOK_SUBSCRIBERS_DISABLED = Counter("exchange_webhook_subscribers_disabled",
                                       "Webhook subscribers disabled after failing for the whole window")


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUEST_LATENCY.labels(method, route, str(status)).observe(seconds)


def rows_moved(phase: str, transport: str, n: int) -> None:
    if n > 0:
        ROWS_MOVED.labels(phase, transport or "unknown").inc(n)


def job_finished(outcome: str, seconds: float | None) -> None:
    JOBS_FINISHED.labels(outcome).inc()
    if seconds is not None and seconds >= 0:
        JOB_DURATION.labels(outcome).observe(seconds)


def partner_call(adapter: str, result: str) -> None:
    PARTNER_REQUESTS.labels(adapter, result).inc()


def partner_wait(adapter: str, seconds: float) -> None:
    if seconds > 0:
        PARTNER_WAIT_SECONDS.labels(adapter).inc(seconds)


class DatabaseCollector:
    """Figures read from the database at scrape time: the same from every process.

    ``db`` is an ``exchange.db.Database`` (or a callable returning one). A scrape never fails because
    the database is down: the families are then absent and ``exchange_database_up`` is 0.
    """

    def __init__(self, db: Callable | object):
        self._db = db

    def _database(self):
        return self._db() if callable(self._db) else self._db

    def describe(self):
        return []

    def collect(self):
        from sqlalchemy import func, select

        from .models import Job, SchedulerLease, utcnow

        runnable = ("queued", "fetching", "awaiting_source", "transforming", "delivering")
        up = GaugeMetricFamily("exchange_database_up", "1 when the database answered this scrape")
        try:
            db = self._database()
            states = GaugeMetricFamily("exchange_jobs", "Jobs by state", labels=["state"])
            depth = GaugeMetricFamily("exchange_queue_depth", "Jobs waiting for a worker: runnable, not leased "
                                      "(or lease lapsed), not deferred")
            oldest = GaugeMetricFamily("exchange_queue_oldest_age_seconds",
                                       "Age of the oldest job waiting for a worker (0 when none)")
            running = GaugeMetricFamily("exchange_jobs_leased", "Jobs held by a live worker lease")
            leader = GaugeMetricFamily("exchange_scheduler_leader", "The scheduler lease's holder (1) and "
                                       "whether it is current", labels=["owner"])
            lease_age = GaugeMetricFamily("exchange_scheduler_lease_remaining_seconds",
                                          "Seconds left on the scheduler leader's lease (negative: lapsed)")
            now = utcnow()
            with db.session() as s:
                for state, n in s.execute(select(Job.state, func.count()).group_by(Job.state)):
                    states.add_metric([state], n)
                waiting = (Job.state.in_(runnable)
                           & ((Job.lease_owner.is_(None)) | (Job.lease_expires_at < now))
                           & ((Job.not_before.is_(None)) | (Job.not_before <= now)))
                n, first = s.execute(select(func.count(), func.min(Job.created_at)).where(waiting)).one()
                depth.add_metric([], n or 0)
                oldest.add_metric([], (now - first).total_seconds() if first is not None else 0.0)
                running.add_metric([], s.scalar(select(func.count()).where(
                    Job.state.in_(runnable), Job.lease_owner.is_not(None), Job.lease_expires_at >= now)) or 0)
                lease = s.get(SchedulerLease, "scheduler")
                if lease is not None:
                    leader.add_metric([lease.owner], 1.0 if lease.expires_at >= now else 0.0)
                    lease_age.add_metric([], (lease.expires_at - now).total_seconds())
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
            log.debug("database metrics unavailable: %s", type(exc).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield from (up, states, depth, oldest, running, leader, lease_age)


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


def build_registry(db=None) -> CollectorRegistry:
    """The registry a scrape renders: every process's values (multiprocess mode) or this process's,
    plus the database figures when ``db`` is given."""
    from prometheus_client import REGISTRY

    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    if db is not None:
        registry.register(DatabaseCollector(db))
    return registry


class _Forward:
    """Exposes another registry's collectors inside a per-scrape registry."""

    def __init__(self, registry):
        self.registry = registry

    def describe(self):
        return []

    def collect(self):
        return self.registry.collect()


def render(db=None) -> bytes:
    return generate_latest(build_registry(db))


def prepare_multiprocess_dir(path: str) -> str:
    """Create ``path`` and empty it of a previous run's files; export it for this process's children.

    Called by ``exchange serve`` before anything imports prometheus_client (see the module doc)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
    os.environ[MULTIPROC_ENV] = path
    return path


def process_exited(pid: int) -> None:
    """Tell multiprocess mode a process is gone (its live gauges stop counting; counters stay)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def serve_metrics(port: int, host: str = "0.0.0.0", db=None):
    """Serve ``/metrics`` of this process (plus database figures) on ``port``: ``exchange worker``."""
    from prometheus_client import start_http_server

    registry = build_registry(db)
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server, thread


__all__ = [
    "REGISTRY", "BYTES_MOVED", "CONTENT_TYPE", "JOB_DURATION", "LEASE_TAKEOVERS", "LOST_SECONDS", "PARTNER_REQUESTS",
    "PARTNER_WAIT_SECONDS", "REQUEST_LATENCY", "ROWS_MOVED", "WEBHOOK_ATTEMPTS",
    "WEBHOOK_GIVEN_UP", "WEBHOOK_SUBSCRIBERS_DISABLED", "DatabaseCollector", "build_registry", "render",
]
