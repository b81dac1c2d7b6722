"""Prometheus metrics: request latency histograms, rows moved, and jobs by state (read at scrape)."""
from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from ..metrics import REGISTRY, REQUEST_LATENCY, ROWS_MOVED

__all__ = ["REGISTRY", "REQUEST_LATENCY", "ROWS_MOVED", "observe_request", "render"]


def observe_request(request, response, seconds: float) -> None:
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    REQUEST_LATENCY.labels(request.method, route, str(response.status_code)).observe(seconds)


class JobStateCollector:
    """Counts jobs by state straight from the database, so every process reports the same numbers."""

    def collect(self):
        from flask import current_app, has_app_context

        from ..models import Job

        if not has_app_context():
            return

        family = GaugeMetricFamily("exchange_jobs", "Jobs by state", labels=["state"])
        try:
            with current_app.extensions["exchange"].db.session() as s:
                for state, n in s.execute(select(Job.state, func.count()).group_by(Job.state)):
                    family.add_metric([state], n)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            pass
        yield family


def render() -> bytes:
    return generate_latest(REGISTRY)


REGISTRY.register(JobStateCollector())
