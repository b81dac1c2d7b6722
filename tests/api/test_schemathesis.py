"""Property-based API testing: schemathesis drives every operation of the committed OpenAPI document.

Bounded examples per operation; the app must never answer 5xx and every response must match the
documented schema (status code, content type, body)."""
from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from exchange.app import create_app
from tests.conftest import make_config, new_account

schemathesis.experimental.OPEN_API_3_1.enable()


@schemathesis.serializer("text/csv")
class CsvSerializer:
    """Generated CSV bodies are strings; send them as UTF-8 bytes."""

    def as_requests(self, context, value):
        return {"data": str(value).encode()}

    def as_werkzeug(self, context, value):
        return {"data": str(value).encode()}


SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
schema = schemathesis.from_path(str(SPEC), base_url="http://localhost")


@pytest.fixture(scope="module")
def st_app(tmp_path_factory, request):
    from exchange.db import upgrade
    from exchange.runtime import Runtime

    tmp = tmp_path_factory.mktemp("st")
    cfg = make_config(tmp, allow_private_urls=False, executor="inline")
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    api = new_account(rt, app.test_client())
    # some real objects so that ids in paths sometimes exist
    ep = api.post("/v1/endpoints", json={"name": "P", "producer": {"transport": "push"},
                                         "identifiers": ["email"]}).json
    app.config["ST_TOKEN"] = api.token
    app.config["ST_ENDPOINT"] = ep["id"]
    yield app
    rt.shutdown()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case, st_app):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {st_app.config['ST_TOKEN']}"}
    response = case.call_wsgi(app=st_app)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.get_data()[:500])
    case.validate_response(response, checks=(schemathesis.checks.not_a_server_error,
                                              schemathesis.checks.status_code_conformance,
                                              schemathesis.checks.content_type_conformance,
                                              schemathesis.checks.response_schema_conformance))

