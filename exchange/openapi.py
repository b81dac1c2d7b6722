"""Generate the OpenAPI document from the app, deterministically (sorted keys, fixed server)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .app import create_app
from .config import Config


def generate() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config.from_env({}, var_dir=Path(tmp), testing=True, scheduler=False)
        app = create_app(cfg)
        with app.test_request_context():
            spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
        app.extensions["exchange"].shutdown()
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"
