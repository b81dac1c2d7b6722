"""A scaled deployment on loopback, as real processes: the scale-out of SPEC §12, configured by env only.

:class:`Deployment` creates a fresh PostgreSQL database on the local server, starts moto's S3 server
(in this process, on a free port) with a bucket, picks a broker (Redis, else RabbitMQ), runs
``exchange db upgrade``, then starts web processes (``exchange serve``, each running a scheduler;
the lease elects one) and worker processes (``exchange worker``). Every process gets the same
``EXCHANGE_*`` environment; nothing else tells it that it is "scaled". Processes run in their own
session so a kill reaches the gunicorn master and its worker alike; their output goes to log files
in the work folder. The test suite and ``bench/bench_scaled.py`` both use it.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.scaled.http_client import RoundRobinClient

POSTGRES_URL = os.environ.get("EXCHANGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EXCHANGE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
AMQP_URL = os.environ.get("EXCHANGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_SESSION_TOKEN": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(_pg(POSTGRES_URL), connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001
        return False


def find_broker() -> str | None:
    """A Redis URL on a database of its own (runs side by side do not share a queue), else RabbitMQ."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        return f"{REDIS_URL.rstrip('/')}/{secrets.randbelow(15) + 1}"
    except Exception:  # noqa: BLE001
        pass
    try:
        from kombu import Connection

        with Connection(AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return AMQP_URL
    except Exception:  # noqa: BLE001
        return None


def unavailable_reason() -> str | None:
    """Why a scaled deployment cannot run here, or None."""
    try:
        import moto.server  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return f"moto server mode unavailable ({type(exc).__name__}: {exc}); install moto[server]"
    if not postgres_available():
        return f"PostgreSQL not reachable at {POSTGRES_URL} (set EXCHANGE_TEST_POSTGRES_URL)"
    if find_broker() is None:
        return f"no broker: neither Redis ({REDIS_URL}) nor RabbitMQ ({AMQP_URL}) answers"
    return None


def _exchange_cmd() -> list[str]:
    script = Path(sys.executable).with_name("exchange")
    return [str(script)] if script.exists() else [sys.executable, "-m", "exchange.cli"]


class Deployment:
    """Start with :meth:`start`, stop with :meth:`stop`; ``webs``/``workers`` hold the live processes."""

    def __init__(self, work: Path, *, webs: int = 2, workers: int = 2, concurrency: int = 2,
                 lease_seconds: int | None = 5, scheduler_lease_seconds: int = 3, env: dict[str, str] | None = None,
                 broker_proxy: bool = False):
        self.work = Path(work)
        self.n_webs, self.n_workers, self.concurrency = webs, workers, concurrency
        self.lease_seconds, self.scheduler_lease_seconds = lease_seconds, scheduler_lease_seconds
        self.extra_env = dict(env or {})
        self.ports = [free_port() for _ in range(webs)]
        self.metrics_ports = [free_port() for _ in range(workers)]  # exchange worker --metrics-port
        self.broker_proxy = TcpProxy() if broker_proxy else None  # lets a test cut the broker off
        self.webs: list[subprocess.Popen | None] = [None] * webs
        self.workers: list[subprocess.Popen | None] = [None] * workers
        self.database = f"exch_{secrets.token_hex(6)}"
        self.bucket = f"exch-{secrets.token_hex(6)}"
        self._moto = None
        self._saved_env: dict[str, str | None] = {}
        self.rt = None
        self.env: dict[str, str] = {}
        self.broker_url = ""
        self._log_marks: dict[int, int] = {}  # where a worker's log stood when it was last started

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Deployment:
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            self._start_services()
            # the operator's commands, as docs/deploy.md lists them
            self.run_cli("db", "upgrade")
            self.run_cli("blobs", "init")
            for i in range(self.n_webs):
                self.start_web(i, wait=False)
            for i in range(self.n_workers):
                self.start_worker(i, wait=False)
            for i in range(self.n_webs):
                self._wait_web(i)
            for i in range(self.n_workers):
                self._wait_worker(i)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_services(self) -> None:
        import psycopg
        from moto.server import ThreadedMotoServer

        with psycopg.connect(_pg(POSTGRES_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        database_url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{self.database}"
        s3_port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
        self._moto.start()
        s3_url = f"http://127.0.0.1:{s3_port}"
        # the in-process Runtime (tests look into the database and blobs) needs the same credentials
        for key, value in AWS_ENV.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self.s3_url = s3_url  # the bucket is created by `exchange blobs init`, as the docs say
        self.broker_url = find_broker()
        if self.broker_proxy is not None:
            self.broker_url = self.broker_proxy.start(self.broker_url)
        self.env = {
            "EXCHANGE_DATABASE_URL": database_url,
            "EXCHANGE_BLOB_URL": f"s3://{self.bucket}/exchange",
            "EXCHANGE_S3_ENDPOINT_URL": s3_url,
            "EXCHANGE_EXECUTOR": "celery",
            "EXCHANGE_BROKER_URL": self.broker_url,
            "EXCHANGE_SCHEDULER": "true",
            "EXCHANGE_SCHEDULER_LEASE_SECONDS": str(self.scheduler_lease_seconds),
            "EXCHANGE_ALLOW_PRIVATE_URLS": "true",
            "EXCHANGE_SECRET_KEY": "scaled-test-secret",
            "EXCHANGE_VAR_DIR": str(self.work / "var"),
            "EXCHANGE_MAX_ATTEMPTS": "4",
            "EXCHANGE_LOG_LEVEL": "INFO",
            **({"EXCHANGE_LEASE_SECONDS": str(self.lease_seconds)} if self.lease_seconds is not None else {}),
            **self.extra_env,
        }
        from exchange.config import Config
        from exchange.runtime import Runtime

        self.rt = Runtime(Config.from_env(self.env))

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
        env.update(AWS_ENV)
        env.update(self.env)
        env["TMPDIR"] = str(self._tmpdir())
        return env

    def _tmpdir(self) -> Path:
        path = self.work / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stop(self) -> None:
        procs = [p for p in (*self.webs, *self.workers) if p is not None and p.poll() is None]
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()
        self.webs = [None] * self.n_webs
        self.workers = [None] * self.n_workers
        if self.rt is not None:
            self.rt.shutdown()
            self.rt = None
        self._drop_queue()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self.broker_proxy is not None:
            self.broker_proxy.stop()
        try:
            import psycopg

            with psycopg.connect(_pg(POSTGRES_URL), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except Exception:  # noqa: BLE001 - never hide the test's own failure
            pass
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        shutil.rmtree(self.work / "tmp", ignore_errors=True)

    def _drop_queue(self) -> None:
        """Remove this run's queue from its Redis database (RabbitMQ's default vhost is left as is)."""
        if not self.broker_url.startswith("redis"):
            return
        try:
            import redis

            redis.Redis.from_url(self.broker_url, socket_connect_timeout=2).delete(
                "exchange-jobs", "unacked", "unacked_index", "unacked_mutex")
        except Exception:  # noqa: BLE001 - leftovers are harmless hints
            pass

    # -- processes ---------------------------------------------------------------------------------

    def run_cli(self, *args: str) -> str:
        out = subprocess.run([*_exchange_cmd(), *args], env=self.process_env(), cwd=self.work,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"exchange {' '.join(args)} failed: {out.stderr[-2000:]}")
        return out.stdout

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it from here
        try:
            return subprocess.Popen([*_exchange_cmd(), *args], env=self.process_env(), cwd=self.work,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def start_web(self, i: int, *, wait: bool = True) -> None:
        self.webs[i] = self._spawn(f"web{i}", "serve", "--host", "127.0.0.1", "--port", str(self.ports[i]),
                                   "--workers", "1", "--threads", "8")
        if wait:
            self._wait_web(i)

    def start_worker(self, i: int, *, wait: bool = True) -> None:
        log = self.work / f"worker{i}.log"
        self._log_marks[i] = log.stat().st_size if log.exists() else 0
        self.workers[i] = self._spawn(f"worker{i}", "worker", "--concurrency", str(self.concurrency),
                                      "--metrics-port", str(self.metrics_ports[i]), "--metrics-host", "127.0.0.1")
        if wait:
            self._wait_worker(i)

    def _wait_web(self, i: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(self.webs[i], f"web{i}")
            try:
                if requests.get(f"{self.urls[i]}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"web{i} not ready after {timeout}s: {self.log_tail(f'web{i}')}")

    def _wait_worker(self, i: int, timeout: float = 60.0) -> None:
        log = self.work / f"worker{i}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(self.workers[i], f"worker{i}")
            with open(log, "rb") as fh:
                fh.seek(self._log_marks.get(i, 0))
                if b" ready." in fh.read():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"worker{i} not ready after {timeout}s: {self.log_tail(f'worker{i}')}")

    def _check_alive(self, proc: subprocess.Popen | None, name: str) -> None:
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {self.log_tail(name)}")

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"

    def kill_web(self, i: int) -> None:
        """``kill -9`` web process ``i`` (gunicorn master and worker)."""
        _signal_group(self.webs[i], signal.SIGKILL)
        self.webs[i].wait()

    def kill_worker(self, i: int) -> None:
        _signal_group(self.workers[i], signal.SIGKILL)
        self.workers[i].wait()

    def web_of_pid(self, pid: int) -> int | None:
        """Which web process ``pid`` belongs to (its gunicorn worker runs in the master's group)."""
        return _group_index(self.webs, pid)

    def worker_of_pid(self, pid: int) -> int | None:
        return _group_index(self.workers, pid)

    # -- clients -----------------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def client(self) -> RoundRobinClient:
        return RoundRobinClient(self.urls)


def _signal_group(proc: subprocess.Popen | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)  # the process leads its own session: pgid == pid
    except ProcessLookupError:
        pass


def _group_index(procs: list[subprocess.Popen | None], pid: int) -> int | None:
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return None
    for i, proc in enumerate(procs):
        if proc is not None and proc.pid == group:
            return i
    return None


class TcpProxy:
    """A loopback TCP forwarder in front of the broker; :meth:`cut` refuses and drops connections
    (the broker "goes down" for the processes), :meth:`restore` lets them through again."""

    def __init__(self) -> None:
        import threading

        self.port = free_port()
        self.target: tuple[str, int] | None = None
        self.up = threading.Event()
        self.up.set()
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self, url: str) -> str:
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{self.port}")
        return parts._replace(netloc=netloc).geturl()

    def _accept(self) -> None:
        import threading

        while self._server is not None:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            for sock in self._conns:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
            self._conns.clear()

    def restore(self) -> None:
        self.up.set()

    def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            self._server = None
