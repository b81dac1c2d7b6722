"""Destination: one answer to "what can this destination take" for share validation and for delivery."""
from __future__ import annotations

from datetime import timedelta

import pytest

from exchange.adapters.registry import get_adapter
from exchange.jobs.destination import Destination
from exchange.models import Endpoint


def _endpoint(**fields) -> Endpoint:
    values = {"name": "c", "consumer_transport": "push", "identifiers": ["email_sha256"], "attributes": [],
              "replace_native": True, "max_rows_per_request": 500, "consumer_gzip": False,
              "ack_timeout_seconds": None, "adapter_type": None}
    values.update(fields)
    return Endpoint(**values)


def test_a_push_consumer():
    d = Destination.of(_endpoint(consumer_gzip=True, attributes=["tier"]))
    assert (d.kind, d.batch_size, d.gzip) == ("push", 500, True)
    assert d.identifiers == ("email_sha256",) and d.attributes == ("tier",)
    assert d.can_replace and d.can_remove and d.native_modes == {"add", "remove", "replace"}


def test_any_attribute_when_none_is_listed():
    assert Destination.of(_endpoint()).attributes is None


def test_an_adapter_declares_its_capabilities():
    cls = get_adapter("equativ")
    d = Destination.of(_endpoint(adapter_type="equativ", consumer_transport=None, identifiers=[]))
    assert d.kind == "adapter" and d.identifiers == tuple(cls.identifiers)
    assert (d.batch_size, d.rate_limit, d.requires_snapshot) == (cls.batch_size, cls.rate_limit, cls.requires_snapshot)
    assert d.attributes is None and d.native_modes == frozenset(cls.native_modes)


@pytest.mark.parametrize(("fields", "mode", "delta", "expected"), [
    ({}, "add", False, False),
    ({}, "add", True, True),  # a delta always diffs against a snapshot
    ({}, "replace", False, False),  # a native replace needs none
    ({"replace_native": False}, "replace", False, True),  # replace = adds + removes from the snapshot
    ({"replace_native": False, "consumer_transport": "pull"}, "replace", False, False),  # a file to download
    ({"replace_native": False}, "remove", False, False),
    ({"adapter_type": "batch", "consumer_transport": None}, "add", False, True),  # partners keep one always
])
def test_when_a_share_keeps_a_snapshot(fields, mode, delta, expected):
    assert Destination.of(_endpoint(**fields)).needs_snapshot(mode=mode, delta=delta) is expected


def test_the_acknowledgement_deadline():
    assert Destination.of(_endpoint(ack_timeout_seconds=60)).ack_deadline(86400) == timedelta(seconds=60)
    assert Destination.of(_endpoint()).ack_deadline(86400) == timedelta(days=1)
