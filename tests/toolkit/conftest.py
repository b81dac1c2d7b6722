"""Fixtures for the toolkit tests: reference endpoints on loopback and an authorised HTTP session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exchange.toolkit import ReferenceEndpoint
from tests.fakes.protocol_endpoint import ProtocolEndpoint

TOKEN = "s3cret-token"


@pytest.fixture
def producer_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "producer"
    folder.mkdir()
    return folder


@pytest.fixture
def consumer_dir(tmp_path: Path) -> Path:
    return tmp_path / "consumer"


@pytest.fixture
def endpoint(producer_dir: Path, consumer_dir: Path) -> Iterator[ReferenceEndpoint]:
    with ReferenceEndpoint(producer_dir, consumer_dir, credential=TOKEN) as running:
        yield running


@pytest.fixture
def fake(producer_dir: Path, consumer_dir: Path) -> Iterator[ProtocolEndpoint]:
    with ProtocolEndpoint(producer_dir, consumer_dir, credential=TOKEN) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session
