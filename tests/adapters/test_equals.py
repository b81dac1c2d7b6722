"""Equals specifics: identify payloads, the snake_cased trait, first sync then changes, dedupe."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange.adapters.equals import EqualsAdapter, snake_case
from exchange.errors import InvalidCredentials, PermanentTransferError
from tests.adapters.conftest import Harness, make_harness


@pytest.fixture
def h() -> Iterator[Harness]:
    yield from make_harness("equals")


@pytest.mark.parametrize(("name", "trait"), [
    ("Order Completed Last 30days", "order_completed_last_30days"),
    ("order_completed_last_30days", "order_completed_last_30days"),
    ("loyalCustomers", "loyal_customers"),
    ("  VIP -- 2024 ", "vip_2024"),
])
def test_snake_case(name, trait):
    assert snake_case(name) == trait


def test_identify_payloads_true_then_false(h: Harness):
    h.deliver(adds=h.rows(0, 1), removes=h.rows(0, 1))
    enter, leave = (r.json for r in h.fake.requests)
    assert enter["type"] == "identify" and enter["userId"] == "cust-0000000"
    assert enter["traits"] == {"loyal_customers": True, "email": "user0@example.com"}
    assert leave["traits"] == {"loyal_customers": False, "email": "user0@example.com"}
    assert enter["messageId"] != leave["messageId"] and enter["timestamp"].endswith("Z")
    assert h.fake.users["cust-0000000"]["loyal_customers"] is False


def test_first_sync_everyone_then_only_changes(h: Harness):
    h.deliver(adds=h.rows(0, 10))
    assert len(h.fake.requests) == 10
    # Later syncs: the caller passes only membership changes computed from the snapshot.
    h.deliver(h.adapter(context=h.adapter().context), adds=h.rows(10, 11), removes=h.rows(0, 2))
    assert len(h.fake.requests) == 13
    assert h.members() == h.keys(h.rows(2, 11))


def test_message_ids_are_stable_so_retries_are_deduplicated(h: Harness):
    h.deliver(adds=h.rows(0, 3))
    h.deliver(adds=h.rows(0, 3))  # the same job redone, e.g. after a crash
    assert h.fake.duplicates == 3


def test_wrong_url_names_the_url_setting(h: Harness):
    with pytest.raises(InvalidCredentials) as err:
        h.deliver(h.adapter(h.kit.bad_settings(h.fake)), adds=h.rows(0, 1))
    assert err.value.setting == "url" and "wrong-url-token" not in str(err.value)


def test_url_setting_must_be_a_url():
    with pytest.raises(Exception, match="adapter.settings.url|Invalid"):
        EqualsAdapter.load_settings({"url": "not a url"})


class NoMessageId(EqualsAdapter):
    """Deliberately wrong: drops ``messageId``."""

    def _identify(self, op, row):
        payload = super()._identify(op, row)
        del payload["messageId"]
        return payload


def test_fake_rejects_identify_without_message_id(h: Harness):
    with pytest.raises(PermanentTransferError, match="messageId"):
        h.deliver(h.adapter(cls=NoMessageId), adds=h.rows(0, 1))
    assert h.fake.users == {}
