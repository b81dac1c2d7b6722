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
