"""Production serving with gunicorn (threaded workers), configured from the exchange's settings.

Each gunicorn worker builds its own app and runtime after the fork (no preloading), so database
pools, broker connections and the scheduler thread are never shared across processes. With the
embedded thread executor jobs run inside the web process; with ``EXCHANGE_EXECUTOR=celery`` any
number of web processes and gunicorn workers may run, since jobs are claimed from the database and
the scheduler is elected by a lease. On a graceful stop a worker shuts its runtime down.
"""
from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .config import Config

# any fixed 64-bit number: the PostgreSQL advisory lock serialising migrations of many processes
_MIGRATION_LOCK = 0x45584348_414E4745


class _Gunicorn(BaseApplication):
    def __init__(self, cfg: Config, options: dict):
        self._cfg = cfg
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app

        return create_app(self._cfg, start_background=True)


def _worker_exit(server, worker) -> None:
    """Stop the scheduler and the executor of a gunicorn worker that exits gracefully."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("exchange") if app is not None else None
    if runtime is not None:
        runtime.shutdown()


def migrate(database_url: str) -> None:
    """Apply the migrations; on PostgreSQL under an advisory lock, so web processes may start together."""
    from .db import upgrade

    if not database_url.startswith("postgresql"):
        upgrade(database_url)
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                upgrade(database_url)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
    finally:
        engine.dispose()


def run_gunicorn(cfg: Config, *, host: str, port: int, workers: int = 1, threads: int = 8) -> None:
    migrate(cfg.database_url)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        # uploads and downloads stream for as long as they need; keep-alive for pollers
        "keepalive": 5,
        "accesslog": "-",
        "graceful_timeout": 30,
        "worker_exit": _worker_exit,
    }
    _Gunicorn(cfg, options).run()
