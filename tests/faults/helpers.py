"""Helpers for the fault tests: the exchange as a real ``exchange serve`` subprocess, and an HTTP client.

:class:`ExchangeServer` runs ``python -m exchange.cli serve`` (gunicorn, embedded thread executor and
scheduler) in its own process group, so :meth:`ExchangeServer.kill` can SIGKILL the gunicorn master
and its worker at once, exactly as a crash or an OOM kill would. Starting it again on the same
``var_dir`` is a restart: same SQLite database, same blob folder.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.fakes.protocol_endpoint import ProtocolEndpoint

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}
SECRET = "fault-test-secret-key"
MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]
ROWS = 9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class HttpApi:
    """``requests`` with one account's bearer key against a base URL (keep-alive session)."""

    def __init__(self, base_url: str, token: str):
        self.base_url, self.token = base_url, token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kw) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=kw.pop("timeout", 10), **kw)

    def post(self, path: str, json: dict | None = None, **kw) -> requests.Response:
        return self.session.post(self.base_url + path, json=json, timeout=kw.pop("timeout", 30), **kw)

    def register(self, **body) -> dict:
        r = self.post("/v1/endpoints", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def audience(self, external_id: str) -> dict:
        items = self.get("/v1/audiences", params={"q": external_id}).json()["items"]
        match = [a for a in items if a["external_id"] == external_id]
        assert match, items
        return match[0]

    def share(self, **body) -> dict:
        r = self.post("/v1/shares", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def job(self, job_id: str) -> dict:
        r = self.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def events(self, job_id: str) -> list[str]:
        return [e["message"] for e in self.get(f"/v1/jobs/{job_id}/events").json()["items"]]

    def wait_job(self, job_id: str, until=frozenset(TERMINAL), timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in until:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job stuck in {job['state']}: {self.events(job_id)}")
            time.sleep(0.05)


class ExchangeServer:
    """``exchange serve`` as a subprocess on ``var_dir``; start, kill -9, start again."""

    def __init__(self, var_dir: Path, *, threads: int = 8, **settings: str | int | float | bool):
        self.var_dir = Path(var_dir)
        self.threads = threads
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
        self.env.update({
            "EXCHANGE_VAR_DIR": str(self.var_dir),
            "EXCHANGE_ALLOW_PRIVATE_URLS": "true",
            "EXCHANGE_SECRET_KEY": SECRET,
            "EXCHANGE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        })
        for key, value in settings.items():
            self.env[f"EXCHANGE_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "exchange.cli", *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def create_account(self, name: str = "Faults") -> HttpApi:
        self.cli("db", "upgrade")
        info = json.loads(self.cli("accounts", "create", name, "--json").strip().splitlines()[-1])
        return HttpApi(self.url, info["api_key"])

    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None, "already running"
        self.port = free_port()
        self.starts += 1
        log = open(self.var_dir.parent / f"server-{self.starts}.log", "wb")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exchange.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--threads", str(self.threads)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exchange serve exited with {self.proc.returncode}: {self.log()[-3000:]}")
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"exchange serve did not become ready: {self.log()[-3000:]}")

    def log(self) -> str:
        path = self.var_dir.parent / f"server-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn master and workers): no cleanup runs."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._reap_group(self.proc.pid)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._reap_group(self.proc.pid)
        self.proc = None

    @staticmethod
    def _reap_group(pgid: int, timeout: float = 10.0) -> None:
        """Wait until no process of the group is left (the gunicorn worker dies with its master)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


# ------------------------------------------------------------------ in-process helpers
def source(tag: str) -> str:
    """ROWS distinct members ``<tag><i>@example.com``."""
    return "email,country\n" + "".join(f"{tag}{i}@example.com,FR\n" for i in range(ROWS))


def setup_shares(api, tmp_path, audiences: list[str], *, consumer_url: str | None = None):
    """In process (``api`` is a tests.conftest.Api): a PULL producer with one audience of ROWS rows per
    name, a PUSH consumer (2 rows per request) and one share per audience into ``D<name>``."""
    prod = ProtocolEndpoint(producer_dir=tmp_path / "p", credential="pt")
    cons = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="ct")
    for name in audiences:
        prod.write_audience(name, source(name))
    prod.start()
    cons.start()
    consumer_url = consumer_url or cons.url
    r = api.post("/v1/endpoints", json=dict(name="P", contact_url=prod.url, producer={"transport": "pull"},
                                            identifiers=["email"], attributes=["country"], credential="pt"))
    assert r.status_code == 201, r.json
    r = api.post("/v1/endpoints", json=dict(name="C", contact_url=consumer_url, identifiers=["email_sha256"],
                                            attributes=["country"], credential="ct",
                                            consumer={"transport": "push", "max_rows_per_request": 2}))
    assert r.status_code == 201, r.json
    dest = r.json
    shares = {}
    for name in audiences:
        items = api.get("/v1/audiences", query_string={"q": name}).json["items"]
        aud = next(a for a in items if a["external_id"] == name)
        r = api.post("/v1/shares", json={"audience_id": aud["id"], "destination_id": dest["id"],
                                         "destination_audience": f"D{name}", "mapping": MAPPING, "mode": "add"})
        assert r.status_code == 201, r.json
        shares[name] = r.json
    return prod, cons, shares


def wait_all(api, job_ids, timeout: float = 60.0) -> dict[str, dict]:
    """Poll (in process) until every job is terminal; returns each job by id."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j: api.get(f"/v1/jobs/{j}").json for j in job_ids}
        if all(job["state"] in TERMINAL for job in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError({j: job["state"] for j, job in jobs.items()})
        time.sleep(0.1)


def members(cons: ProtocolEndpoint, audience: str) -> list[str]:
    """The ``email_sha256`` column of the consumer's member file of ``audience`` (one per row)."""
    with open(cons.consumer_file(audience), newline="", encoding="utf-8") as fh:
        return [r["email_sha256"] for r in csv.DictReader(fh)]
