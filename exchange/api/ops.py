"""Operations endpoints: liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from ..errors import ExchangeError
from ..schemas.common import HealthSchema, ReadySchema
from . import metrics
from .context import runtime

blp = Blueprint("ops", __name__, description="Health checks and metrics")


class NotReady(ExchangeError):
    status = 503
    title = "Not ready"
    type_slug = "not-ready"


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """Liveness: the process is up."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, description="A dependency failed: the problem's `errors` name each failed check "
                      "(database, blobs, broker) with its reason")
    def get(self):
        """Readiness: the database answers at the code's migration head, the blob store passes a
        write-read-delete probe, and (Celery executor) the broker accepts a connection."""
        from ..health import check_all

        checks = check_all(runtime())
        failed = [c for c in checks if not c.ok]
        if failed:
            raise NotReady("Not ready: " + "; ".join(f"{c.name}: {c.reason}" for c in failed),
                           errors={c.name: [c.reason] for c in failed})
        return {"status": "ready", "checks": {c.name: c.status for c in checks}}


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(200, content_type="text/plain")
    def get(self):
        """Prometheus metrics in the text exposition format."""
        return Response(metrics.render(runtime().db), mimetype="text/plain; version=0.0.4")
