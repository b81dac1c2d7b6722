"""Production serving: gunicorn web workers plus one background process for jobs and schedules.

``exchange serve`` starts a *runner* process (the executor's job workers and the scheduler) beside
the gunicorn web workers, so CPU-bound transforms never hold a web worker's GIL and status polls stay
fast while jobs run. Each gunicorn worker builds its own app and runtime after the fork (no
preloading) and starts nothing in the background. Jobs are claimed from the database with leases and
the scheduler is elected by a lease, so any number of ``exchange serve`` processes may run together
(with ``EXCHANGE_EXECUTOR=celery`` the runner only publishes and schedules; workers run the jobs).
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

        return create_app(self._cfg, start_background=False)


def _run_background(cfg: Config) -> None:
    """The runner process: job workers (per the executor) and the scheduler, until SIGTERM."""
    import signal
    import threading

    from .logging_setup import configure as configure_logging
    from .runtime import Runtime

    configure_logging(cfg)
    rt = Runtime(cfg)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    rt.start_background()
    try:
        done.wait()
    finally:
        rt.shutdown()


def start_runner(cfg: Config):
    """Start the background runner process (not daemonic: it has job worker processes of its own)."""
    import multiprocessing

    proc = multiprocessing.get_context("spawn").Process(target=_run_background, args=(cfg,),
                                                        name="exchange-runner", daemon=False)
    proc.start()
    return proc


def _worker_exit(server, worker) -> None:
    """Release a gunicorn worker's database pool when it exits gracefully."""
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


def run_gunicorn(cfg: Config, *, host: str, port: int, workers: int = 2, threads: int = 8) -> None:
    from .serving import control_socket_path, prepare_metrics, worker_exited

    prepare_metrics(cfg, port)  # before anything imports prometheus_client
    migrate(cfg.database_url)
    runner = start_runner(cfg)

    def _on_exit(server) -> None:
        runner.terminate()
        runner.join(timeout=30)
        worker_exited(runner.pid)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        # uploads and downloads stream for as long as they need; keep-alive for pollers
        "keepalive": 5,
        "accesslog": None if cfg.log_format == "json" else "-",  # JSON: the app logs each request
        "graceful_timeout": 30,
        "worker_exit": _worker_exit,
        "on_exit": _on_exit,
        "child_exit": lambda server, worker: worker_exited(worker.pid),
        # one control socket per `exchange serve`: two on one host must not share gunicorn's default path
        "control_socket": control_socket_path(cfg, port),
    }
    _Gunicorn(cfg, options).run()
