"""Scaled fixtures: one real scale-out deployment per session, and a ``live`` fixture over HTTP.

``scaled`` starts :class:`tests.scaled.deployment.Deployment` once per session (PostgreSQL database
created and dropped, moto S3 server, Redis or RabbitMQ, ``exchange db upgrade``, two web and two
worker processes) and skips every test here, with the reason, when a service is missing.
``live`` gives each test a new account on it: the same interface as ``tests/e2e``'s ``live`` (an
``Api`` with ``.client`` and ``.rt``), but requests go over HTTP to both web processes in turn and
jobs run in the worker processes. Accounts keep tests apart in the shared database.
"""
from __future__ import annotations

import pytest

from tests.conftest import Api, new_account
from tests.scaled.deployment import Deployment, unavailable_reason


@pytest.fixture(scope="session")
def scaled(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"scaled deployment unavailable: {reason}")
    deployment = Deployment(tmp_path_factory.mktemp("scaled"))
    deployment.start()
    yield deployment
    deployment.stop()


@pytest.fixture
def scaled_healthy(scaled):
    """The deployment with all its processes running (a kill test may have left one down)."""
    for i, proc in enumerate(scaled.webs):
        if proc is None or proc.poll() is not None:
            scaled.start_web(i)
    for i, proc in enumerate(scaled.workers):
        if proc is None or proc.poll() is not None:
            scaled.start_worker(i)
    return scaled


@pytest.fixture
def live(scaled_healthy) -> Api:
    api = new_account(scaled_healthy.rt, scaled_healthy.client(), "Acme")
    api.rt = scaled_healthy.rt
    return api
