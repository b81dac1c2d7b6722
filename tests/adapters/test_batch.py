"""Batch specifics: audience keyed by a derived name, creation body, attributes, tags, read-back."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange.adapters.base import SegmentContext
from exchange.adapters.batch import BatchAdapter, audience_name
from exchange.errors import PermanentTransferError, ValidationFailed
from tests.adapters.conftest import Harness, make_harness


@pytest.fixture
def h() -> Iterator[Harness]:
    yield from make_harness("batch")


@pytest.mark.parametrize(("segment_name", "expected"), [
    ("Loyal customers", "Loyal_customers"),
    ("VIP / été 2024!", "VIP_t_2024"),
    ("x" * 300, "x" * 255),
    ("***", "audience_aud7"),
])
def test_audience_name_is_derived_within_batch_rules(segment_name, expected):
    assert audience_name(segment_name, "audience_aud7") == expected


def test_audience_created_with_seed_description_and_warning(h: Harness):
    h.deliver(adds=h.rows(0, 2))
    create = next(r for r in h.fake.requests if r.method == "POST")
    assert create.path == f"/1.1/{h.fake.api_key}/custom-audience/Loyal_customers"
    assert create.json == {"type": "custom_ids", "description": "acct42_aud7_Loyal customers"}
    assert create.headers["X-Authorization"] == h.fake.rest_api_key
    assert any("renaming this destination audience starts a new Batch audience" in e for e in h.events)
    assert any("derived from 'Loyal customers'" in e for e in h.events)


def test_existing_audience_is_reused_not_recreated(h: Harness):
    h.deliver(adds=h.rows(0, 2))
    h.deliver(adds=h.rows(2, 3))
    assert sum(r.method == "POST" for r in h.fake.requests) == 1
    assert h.members() == h.keys(h.rows(0, 3))


def test_attributes_tags_and_removal_payloads(h: Harness):
    h.deliver(adds=h.rows(0, 1), removes=h.rows(0, 1))
    patches = [r.json for r in h.fake.requests if r.method == "PATCH"]
    assert patches == [
        {"ids": [{"action": "add", "id": "cust-0000000", "attributes": {"country": "FR"},
                  "tags": ["vip", "newsletter"]}]},
        {"ids": [{"action": "remove", "id": "cust-0000000"}]},
    ]


def test_nb_ids_and_indexing_state_are_read_back(h: Harness):
    h.deliver(adds=h.rows(0, 7))
    assert "Batch audience 'Loyal_customers': nb_ids=7, indexing_state=APPLIED" in h.events
    read_back = [r for r in h.fake.requests if r.method == "GET" and "indexing_token" in r.query]
    assert len(read_back) == 1


def test_renamed_destination_audience_is_a_new_batch_audience(h: Harness):
    h.deliver(adds=h.rows(0, 2))
    renamed = SegmentContext("acct42", "aud7", "Loyal customers v2", "job-2")
    h.deliver(h.adapter(context=renamed), adds=h.rows(2, 3))
    assert set(h.fake.audiences) == {"Loyal_customers", "Loyal_customers_v2"}


def test_settings_validation():
    with pytest.raises(ValidationFailed) as err:
        BatchAdapter.load_settings({"api_key": "k", "rest_api_key": "r", "custom_user_id": "c",
                                    "attributes": {"bad name!": "x"}})
    assert "adapter.settings.attributes" in err.value.errors
    loaded = BatchAdapter.load_settings({"api_key": "k", "rest_api_key": "r", "custom_user_id": "c",
                                         "tags": ["a", "b"], "audience_type": "install_ids"})
    assert loaded["tags"] == ["a", "b"] and loaded["audience_type"] == "install_ids"


class NoAction(BatchAdapter):
    """Deliberately wrong: drops ``action`` from every PATCH element."""

    def request(self, method, url, **kwargs):
        if method == "PATCH":
            kwargs["json"] = {"ids": [{k: v for k, v in i.items() if k != "action"} for i in kwargs["json"]["ids"]]}
        return super().request(method, url, **kwargs)


def test_fake_rejects_ids_without_action(h: Harness):
    with pytest.raises(PermanentTransferError, match="missing field 'action'"):
        h.deliver(h.adapter(cls=NoAction), adds=h.rows(0, 2))
    assert h.members() == set()
