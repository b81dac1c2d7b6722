"""Operations endpoints: liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from ..errors import ExchangeError
from ..schemas.common import HealthSchema
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
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, description="The database or the blob store is unreachable")
    def get(self):
        """Readiness: the database and the blob store are reachable."""
        rt = runtime()
        try:
            with rt.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001
            raise NotReady(f"Database unreachable ({type(exc).__name__}).") from None
        try:
            rt.blobs.exists("readyz-probe")
        except Exception as exc:  # noqa: BLE001
            raise NotReady(f"Blob store unreachable ({type(exc).__name__}).") from None
        return {"status": "ready"}


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(200, content_type="text/plain")
    def get(self):
        """Prometheus metrics in the text exposition format."""
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")
