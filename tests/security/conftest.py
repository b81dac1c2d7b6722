"""Fixtures for the security suite: an exchange with configurable limits."""
from __future__ import annotations

import pytest

from exchange.app import create_app
from exchange.runtime import Runtime
from tests.conftest import make_config, new_account, prepare_db
from tests.e2e.conftest import live, other_api_live  # noqa: F401 - shared fixtures


@pytest.fixture
def make_exchange(tmp_path, migrated_template):
    made = []

    def _make(**overrides):
        cfg = make_config(tmp_path / f"x{len(made)}", **overrides)
        prepare_db(cfg, migrated_template)
        rt = Runtime(cfg)
        app = create_app(runtime=rt)
        made.append(rt)
        return rt, app
    yield _make
    for rt in made:
        rt.shutdown()


__all__ = ["new_account"]
