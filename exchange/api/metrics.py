"""The API side of the metrics: request latency per route. Collectors live in ``exchange.metrics``."""
from __future__ import annotations

from .. import metrics as _metrics


def observe_request(request, response, seconds: float) -> None:
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    _metrics.observe_request(request.method, route, response.status_code, seconds)


def render(db=None) -> bytes:
    return _metrics.render(db)
