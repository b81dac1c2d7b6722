"""Fixtures of the in-process fault tests: an exchange with background workers and short leases."""
from __future__ import annotations

import pytest

from exchange.app import create_app
from exchange.db import upgrade
from exchange.runtime import Runtime
from tests.conftest import make_config, new_account


@pytest.fixture
def live_settings() -> dict:
    """Config overrides of :func:`live`; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def live(tmp_path, live_settings):
    """A runtime with 2 worker threads, short leases (a job whose lease could not be released is
    soon free again) and an account client with ``.rt``."""
    settings = {"workers": 2, "max_attempts": 4, "lease_seconds": 2, **live_settings}
    cfg = make_config(tmp_path, **settings)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    api = new_account(rt, app.test_client())
    api.rt = rt
    yield api
    rt.shutdown()
