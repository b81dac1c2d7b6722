"""Production serving: gunicorn web workers plus one background process for jobs and schedules.

``exchange serve`` starts a *runner* process (the executor's job workers and the scheduler) beside
the gunicorn web workers, so CPU-bound transforms never hold a web worker's GIL and status polls stay
fast while jobs run. Each gunicorn worker builds its own app and runtime after the fork (no
preloading) and starts nothing in the background. Jobs are claimed from the database with leases and
the scheduler is elected by a lease, so any number of ``exchange serve`` processes may run together
(with ``EXCHANGE_EXECUTOR=celery`` the runner only publishes and schedules; workers run the jobs).
"""
from __future__ import annotations

import subprocess
import sys

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
    """The runner process: job workers (per the executor) and the scheduler, until SIGTERM.

    Shutdown is bounded by ``shutdown_grace_seconds``: workers get that long to stop between two
    steps of their jobs; whatever is still running then is abandoned (its lease lapses and another
    worker resumes the job), and the process exits without a traceback.
    """
    import logging
    import multiprocessing
    import signal
    import threading

    from .logging_setup import configure as configure_logging
    from .runtime import Runtime

    configure_logging(cfg)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    rt = Runtime(cfg)
    rt.start_background()
    while not done.wait(0.2):  # a bare wait() may sleep through a signal delivered to another thread
        pass
    stopper = threading.Thread(target=rt.shutdown, name="exchange-runner-shutdown", daemon=True)
    stopper.start()
    stopper.join(max(1.0, cfg.shutdown_grace_seconds))
    if stopper.is_alive():
        # job worker processes still busy: stop them now; their leases lapse and the jobs resume later
        children = multiprocessing.active_children()
        logging.getLogger(__name__).warning("runner: %d job worker(s) still busy after %ss; stopping them",
                                            len(children), cfg.shutdown_grace_seconds)
        for child in children:
            child.terminate()
        for child in children:
            child.join(2)
        stopper.join(2)


def runner_main() -> None:
    """Entry point of the runner subprocess: its configuration arrives pickled on stdin."""
    import pickle

    cfg = pickle.loads(sys.stdin.buffer.read())
    try:
        _run_background(cfg)
    except KeyboardInterrupt:
        pass


def start_runner(cfg: Config) -> subprocess.Popen:
    """Start the background runner as a plain subprocess.

    Not a ``multiprocessing`` child: gunicorn forks its web workers from this process, and a forked
    worker would inherit the child handle and fail at exit trying to join a process it did not
    start (``AssertionError: can only join a child process``)."""
    import pickle

    proc = subprocess.Popen([sys.executable, "-c", "from exchange.server import runner_main; runner_main()"],
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(cfg))
    proc.stdin.close()
    return proc


def stop_runner(proc: subprocess.Popen, grace: float) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=grace + 2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def check_port(host: str, port: int) -> None:
    """Fail fast, in one line, when the address is taken (gunicorn would retry, then keep a runner)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SystemExit(f"exchange serve: cannot resolve {host!r}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            raise SystemExit(f"exchange serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


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

    check_port(host, port)
    prepare_metrics(cfg, port)  # before anything imports prometheus_client
    migrate(cfg.database_url)
    grace = max(1, cfg.shutdown_grace_seconds)
    runner: dict = {}

    def _when_ready(server) -> None:
        runner["proc"] = start_runner(cfg)  # only once the port is really ours

    def _on_exit(server) -> None:
        if "proc" in runner:
            stop_runner(runner["proc"], grace)
            worker_exited(runner["proc"].pid)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        # uploads and downloads stream for as long as they need; keep-alive for pollers
        "keepalive": 5,
        "accesslog": None if cfg.log_format == "json" else "-",  # JSON: the app logs each request
        # SIGTERM (systemd stops the whole group): requests in flight get this long, then exit
        "graceful_timeout": grace,
        "worker_exit": _worker_exit,
        "when_ready": _when_ready,
        "on_exit": _on_exit,
        "child_exit": lambda server, worker: worker_exited(worker.pid),
        # one control socket per `exchange serve`: two on one host must not share gunicorn's default path
        "control_socket": control_socket_path(cfg, port),
    }
    _Gunicorn(cfg, options).run()
