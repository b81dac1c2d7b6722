"""The Alembic migrations build exactly the models' schema, on SQLite and on PostgreSQL."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, inspect, text

from exchange.db import upgrade
from exchange.models import Base
from tests.conftest import postgres_url


def _assert_schema(url: str) -> None:
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
    finally:
        engine.dispose()


def test_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    upgrade(url)  # idempotent
    _assert_schema(url)


@pytest.mark.postgres
def test_postgres():
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable (set EXCHANGE_TEST_POSTGRES_URL or start the local server)")
    schema = "mig_" + uuid.uuid4().hex[:8]
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    try:
        upgrade(scoped)
        _assert_schema(scoped)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
