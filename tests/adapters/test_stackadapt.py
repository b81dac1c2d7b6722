"""StackAdapt specifics: the GraphQL document, enter/exit, userErrors as rejects, scopes."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
from graphql import parse
from graphql.utilities import value_from_ast_untyped

from exchange.adapters.stackadapt import StackAdaptAdapter, gql
from exchange.errors import InvalidCredentials, PermanentTransferError
from tests.adapters.conftest import Harness, make_harness


@pytest.fixture
def h() -> Iterator[Harness]:
    yield from make_harness("stackadapt")


def _mutations(record) -> dict[str, dict]:
    operation = parse(record.json["query"]).definitions[0]
    return {f.name.value: value_from_ast_untyped(f.arguments[0].value, {}) for f in operation.selection_set.selections}


def test_one_request_three_mutations_with_enter_profiles(h: Harness):
    h.deliver(adds=h.rows(0, 2))
    (record,) = [r for r in h.fake.requests]
    assert set(record.json) == {"query"}
    assert record.headers["Authorization"] == f"Bearer {h.fake.token}"
    mutations = _mutations(record)
    assert list(mutations) == ["upsertProfileMapping", "upsertProfiles", "upsertExternalAudienceMapping"]
    upsert = mutations["upsertProfiles"]
    assert upsert["advertiserId"] == 9001 and upsert["externalProvider"] == "segment_io"
    assert upsert["syncId"] == hashlib.sha256(upsert["profiles"].encode()).hexdigest()
    assert json.loads(upsert["profiles"])[0] == {
        "userId": "cust-0000000", "email": "user0@example.com", "first_name": "Ana",
        "audienceId": "aud7", "audienceName": "Loyal customers", "action": "enter"}
    mapping = mutations["upsertProfileMapping"]
    assert mapping["mappableType"] == "segment_io" and mapping["isOptedIn"] is False
    assert {"incomingKey": "email", "destinationKey": "email", "label": "Email", "type": "STRING",
            "isPii": True} in mapping["mappingSchemaV2"]


def test_members_leaving_are_exit_profiles_not_deletions(h: Harness):
    h.deliver(adds=h.rows(0, 3), removes=h.rows(0, 1))
    last = _mutations(h.fake.requests[-1])
    assert {p["action"] for p in json.loads(last["upsertProfiles"]["profiles"])} == {"exit"}
    assert "deleteProfilesWithExternalIds" not in h.fake.requests[-1].json["query"]
    assert h.members() == {"cust-0000001", "cust-0000002"}
    assert ("9001", "cust-0000000") in h.fake.profiles  # the person stays, only the membership ends


def test_email_required_before_sending(h: Harness):
    rows = [{"customer_id": "c1", "email": ""}, {"customer_id": "c2", "email": "nope"}, h.kit.row(3)]
    report = h.deliver(adds=rows)
    assert [reason for _, reason in report.rejected] == ["email is required", "email is not a valid address"]
    assert h.members() == {"cust-0000003"}


def test_user_errors_reject_only_the_rows_they_name(h: Harness):
    class NoPrefilter(StackAdaptAdapter):
        def prefilter(self, row):
            return None

    rows = [h.kit.row(0), {"customer_id": "c-bad", "email": "no-at-sign"}, h.kit.row(2)]
    report = h.deliver(h.adapter(cls=NoPrefilter), adds=rows)
    assert report.accepted == 2
    assert report.rejected == [(rows[1], "StackAdapt: email is required")]
    assert h.members() == {"cust-0000000", "cust-0000002"}


def test_retried_batch_is_deduplicated_by_sync_id(h: Harness):
    adapter = h.adapter()
    h.deliver(adapter, adds=h.rows(0, 2))
    h.deliver(adapter, adds=h.rows(0, 2))
    assert len(h.fake.sync_ids) == 1


def test_token_without_write_scope_fails_check():
    for h in make_harness("stackadapt", scopes=("READ",)):
        with pytest.raises(InvalidCredentials, match="WRITE") as err:
            h.adapter().check()
        assert err.value.setting == "graphql_token"


def test_foreign_advertiser_names_the_advertiser_setting(h: Harness):
    settings = {**h.kit.good_settings(h.fake), "advertiser_id": "1234"}
    with pytest.raises(InvalidCredentials) as err:
        h.deliver(h.adapter(settings), adds=h.rows(0, 1))
    assert err.value.setting == "advertiser_id"


def test_graphql_rendering_escapes_strings():
    assert gql({"a": 'say "hi"\n', "b": [1, True, None]}) == '{a: "say \\"hi\\"\\n", b: [1, true, null]}'


class QuotedEnums(StackAdaptAdapter):
    """Deliberately wrong: sends mapping types as strings ("STRING") instead of enum values."""

    def _post(self, query, what):
        return super()._post(query.replace("type: STRING", 'type: "STRING"'), what)


def test_fake_rejects_quoted_enum_types(h: Harness):
    with pytest.raises(PermanentTransferError, match="enum"):
        h.deliver(h.adapter(cls=QuotedEnums), adds=h.rows(0, 1))
    # An invalid document is refused whole: nothing was executed.
    assert h.members() == set() and h.fake.profile_mappings == []


# -- the contract, held against the published schema and Segment's own expected documents ------

# Segment's StackAdapt destination test "should translate identify Audience event into GQL format"
# (segmentio/action-destinations,
# packages/destination-actions/src/destinations/stackadapt-audiences/forwardAudienceEvent/__tests__/index.test.ts,
# at 970a17ee8d06, Aug 2026) expects this document, transcribed here as facts: mutation order,
# inputs, every mapping entry with label and isPii, enum types unquoted, advertiserId an integer.
SEGMENT_STANDARD = [
    ("email", "Email", "STRING", True), ("first_name", "First Name", "STRING", True),
    ("last_name", "Last Name", "STRING", True), ("phone", "Phone", "STRING", True),
    ("address", "Address", "STRING", True), ("city", "City", "STRING", False),
    ("state", "State", "STRING", False), ("country", "Country", "STRING", False),
    ("postal_code", "Postal Code", "STRING", False), ("timezone", "Timezone", "STRING", False),
    ("birth_date", "Birth Date", "DATE", True),
]
SEGMENT_CUSTOM = [("custom_trait_1", "Custom Trait 1", "STRING", False),
                  ("custom_trait_2", "Custom Trait 2", "STRING", False)]
SEGMENT_AUDIENCE_MAPPING = [
    {"incomingKey": "audienceId", "destinationKey": "external_id", "type": "STRING",
     "label": "External Audience ID", "isPii": False},
    {"incomingKey": "audienceName", "destinationKey": "name", "type": "STRING",
     "label": "External Audience Name", "isPii": False},
]
SEGMENT_PROFILE = {"userId": "user-id", "email": "test@email.com", "first_name": "Billy", "last_name": "Bob",
                   "phone": "1234567890", "address": "123 Main St", "city": "San Francisco", "country": "USA",
                   "state": "CA", "postal_code": "94105", "timezone": "PST", "birth_date": "1990-06-15",
                   "custom_trait_1": "custom_value_1", "custom_trait_2": "custom_value_2",
                   "audienceId": "aud_123", "audienceName": "first_time_buyer", "action": "exit"}


def _entry_literal(key, label, kind, pii):
    return (f'{{incomingKey:"{key}",destinationKey:"{key}",label:"{label}",type:{kind},'
            f'isPii:{"true" if pii else "false"}}}')


def segment_document(advertiser: str = "23") -> str:
    """Segment's expected document, in Segment's own layout (see the citation above)."""
    profiles = json.dumps([SEGMENT_PROFILE], separators=(",", ":"))
    mapping = "[" + ",".join(_entry_literal(*e) for e in SEGMENT_STANDARD + SEGMENT_CUSTOM) + "]"
    audience = ('[{incomingKey:"audienceId",destinationKey:"external_id",type:STRING,label:"External Audience ID",'
                'isPii:false},{incomingKey:"audienceName",destinationKey:"name",type:STRING,'
                'label:"External Audience Name",isPii:false}]')
    return f"""mutation {{
      upsertProfileMapping(input: {{ advertiserId: {advertiser}, mappingSchemaV2: {mapping}, isOptedIn: true,
                                    mappableType: "segment_io" }}) {{ userErrors {{ message }} }}
      upsertProfiles(input: {{ advertiserId: {advertiser}, externalProvider: "segment_io",
                              syncId: "{hashlib.sha256(profiles.encode()).hexdigest()}",
                              profiles: {json.dumps(profiles)} }}) {{ userErrors {{ message }} }}
      upsertExternalAudienceMapping(input: {{ advertiserId: {advertiser}, mappingSchema: {audience},
                                             mappableType: "segment_io" }}) {{ userErrors {{ message }} }}
    }}"""


def _post(h: Harness, query: str) -> dict:
    import requests

    answer = requests.post(f"{h.fake.url}/graphql", json={"query": query}, timeout=10,
                           headers={"Authorization": f"Bearer {h.fake.token}"})
    assert answer.status_code == 200
    return answer.json()


def test_fake_accepts_segments_expected_document():
    for h in make_harness("stackadapt", advertiser_id="23"):
        body = _post(h, segment_document())
        assert "errors" not in body, body
        assert body["data"] == {m: {"userErrors": []} for m in
                                ("upsertProfileMapping", "upsertProfiles", "upsertExternalAudienceMapping")}
        assert ("23", "user-id") in h.fake.profiles
        assert h.fake.audience_mappings[0]["mappingSchema"] == SEGMENT_AUDIENCE_MAPPING


def test_our_document_matches_segments_shape(h: Harness):
    row = {"customer_id": "user-id", **{k: v for k, v in SEGMENT_PROFILE.items()
                                       if k not in ("userId", "audienceId", "audienceName", "action")}}
    h.deliver(adds=[row])
    ours = _mutations(h.fake.requests[-1])
    segment = {f.name.value: value_from_ast_untyped(f.arguments[0].value, {})
               for f in parse(segment_document()).definitions[0].selection_set.selections}
    assert list(ours) == list(segment)  # same three mutations, same order
    for name in segment:
        assert set(ours[name]) == set(segment[name]), name  # same input fields
    expected_v2 = [{"incomingKey": k, "destinationKey": k, "label": label, "type": kind, "isPii": pii}
                   for k, label, kind, pii in SEGMENT_STANDARD + SEGMENT_CUSTOM]
    assert ours["upsertProfileMapping"]["mappingSchemaV2"] == expected_v2
    assert ours["upsertExternalAudienceMapping"]["mappingSchema"] == SEGMENT_AUDIENCE_MAPPING
    assert ours["upsertProfiles"]["externalProvider"] == ours["upsertProfileMapping"]["mappableType"] == "segment_io"
    profile = json.loads(ours["upsertProfiles"]["profiles"])[0]
    assert list(profile)[:2] == ["userId", "email"] and list(profile)[-3:] == ["audienceId", "audienceName", "action"]
    assert {k: v for k, v in profile.items() if k not in ("audienceId", "audienceName", "action")} == \
        {k: v for k, v in SEGMENT_PROFILE.items() if k not in ("audienceId", "audienceName", "action")}
    # advertiserId travels as an integer literal, as in Segment's document
    assert "advertiserId: 9001" in h.fake.requests[-1].json["query"]


class OldAudienceMapping(StackAdaptAdapter):
    """What this adapter sent before: audience mapping entries without ``isPii``."""

    def _post(self, query, what):
        head, _, tail = query.partition("upsertExternalAudienceMapping")
        return super()._post(head + "upsertExternalAudienceMapping" + tail.replace(", isPii: false}", "}"), what)


def test_fake_refuses_the_old_document_without_is_pii_and_applies_nothing(h: Harness):
    with pytest.raises(PermanentTransferError, match="isPii"):
        h.deliver(h.adapter(cls=OldAudienceMapping), adds=h.rows(0, 3))
    (errors,) = h.fake.refused
    assert len(errors) == 2  # both audience mapping entries
    assert all("'MappingSchema' to include required field 'isPii'" in e["message"] for e in errors)
    # Invalid as a whole: not even the valid upsertProfileMapping before it ran.
    assert h.fake.profile_mappings == [] and h.fake.profiles == {} and h.members() == set()


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("advertiserId: 9001", 'advertiserId: "9001"', "advertiserId must be an integer"),
    ('externalProvider: "segment_io"', 'externalProvider: "SEGMENT_IO"', 'externalProvider must be "segment_io"'),
    ('mappableType: "segment_io"', 'mappableType: "segment"', 'mappableType must be "segment_io"'),
    ('label: "Email", ', "", "required field 'label'"),
    ("type: DATE", "type: DAY", "ProfilePropertyData"),
])
def test_fake_refuses_documents_breaking_the_contract(h: Harness, old, new, reason):
    class Broken(StackAdaptAdapter):
        def _post(self, query, what):
            assert old in query
            return super()._post(query.replace(old, new, 1), what)

    with pytest.raises(PermanentTransferError, match=reason):
        h.deliver(h.adapter(cls=Broken), adds=h.rows(0, 2))
    assert h.fake.refused and h.fake.profiles == {} and h.fake.profile_mappings == []


def test_advertiser_id_setting_must_be_numeric():
    from exchange.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        StackAdaptAdapter.load_settings({"graphql_token": "t", "advertiser_id": "adv-12"})
    assert list(err.value.errors) == ["adapter.settings.advertiser_id"]
