"""Shared fixtures: a fresh exchange (SQLite + local blob folder in a temp dir) per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from exchange.app import create_app
from exchange.config import Config
from exchange.db import upgrade
from exchange.runtime import Runtime

# the specification's folder sits beside the repository (CI clones main with ../shared next to it)
SHARED = next((p for p in (Path(__file__).resolve().parents[1].parent / "shared", Path("/work/shared"))
               if (p / "testdata").is_dir()), Path(__file__).resolve().parents[1].parent / "shared")
TESTDATA = SHARED / "testdata"


def make_config(tmp_path: Path, **overrides) -> Config:
    values = dict(var_dir=tmp_path / "var", testing=True, secret_key="test-secret", scheduler=False,
                  executor="thread", workers=2, allow_private_urls=True)
    values.update(overrides)
    return Config.from_env({}, **values)


@pytest.fixture
def config(tmp_path) -> Config:
    return make_config(tmp_path)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """One migrated SQLite file per test session; each test starts from a copy (fast, same schema)."""
    path = tmp_path_factory.mktemp("template") / "exchange.db"
    upgrade(f"sqlite:///{path}")
    return path


def prepare_db(config: Config, template: Path) -> None:
    import shutil

    target = Path(config.database_url.split("///", 1)[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


@pytest.fixture
def runtime(config, migrated_template):
    prepare_db(config, migrated_template)
    rt = Runtime(config)
    yield rt
    rt.shutdown()


@pytest.fixture
def app(runtime):
    return create_app(runtime=runtime)


@pytest.fixture
def client(app):
    return app.test_client()


class Api:
    """A test client that sends one account's bearer key and JSON bodies."""

    def __init__(self, client, token: str, account_id: str):
        self.client, self.token, self.account_id = client, token, account_id

    def _h(self, headers=None):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        return h

    def get(self, url, **kw):
        return self.client.get(url, headers=self._h(kw.pop("headers", None)), **kw)

    def delete(self, url, **kw):
        return self.client.delete(url, headers=self._h(kw.pop("headers", None)), **kw)

    def post(self, url, json=None, **kw):
        return self.client.post(url, json=json, headers=self._h(kw.pop("headers", None)), **kw)

    def patch(self, url, json=None, **kw):
        return self.client.patch(url, json=json, headers=self._h(kw.pop("headers", None)), **kw)

    def put(self, url, **kw):
        return self.client.put(url, headers=self._h(kw.pop("headers", None)), **kw)


def new_account(runtime, client, name="Acme") -> Api:
    from exchange.auth.keys import create_account

    with runtime.db.session() as s:
        account, token = create_account(s, name)
    return Api(client, token, account.id)


@pytest.fixture
def api(runtime, client) -> Api:
    return new_account(runtime, client, "Acme")


@pytest.fixture
def other_api(runtime, client) -> Api:
    return new_account(runtime, client, "Other")


def postgres_url() -> str | None:
    """The test PostgreSQL server, if one answers (EXCHANGE_TEST_POSTGRES_URL or the local one)."""
    url = os.environ.get("EXCHANGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=2):
            return url
    except Exception:  # noqa: BLE001
        return None
