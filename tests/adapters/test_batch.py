"""Batch specifics: the 2.x Audience API by default, 1.0 as a setting, 1.1 refused for custom ids.

Facts checked here come from doc.batch.com (developer/api/cep/audiences/{create,update,view,list},
api/custom-audience/1.0/*, …/1.1/*) as summarised in ../shared/partners/batch.md and
docs/adapters/batch.md.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from exchange.adapters.base import SegmentContext
from exchange.adapters.batch import BatchAdapter, audience_name
from exchange.errors import InvalidCredentials, PermanentTransferError, ValidationFailed
from tests.adapters.conftest import Harness, make_harness


@pytest.fixture
def h() -> Iterator[Harness]:
    yield from make_harness("batch")


def v10(h: Harness) -> dict:
    return {"api_key": h.fake.api_key, "rest_api_key": h.fake.rest_api_key, "custom_user_id": "customer_id",
            "attributes": {"country": "country"}, "tags": "vip"}


@pytest.mark.parametrize(("segment_name", "expected"), [
    ("Loyal customers", "Loyal_customers"),
    ("VIP / été 2024!", "VIP_t_2024"),
    ("x" * 300, "x" * 255),
    ("***", "audience_aud7"),
])
def test_audience_name_is_derived_within_batch_rules(segment_name, expected):
    assert audience_name(segment_name, "audience_aud7") == expected


def test_v2_audience_created_with_seed_description_and_headers(h: Harness):
    h.deliver(adds=h.rows(0, 2))
    create = next(r for r in h.fake.requests if r.method == "POST")
    assert create.path == "/2.8/audiences/create"
    assert create.json == {"name": "Loyal_customers", "display_name": "acct42_aud7_Loyal customers",
                           "type": "custom_ids"}
    assert create.headers["Authorization"] == f"Bearer {h.fake.rest_api_key}"
    assert create.headers["X-Batch-Project"] == h.fake.project_key
    assert "X-Authorization" not in create.headers
    assert any("renaming this destination audience starts a new Batch audience" in e for e in h.events)
    assert any("derived from 'Loyal customers'" in e for e in h.events)
    assert "Batch route: 2.x" in h.events


def test_existing_audience_is_reused_not_recreated(h: Harness):
    h.deliver(adds=h.rows(0, 2))
    h.deliver(adds=h.rows(2, 3))
    assert sum(r.path.endswith("/create") for r in h.fake.requests) == 1
    assert h.members() == h.keys(h.rows(0, 3))


def test_v2_update_payloads_attributes_and_tags(h: Harness):
    h.deliver(adds=h.rows(0, 1), removes=h.rows(0, 1))
    updates = [r.json for r in h.fake.requests if r.path.endswith("/audiences/update")]
    assert updates == [
        {"name": "Loyal_customers", "ids": [{"action": "add", "id": "cust-0000000",
                                             "attributes": {"country": "FR", "tags": ["vip", "newsletter"]}}]},
        {"name": "Loyal_customers", "ids": [{"action": "remove", "id": "cust-0000000"}]},
    ]


def test_nb_ids_and_indexing_state_are_read_back(h: Harness):
    h.deliver(adds=h.rows(0, 7))
    assert "Batch audience 'Loyal_customers': nb_ids=7, indexing_state=APPLIED" in h.events
    read_back = [r for r in h.fake.requests if r.path.endswith("/audiences/view") and "indexing_token" in r.query]
    assert len(read_back) == 1 and read_back[0].query["name"] == "Loyal_customers"


def test_renamed_destination_audience_is_a_new_batch_audience(h: Harness):
    h.deliver(adds=h.rows(0, 2))
    renamed = SegmentContext("acct42", "aud7", "Loyal customers v2", "job-2")
    h.deliver(h.adapter(context=renamed), adds=h.rows(2, 3))
    assert set(h.fake.audiences) == {"Loyal_customers", "Loyal_customers_v2"}


def test_v10_route_for_custom_ids_with_the_seeds_app_key(h: Harness):
    adapter = h.adapter(v10(h))
    assert adapter.route == "1.0"  # auto: no project key, so the documented custom-id route 1.0
    h.deliver(adapter, adds=h.rows(0, 3), removes=h.rows(0, 1))
    create = next(r for r in h.fake.requests if r.method == "POST")
    assert create.path == f"/1.0/{h.fake.api_key}/custom-audience/Loyal_customers"
    assert create.json == {"type": "custom_ids", "description": "acct42_aud7_Loyal customers"}
    assert create.headers["X-Authorization"] == h.fake.rest_api_key
    patches = [r.json for r in h.fake.requests if r.method == "PATCH"]
    assert patches[1] == {"type": "custom_ids", "ids": [{"action": "remove", "id": "cust-0000000"}]}
    assert all("attributes" not in i for p in patches for i in p["ids"])  # 1.0 documents none
    assert any("takes no attributes or tags" in e for e in h.events)
    assert h.members() == h.keys(h.rows(1, 3))
    assert "Batch audience 'Loyal_customers': nb_ids=2, indexing_state=APPLIED" in h.events


class OldBatch(BatchAdapter):
    """What this adapter sent before: custom user ids to the /1.1/ custom-audience route."""

    @property
    def route(self) -> str:
        return "1.1"


def test_fake_refuses_custom_ids_on_1_1_as_the_old_adapter_sent_them(h: Harness):
    with pytest.raises(PermanentTransferError, match="only accepts install IDs"):
        h.deliver(h.adapter(v10(h), cls=OldBatch), adds=h.rows(0, 2))
    assert h.fake.audiences == {} and h.members() == set()
    # …and an audience of custom ids created through 1.0 cannot be patched through 1.1 either.
    h.deliver(h.adapter(v10(h)), adds=h.rows(0, 1))
    url = f"{h.fake.url}/1.1/{h.fake.api_key}/custom-audience/Loyal_customers"
    answer = requests.patch(url, json={"ids": [{"action": "add", "id": "cust-9"}]},
                            headers={"X-Authorization": h.fake.rest_api_key}, timeout=5)
    assert answer.status_code == 400 and "install IDs" in answer.json()["message"]
    assert h.members() == {"cust-0000000"}


def test_v11_stays_available_for_install_ids(h: Harness):
    settings = {**v10(h), "audience_type": "install_ids"}
    adapter = h.adapter(settings)
    assert adapter.route == "1.1"
    h.deliver(adapter, adds=h.rows(0, 2))
    assert h.fake.api_of["Loyal_customers"] == "1.1" and h.members() == h.keys(h.rows(0, 2))


@pytest.mark.parametrize(("change", "field"), [
    ({"route": "2.x", "project_key": None}, "project_key"),
    ({"route": "1.1", "api_key": "APPKEY1"}, "route"),
    ({"project_key": None, "api_key": None}, "api_key"),
    ({"attributes": {f"a{i}": "country" for i in range(15)}}, "attributes"),  # 15 + tags > 15
    ({"route": "2.x", "audience_type": "install_ids"}, "audience_type"),
])
def test_bad_route_settings_fail_fast_naming_the_setting(h: Harness, change, field):
    settings = {**h.kit.good_settings(h.fake), **change}
    settings = {k: v for k, v in settings.items() if v is not None}
    with pytest.raises(ValidationFailed) as err:
        BatchAdapter.load_settings(settings)
    assert list(err.value.errors) == [f"adapter.settings.{field}"]


def test_settings_validation():
    with pytest.raises(ValidationFailed) as err:
        BatchAdapter.load_settings({"project_key": "p", "rest_api_key": "r", "custom_user_id": "c",
                                    "attributes": {"bad name!": "x"}})
    assert "adapter.settings.attributes" in err.value.errors
    loaded = BatchAdapter.load_settings({"api_key": "k", "rest_api_key": "r", "custom_user_id": "c",
                                         "tags": ["a", "b"], "audience_type": "install_ids"})
    assert loaded["tags"] == ["a", "b"] and loaded["audience_type"] == "install_ids"


def test_wrong_project_key_is_refused(h: Harness):
    settings = {**h.kit.good_settings(h.fake), "project_key": "project_wrong"}
    with pytest.raises(InvalidCredentials):
        h.adapter(settings).check()


class NoAction(BatchAdapter):
    """Deliberately wrong: drops ``action`` from every update element."""

    def request(self, method, url, **kwargs):
        if url.endswith("/audiences/update"):
            body = kwargs["json"]
            kwargs["json"] = {**body, "ids": [{k: v for k, v in i.items() if k != "action"} for i in body["ids"]]}
        return super().request(method, url, **kwargs)


def test_fake_rejects_ids_without_action(h: Harness):
    with pytest.raises(PermanentTransferError, match="missing field 'action'"):
        h.deliver(h.adapter(cls=NoAction), adds=h.rows(0, 2))
    assert h.members() == set()


@pytest.mark.parametrize(("body", "reason"), [
    ({"ids": [{"action": "add", "id": "x", "tags": ["vip"]}]}, "unknown fields ['tags']"),
    ({"ids": [{"action": "remove", "id": "x", "attributes": {"a": 1}}]}, "only accepted for the add action"),
    ({"ids": [{"action": "add", "id": "x", "attributes": {f"a{i}": i for i in range(16)}}]}, "at most 15"),
    ({"ids": [{"action": "add", "id": str(i)} for i in range(10_001)]}, "between 1 and 10000"),
])
def test_v2_fake_enforces_documented_update_body(h: Harness, body, reason):
    h.deliver(adds=h.rows(0, 1))
    headers = {"Authorization": f"Bearer {h.fake.rest_api_key}", "X-Batch-Project": h.fake.project_key}
    answer = requests.post(f"{h.fake.url}/2.8/audiences/update", json={"name": "Loyal_customers", **body},
                           headers=headers, timeout=10)
    assert answer.status_code == 400 and reason in answer.json()["error_message"]
    assert h.members() == {"cust-0000000"}


def test_v2_list_is_paginated_with_a_cursor(h: Harness):
    for i in range(3):
        h.deliver(h.adapter(context=SegmentContext("acct42", f"aud{i}", f"Audience {i}", "j")), adds=h.rows(0, 1))
    headers = {"Authorization": f"Bearer {h.fake.rest_api_key}", "X-Batch-Project": h.fake.project_key}
    first = requests.get(f"{h.fake.url}/2.8/audiences/list", params={"limit": 2}, headers=headers, timeout=5).json()
    assert first["count"] == 3 and first["has_more"] and len(first["audiences"]) == 2
    second = requests.get(f"{h.fake.url}/2.8/audiences/list", params={"limit": 2, "from": first["next_from"]},
                          headers=headers, timeout=5).json()
    assert "count" not in second and not second["has_more"] and len(second["audiences"]) == 1
    assert first["audiences"][0]["type"] == "CUSTOM_ID" and first["audiences"][0]["created"].endswith("Z")


def test_read_back_waits_for_indexing_then_reports():
    # Batch: "indexation of IDs is usually done in real time, we offer no guarantees" — a view
    # with the indexing token answers IN_PROGRESS until it is APPLIED.
    for h in make_harness("batch", in_progress_views=2):
        h.deliver(adds=h.rows(0, 4))
        assert "Batch audience 'Loyal_customers': nb_ids=4, indexing_state=APPLIED" in h.events
        views = [r for r in h.fake.requests if r.path.endswith("/view") and "indexing_token" in r.query]
        assert len(views) == 3
    for h in make_harness("batch", in_progress_views=9):
        h.deliver(h.adapter({**h.kit.good_settings(h.fake), "readback_polls": 1}), adds=h.rows(0, 1))
        assert "Batch audience 'Loyal_customers': nb_ids=1, indexing_state=IN_PROGRESS" in h.events
