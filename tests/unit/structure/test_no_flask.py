"""The job engine and the services import no Flask: a worker process runs them without the web app."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ["jobs", "shares", "catalog", "auth", "net", "blobs", "transfer", "adapters", "webhooks"]
MODULES = ["exchange.runtime", "exchange.endpoint_client", "exchange.metrics", "exchange.pagination"]
# werkzeug alone is allowed: auth/users.py hashes passwords with werkzeug.security, which loads no app
WEB = ("flask", "flask_smorest", "flask_cors", "jinja2")


def _engine_and_service_modules() -> list[str]:
    names = list(MODULES)
    for package in PACKAGES:
        for path in sorted((ROOT / "exchange" / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_importing_the_engine_and_the_services_loads_no_flask():
    modules = _engine_and_service_modules()
    assert "exchange.jobs.runner" in modules and "exchange.shares.service" in modules
    program = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {WEB!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_check_sees_flask_when_it_is_loaded():
    program = "import sys, exchange.app; print(sorted(m for m in sys.modules if m.startswith('flask')))"
    out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "flask" in out.stdout
