"""The ``exchange`` command line, run as a real subprocess against a temp database."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def _run(tmp_path, *args, check=True):
    env = {**os.environ, "EXCHANGE_VAR_DIR": str(tmp_path / "var"), "EXCHANGE_SECRET_KEY": "k"}
    return subprocess.run([sys.executable, "-m", "exchange.cli", *args], env=env, capture_output=True,
                          text=True, check=check, timeout=120)


def test_upgrade_create_account_and_use_key(tmp_path):
    _run(tmp_path, "db", "upgrade")
    out = _run(tmp_path, "accounts", "create", "Acme", "--json").stdout
    data = json.loads(out)
    assert set(data) == {"account_id", "api_key"}
    from exchange.app import create_app
    from exchange.config import Config

    cfg = Config.from_env({"EXCHANGE_VAR_DIR": str(tmp_path / "var"), "EXCHANGE_SECRET_KEY": "k"},
                          scheduler=False)
    app = create_app(cfg)
    r = app.test_client().get("/v1/endpoints", headers={"Authorization": f"Bearer {data['api_key']}"})
    assert r.status_code == 200
    app.extensions["exchange"].shutdown()


def test_create_account_bad_name(tmp_path):
    _run(tmp_path, "db", "upgrade")
    r = _run(tmp_path, "accounts", "create", "   ", check=False)
    assert r.returncode == 2 and "NAME" in r.stderr


def test_human_output_shows_key_once(tmp_path):
    _run(tmp_path, "db", "upgrade")
    out = _run(tmp_path, "accounts", "create", "Acme").stdout
    assert "API key (shown once): aex_" in out
