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


# -- pacing to the platform's limit, settings whose defaults follow the seed, hosts per role ------

def _profile_requests(h: Harness):
    return [r for r in h.fake.requests if r.path.endswith("/profiles")]


def test_profiles_are_paced_to_1000_per_second(h: Harness):
    report = h.deliver(adds=h.rows(0, 5000))
    batches = _profile_requests(h)
    assert [len(r.json) for r in batches] == [999] * 5 + [5]
    # Arrival times on the shared virtual clock: one 999-profile request every 0.999 s at most.
    gaps = [b.at - a.at for a, b in zip(batches, batches[1:], strict=False)]
    assert all(gap >= 0.999 - 1e-9 for gap in gaps), gaps
    profiles_per_second = sum(len(r.json) for r in batches[:-1]) / (batches[-1].at - batches[0].at)
    assert 990 <= profiles_per_second <= 1000
    assert h.fake.throttled == 0 and report.waited_seconds == 0


class OldPacing(EquativAdapter):
    """What this adapter did before: 999 profiles per request at 10 requests/s (~10,000/s)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate_limit = 10.0


def test_fake_refuses_the_old_pace_with_429s(h: Harness):
    report = h.deliver(h.adapter(cls=OldPacing), adds=h.rows(0, 3000))
    assert h.fake.throttled >= 2  # the fake's 1,000 profiles/s bucket refused the bursts
    assert report.waited_seconds > 0 and any(e.startswith("waiting for rate limit") for e in h.events)
    refused = [r for r in _profile_requests(h) if r.status == 429]
    assert refused and all(r.status == 429 for r in refused)
    assert len(h.members()) == 3000  # waited out, then delivered


def test_pace_follows_the_settings(h: Harness):
    settings = {**h.kit.good_settings(h.fake), "profiles_per_second": 500, "profiles_per_request": 250}
    adapter = h.adapter(settings)
    assert (adapter.batch_size, adapter.rate_limit) == (250, 2.0)
    h.deliver(adapter, adds=h.rows(0, 1000))
    assert h.fake.throttled == 0 and len(h.members()) == 1000


def test_removal_field_setting():
    for h in make_harness("equativ", remove_field="segmentIdsToUnset"):
        settings = {**h.kit.good_settings(h.fake), "remove_field": "segmentIdsToUnset"}
        h.deliver(h.adapter(settings), adds=h.rows(0, 2), removes=h.rows(0, 1))
        assert _profile_requests(h)[-1].json == [{"profileId": "eqv-user-0000000",
                                                   "segmentIdsToUnset": ["ca_acct42_aud7"]}]
        assert h.members() == {"eqv-user-0000001"}
        # the default field is refused by a platform expecting another one
        with pytest.raises(PermanentTransferError, match="segmentIdsToRemove"):
            h.deliver(h.adapter(), removes=h.rows(1, 2))


def test_integer_segment_ids_setting():
    for h in make_harness("equativ", segment_id_type="integer"):
        settings = {**h.kit.good_settings(h.fake), "segment_id_type": "integer"}
        h.deliver(h.adapter(settings), adds=h.rows(0, 2))
        h.deliver(h.adapter(settings), removes=h.rows(0, 1))  # the segment exists: id read back
        numeric = h.fake.segments["ca_acct42_aud7"]["id"]
        assert _profile_requests(h)[0].json[0]["segmentIdsToSet"] == [numeric]
        assert h.members() == {"eqv-user-0000001"}
        with pytest.raises(PermanentTransferError, match="list of integers"):
            h.deliver(h.adapter(), adds=h.rows(5, 6))  # the seed's string id on this platform


def test_hosts_by_role_region_defaults_and_overrides(h: Harness):
    from exchange.adapters.equativ import DMP_URLS

    base = {**h.kit.good_settings(h.fake)}
    adapter = EquativAdapter({**base, "region": "na"}, CONTEXT, h.session)
    assert adapter.host("profiles") == DMP_URLS["na"] and adapter.host("auth") == "https://auth.smartadserverapis.com"
    sandbox = EquativAdapter({**base, "region": "eu-sandbox", "hosts": {"segments": "https://proxy.example/seg/"}},
                             CONTEXT, h.session, base_url={"auth": "https://auth.proxy.example"})
    assert sandbox.host("profiles") == DMP_URLS["eu-sandbox"]
    assert sandbox.host("segments") == "https://proxy.example/seg"
    assert sandbox.host("auth") == "https://auth.proxy.example"


def test_three_hosts_really_used():
    from tests.fakes.partners.equativ import FakeEquativ

    auth, segments, profiles = (FakeEquativ().start() for _ in range(3))
    try:
        for other in (segments, profiles):  # one platform behind three hosts
            other.tokens, other.segments, other.numeric_ids, other.members = (
                auth.tokens, auth.segments, auth.numeric_ids, auth.members)
        import requests as http

        from exchange.adapters.driver import deliver

        settings = {"client_id": auth.client_id, "client_secret": auth.client_secret,
                    "segment_provider_id": auth.provider_id,
                    "hosts": {"auth": auth.url, "segments": segments.url, "profiles": profiles.url}}
        with http.Session() as session:
            deliver(EquativAdapter(settings, CONTEXT, session), adds=[{"cookie_id": "u1"}], removes=(),
                    on_event=lambda e: None)
        assert {r.path for r in auth.requests} == {"/oauth/token"}
        assert {r.path for r in segments.requests} == {"/segmentproviders/4242/segments"}
        assert {r.path for r in profiles.requests} == {"/segmentproviders/4242/profiles"}
    finally:
        for fake in (auth, segments, profiles):
            fake.stop()
