"""Equativ specifics: the seed's segment body, idempotent creation, tokens, removal shape."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange.adapters.equativ import EquativAdapter
from exchange.errors import InvalidCredentials, PermanentTransferError
from tests.adapters.conftest import Harness, make_harness
from tests.fakes.partners import CONTEXT


@pytest.fixture
def h() -> Iterator[Harness]:
    yield from make_harness("equativ")


def test_segment_created_once_with_the_seed_fields(h: Harness):
    h.deliver(adds=h.rows(0, 3))
    h.deliver(adds=h.rows(3, 5))
    creates = [r for r in h.fake.requests if r.path.endswith("/segments")]
    assert creates[0].json == {
        "active": True, "description": "Loyal customers", "name": "Loyal customers", "price": 0,
        "segmentId": "ca_acct42_aud7", "selectable": True, "ttl": 2147483646,
    }
    assert [r.status for r in creates] == [201, 409]  # the second run reuses the segment
    assert list(h.fake.segments) == ["ca_acct42_aud7"]
    assert any("already exists" in e for e in h.events)


def test_profiles_payload_and_removal_shape(h: Harness):
    h.deliver(adds=h.rows(0, 2), removes=h.rows(0, 1))
    batches = [r.json for r in h.fake.requests if r.path.endswith("/profiles")]
    assert batches == [
        [{"profileId": "eqv-user-0000000", "segmentIdsToSet": ["ca_acct42_aud7"]},
         {"profileId": "eqv-user-0000001", "segmentIdsToSet": ["ca_acct42_aud7"]}],
        [{"profileId": "eqv-user-0000000", "segmentIdsToRemove": ["ca_acct42_aud7"]}],
    ]
    assert h.members() == {"eqv-user-0000001"}


def test_one_token_for_the_whole_delivery_and_renewed_when_refused(h: Harness):
    adapter = h.adapter()
    h.deliver(adapter, adds=h.rows(0, 2500))
    assert sum(r.path == "/oauth/token" for r in h.fake.requests) == 1
    h.fake.tokens.clear()  # Equativ revoked or expired the token early
    h.deliver(adapter, adds=h.rows(2500, 2501))
    assert sum(r.path == "/oauth/token" for r in h.fake.requests) == 2
    assert "eqv-user-0002500" in h.members()


def test_token_request_is_a_client_credentials_form(h: Harness):
    h.adapter().check()
    form = h.fake.requests[0]
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"grant_type=client_credentials" in form.body


def test_wrong_segment_provider_names_that_setting(h: Harness):
    settings = {**h.kit.good_settings(h.fake), "segment_provider_id": "1"}
    with pytest.raises(InvalidCredentials) as err:
        h.deliver(h.adapter(settings), adds=h.rows(0, 1))
    assert err.value.setting == "segment_provider_id"


def test_sandbox_region_and_profile_column_settings():
    loaded = EquativAdapter.load_settings(
        {"client_id": "a", "client_secret": "b", "segment_provider_id": "1", "region": "eu-sandbox",
         "profile_id_column": "maid"})
    assert loaded["region"] == "eu-sandbox" and loaded["profile_id_column"] == "maid"


class MissingTtl(EquativAdapter):
    """Deliberately wrong: drops the required ``ttl`` from the segment body."""

    def request(self, method, url, **kwargs):
        if url.endswith("/segments"):
            kwargs["json"] = {k: v for k, v in kwargs["json"].items() if k != "ttl"}
        return super().request(method, url, **kwargs)


def test_fake_rejects_a_segment_without_ttl(h: Harness):
    with pytest.raises(PermanentTransferError, match="missing field 'ttl'"):
        h.deliver(h.adapter(cls=MissingTtl), adds=h.rows(0, 1))
    assert h.fake.segments == {}


def test_fake_rejects_oversized_batches(h: Harness):
    class Greedy(EquativAdapter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.batch_size = 1001

    with pytest.raises(PermanentTransferError, match="at most 1000 profiles"):
        h.deliver(h.adapter(cls=Greedy), adds=h.rows(0, 1001))
    assert h.members(CONTEXT) == set()
