"""Structured logs (issue 18 §5): JSON on request, plain by default, with request id, account, job and worker."""
from __future__ import annotations

import io
import json
import logging

import pytest

from exchange.app import create_app
from exchange.logging_setup import ContextFilter, JsonFormatter, PlainFormatter, configure, log_context


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield handler, stream
    root.removeHandler(handler)
    root.setLevel(old)


def test_json_lines_carry_request_id_account_job_and_worker(runtime, api, captured):
    handler, stream = captured
    handler.setFormatter(JsonFormatter())
    runtime.config.log_format = "json"
    app = create_app(runtime=runtime)
    client = app.test_client()
    r = client.get("/v1/endpoints", headers={"Authorization": f"Bearer {api.token}", "X-Request-Id": "req-42"})
    assert r.status_code == 200
    with log_context(job_id="job123", worker="host:1:abc"):
        logging.getLogger("exchange.jobs.runner").warning("job %s lost the database", "job123")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [d for d in lines if d["logger"] == "exchange.access"]
    assert access and access[-1]["request_id"] == "req-42" and access[-1]["account"] == api.account_id
    assert access[-1]["http"]["status"] == 200 and access[-1]["http"]["path"] == "/v1/endpoints"
    job = lines[-1]
    assert job["job_id"] == "job123" and job["worker"] == "host:1:abc" and job["level"] == "WARNING"
    assert job["message"] == "job job123 lost the database" and "request_id" not in job


def test_plain_is_the_default_and_names_the_context(captured, config):
    assert config.log_format == "plain" and config.log_level == "INFO"
    handler, stream = captured
    handler.setFormatter(PlainFormatter())
    with log_context(job_id="j1"):
        logging.getLogger("x").info("hello")
    logging.getLogger("x").info("outside")
    first, second = stream.getvalue().splitlines()
    assert " INFO x [job_id=j1 worker=" in first and first.endswith("]: hello")
    assert "job_id" not in second and second.endswith(": outside")


def test_configure_sets_level_and_format(config):
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        config.log_level, config.log_format = "WARNING", "json"
        configure(config, force=True)
        assert root.level == logging.WARNING
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
