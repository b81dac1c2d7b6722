"""The application factory: the only place where the Flask app is assembled."""
from __future__ import annotations

import http

from flask import Flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from .config import Config
from .runtime import Runtime

API_TITLE = "Audience Exchange"
API_VERSION = "1.0.0"
API_DESCRIPTION = (
    "Producer endpoints (CRMs, CDPs, warehouses) and consumer endpoints (ad platforms, messaging and BI "
    "tools) register once, then share audiences - CSV files of personal identifiers - by PUSH or PULL. "
    "Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 problem documents."
)


class ExchangeApi(Api):
    """flask-smorest's Api, documenting errors as the problem documents the app really sends."""

    def _init_spec(self, *args, **kwargs):
        super()._init_spec(*args, **kwargs)
        from .openapi_stable import StableSpec

        self.spec.__class__ = StableSpec  # component names and phrases independent of the Python version

    def _register_responses(self):
        from .schemas.common import ProblemSchema

        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = ProblemSchema
            prepare_response(response, self.spec, "application/problem+json")
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Problem document (RFC 9457)", "schema": ProblemSchema}
        prepare_response(response, self.spec, "application/problem+json")
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def create_app(config: Config | None = None, *, runtime: Runtime | None = None,
               start_background: bool = False) -> Flask:
    config = config or (runtime.config if runtime else Config.from_env())
    runtime = runtime or Runtime(config)
    from .logging_setup import configure as configure_logging

    configure_logging(config)  # level and format (plain | json) from the configuration

    app = Flask(__name__)
    if config.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = config.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)
    app.config.update(
        SECRET_KEY=config.secret_key,
        TESTING=config.testing,
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        API_SPEC_OPTIONS={
            "info": {"description": API_DESCRIPTION},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.session_cookie_secure,
        MAX_CONTENT_LENGTH=config.max_upload_bytes,
    )
    app.extensions["exchange"] = runtime

    from .api import (
        account,
        adapters,
        applications,
        audiences,
        audit,
        deliveries,
        endpoints,
        jobs,
        keys,
        middleware,
        ops,
        problems,
        shares,
    )

    # one Api per app: tests build many apps and each needs its own OpenAPI document
    api = ExchangeApi(app)

    for module in (ops, keys, endpoints, audiences, shares, jobs, deliveries, adapters, audit, account,
                   applications):
        api.register_blueprint(module.blp)
    from .api import webhooks as webhooks_api

    api.register_blueprint(webhooks_api.blp)
    from .web import register as register_web
    register_web(app)
    problems.register(app)
    middleware.register(app)
    if config.log_format == "json":
        from .logging_setup import log_requests

        log_requests(app)

    if config.api_status_fast_path:
        from .api.fastpath import StatusFastPath

        app.wsgi_app = StatusFastPath(app, app.wsgi_app)  # type: ignore[method-assign]

    if start_background:
        runtime.start_background()
    return app

