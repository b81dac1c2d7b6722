"""``make run PORT=… HOST=…`` as the README's first block says: banner first, quiet terminal, Ctrl-C
stops everything within seconds and without a traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from tests.docs.blocks import free_ports, scratch_clone

pytestmark = pytest.mark.slow


def test_make_run_honours_port_prints_banner_first_and_stops_on_ctrl_c(tmp_path):
    clone = scratch_clone(tmp_path / "clone")
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "MAKE"))}
    proc = subprocess.Popen(["make", "--no-print-directory", "run", f"PORT={port}", "HOST=127.0.0.1"], cwd=clone,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "press Ctrl-C" in line or time.monotonic() > deadline:
                break
        output = "\n".join(lines)
        assert "press Ctrl-C" in output, output
        demo_lines = [x for x in lines if not x.startswith((".venv/bin/", "make", "database at"))]
        assert demo_lines[0].startswith("Audience Exchange demo: starting on "), output
        assert f"http://127.0.0.1:{port}/" in demo_lines[0]
        assert not [x for x in lines if '"GET /' in x or '"POST /' in x], "access log lines reached the terminal"
        assert ".venv/bin/exchange-toolkit --url" in output  # a command that works without activating the venv
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert (clone / "var" / "demo" / "access.log").read_text().count("HTTP/1.1") > 5

        stop = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = proc.communicate(timeout=60)
        elapsed = time.monotonic() - stop
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
    assert "stopped" in rest
    assert elapsed < 45, f"Ctrl-C took {elapsed:.1f} s"  # ~5 s on an idle 2-core machine; workers are niced
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_make_run_on_a_busy_port_is_a_one_line_error(tmp_path):
    import socket

    clone = scratch_clone(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "MAKE"))}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(["make", "--no-print-directory", "run", f"PORT={port}"], cwd=clone, env=env,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"], result.stderr
