"""Operations fixtures: a moto S3 server on loopback (the real HTTP protocol, as a deployment sees it)."""
from __future__ import annotations

import os
import secrets

import pytest

from tests.scaled.deployment import AWS_ENV, free_port


@pytest.fixture(scope="module")
def s3_server():
    """``(endpoint_url, boto3 client)`` of a moto server for this module; credentials in the env."""
    server_mod = pytest.importorskip("moto.server")
    import boto3

    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket_name() -> str:
    return f"ops-{secrets.token_hex(5)}"


@pytest.fixture
def live(tmp_path):
    """The e2e ``live`` exchange (background job workers and an account client)."""
    from exchange.app import create_app
    from exchange.db import upgrade
    from exchange.runtime import Runtime
    from tests.conftest import make_config, new_account

    cfg = make_config(tmp_path, workers=2, max_attempts=4)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    api = new_account(rt, app.test_client())
    api.rt = rt
    yield api
    rt.shutdown()
