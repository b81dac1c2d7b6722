"""The committed OpenAPI document is exactly what the app generates (``make openapi``)."""
from __future__ import annotations

from pathlib import Path

from exchange.openapi import generate

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_app():
    assert COMMITTED.exists(), "run `make openapi`"
    assert COMMITTED.read_text() == generate(), "openapi/openapi.json drifted from the app: run `make openapi`"
