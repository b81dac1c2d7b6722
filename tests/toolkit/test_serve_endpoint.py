"""serve_endpoint blocks serving until interrupted, and refuses a configuration with nothing to serve."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from exchange.errors import ConfigError
from exchange.toolkit import serve_endpoint

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("folders", [{}, {"producer_dir": "/nonexistent/folder"}])
def test_nothing_to_serve_is_a_config_error(folders: dict) -> None:
    with pytest.raises(ConfigError):
        serve_endpoint("127.0.0.1", 0, **folders)


def test_serves_until_interrupted(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "loyal.csv").write_text("email\na@x.com\n")
    port = free_port()
    code = (
        f"from exchange.toolkit import serve_endpoint; serve_endpoint('127.0.0.1', {port}, "
        f"producer_dir={str(tmp_path / 'p')!r}, consumer_dir={str(tmp_path / 'c')!r}, credential='t')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, "endpoint did not start"
                time.sleep(0.05)
        listing = requests.get(
            f"http://127.0.0.1:{port}/audiences", headers={"Authorization": "Bearer t"}, timeout=5
        )
        assert [a["id"] for a in listing.json()["audiences"]] == ["loyal"]
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
