"""Prometheus collectors any layer may record to; imports nothing of the exchange above it.

Moved here from ``api/metrics.py`` so the job engine can count rows without loading Flask; the
Flask-bound parts (request observation, the jobs-by-state collector) stay in ``api/metrics.py``.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_LATENCY = Histogram(
    "exchange_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROWS_MOVED = Counter("exchange_rows_moved_total", "Rows delivered to consumers", ["kind"],
                     registry=REGISTRY)
