"""``exchange serve`` stops promptly: SIGTERM to its whole process group (what systemd sends) ends
every process of the group within 10 s, jobs and requests in flight notwithstanding, with no
traceback in the log; a busy port is one line on stderr and a non-zero exit within seconds."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint
from tests.faults.helpers import ROOT, ExchangeServer

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_to_the_group_exits_promptly(tmp_path: Path) -> None:
    server = ExchangeServer(tmp_path / "var", workers=2, lease_seconds=30)
    api = server.create_account()
    prod = ProtocolEndpoint(producer_dir=tmp_path / "p", credential="pt")
    cons = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="ct")
    prod.write_audience("aud", "email\n" + "".join(f"u{i}@example.com\n" for i in range(20)))
    cons.script("POST", "/audiences/D/data", [Fault(delay=60.0, forever=True)])  # a job stuck delivering
    server.start()
    pgid = server.proc.pid
    try:
        with prod, cons:
            api.base_url = server.url
            api.register(name="P", contact_url=prod.url, producer={"transport": "pull"}, identifiers=["email"],
                         credential="pt")
            c = api.register(name="C", contact_url=cons.url, identifiers=["email_sha256"], credential="ct",
                             consumer={"transport": "push"})
            job_id = api.share(audience_id=api.audience("aud")["id"], destination_id=c["id"],
                               destination_audience="D", mapping=MAPPING, mode="add")["last_job_id"]
            _wait(lambda: cons.requests_to("POST"), 30, "the delivery to start")
            # and a request in flight: an upload whose body never finishes arriving
            u = api.register(name="U", contact_url="http://u.example", producer={"transport": "push"},
                             identifiers=["email"])
            slow = socket.create_connection(("127.0.0.1", server.port))
            slow.sendall(b"PUT /v1/endpoints/" + u["id"].encode() + b"/audiences/a/data HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + api.token.encode() + b"\r\nContent-Type: text/csv\r\n"
                         b"Content-Length: 100000\r\n\r\nemail\n")
            assert api.job(job_id)["state"] == "delivering"
            started = time.monotonic()
            os.killpg(pgid, signal.SIGTERM)
            time.sleep(0.5)
            slow.setblocking(False)
            try:
                answered = slow.recv(1)
            except BlockingIOError:
                answered = b""
            assert answered == b"", "the upload should still be waiting for its body"
            _wait(lambda: server.proc.poll() is not None and not _group_alive(pgid), 10,
                  "every process of the group to exit")
            took = time.monotonic() - started
            slow.close()
        server.proc.wait(timeout=1)
        log = server.log()
        assert "Traceback" not in log and "AssertionError" not in log, log[-3000:]
        assert took <= 10, took
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        server.proc = None


def test_busy_port_fails_fast_with_one_line(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    server = ExchangeServer(tmp_path / "var")
    server.cli("db", "upgrade")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "exchange.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                         cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=30,
                         start_new_session=True)
    took = time.monotonic() - started
    taken.close()
    assert out.returncode != 0
    assert took < 10, took
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot listen on 127.0.0.1:" in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
