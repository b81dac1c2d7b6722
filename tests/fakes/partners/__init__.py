"""Local fakes of the partner APIs, and one kit per adapter telling tests how to drive each.

A :class:`PartnerKit` pairs an adapter type with its fake: good settings pointing at the fake,
settings with a wrong secret (and the setting that must be blamed), a valid output row per
number, the key the fake stores for that row, and how to read the segment's members back.
The shared contract suite (tests/adapters/test_contract.py) runs over every registered adapter
and fails when one has no kit here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exchange.adapters.base import SegmentContext
from tests.fakes.partners.batch import FakeBatch
from tests.fakes.partners.equals import FakeEquals
from tests.fakes.partners.equativ import FakeEquativ
from tests.fakes.partners.server import FakePartner, Recorded
from tests.fakes.partners.stackadapt import FakeStackAdapt

CONTEXT = SegmentContext(site_id="acct42", segment_id="aud7", segment_name="Loyal customers", job_id="job-1")


@dataclass(frozen=True)
class PartnerKit:
    adapter_type: str
    make_fake: Callable[..., FakePartner]
    good_settings: Callable[[FakePartner], dict]
    bad_settings: Callable[[FakePartner], dict]  # one credential wrong
    blamed_setting: str  # the setting InvalidCredentials must name for bad_settings
    row: Callable[[int], dict[str, str]]
    key: Callable[[dict[str, str]], str]  # what the fake stores for a row
    members: Callable[[FakePartner, SegmentContext], set[str]]
    rows_in: Callable[[Recorded], int | None]  # rows carried by a recorded request; None: not a batch
    base_url: Callable[[FakePartner], str | None] = lambda fake: fake.url
    check_is_remote: bool = True  # False: the partner has no harmless call to verify credentials


def _equativ_members(fake: FakeEquativ, ctx: SegmentContext) -> set[str]:
    return set(fake.members.get(f"ca_{ctx.site_id}_{ctx.segment_id}", set()))


def _batch_members(fake: FakeBatch, ctx: SegmentContext) -> set[str]:
    from exchange.adapters.batch import audience_name

    return set(fake.members.get(audience_name(ctx.segment_name, ""), {}))


def _stackadapt_members(fake: FakeStackAdapt, ctx: SegmentContext) -> set[str]:
    return set(fake.audience_members(ctx.segment_id))


def _equals_members(fake: FakeEquals, ctx: SegmentContext) -> set[str]:
    from exchange.adapters.equals import snake_case

    return fake.members(snake_case(ctx.segment_name))


KITS: dict[str, PartnerKit] = {
    "equativ": PartnerKit(
        "equativ",
        FakeEquativ,
        lambda f: {"client_id": f.client_id, "client_secret": f.client_secret,
                   "segment_provider_id": f.provider_id},
        lambda f: {"client_id": f.client_id, "client_secret": "wrong-secret-value",
                   "segment_provider_id": f.provider_id},
        "client_secret",
        lambda i: {"cookie_id": f"eqv-user-{i:07d}"},
        lambda row: row["cookie_id"],
        _equativ_members,
        lambda rec: len(rec.json) if rec.path.endswith("/profiles") and rec.status < 300 else None,
    ),
    "batch": PartnerKit(
        "batch",
        FakeBatch,
        lambda f: {"project_key": f.project_key, "rest_api_key": f.rest_api_key, "custom_user_id": "customer_id",
                   "attributes": {"country": "country"}, "tags": "vip\nnewsletter"},
        lambda f: {"project_key": f.project_key, "rest_api_key": "wrong-rest-key", "custom_user_id": "customer_id"},
        "rest_api_key",
        lambda i: {"customer_id": f"cust-{i:07d}", "country": "FR"},
        lambda row: row["customer_id"],
        _batch_members,
        lambda rec: len(rec.json["ids"]) if (rec.method in ("PATCH", "PUT") or rec.path.endswith(
            ("/audiences/update", "/audiences/replace"))) and rec.status < 300 else None,
    ),
    "stackadapt": PartnerKit(
        "stackadapt",
        FakeStackAdapt,
        lambda f: {"graphql_token": f.token, "advertiser_id": f.advertiser_id},
        lambda f: {"graphql_token": "wrong-token-value", "advertiser_id": f.advertiser_id},
        "graphql_token",
        lambda i: {"email": f"user{i}@example.com", "customer_id": f"cust-{i:07d}", "first_name": "Ana"},
        lambda row: row["customer_id"],
        _stackadapt_members,
        lambda rec: FakeStackAdapt.profiles_in(rec) if rec.status < 300 else None,
    ),
    "equals": PartnerKit(
        "equals",
        FakeEquals,
        lambda f: {"url": f.ingest_url},
        lambda f: {"url": f.url + "/segment/wrong-url-token"},
        "url",
        lambda i: {"customer_id": f"cust-{i:07d}", "email": f"user{i}@example.com"},
        lambda row: row["customer_id"],
        _equals_members,
        lambda rec: 1 if rec.method == "POST" and rec.status < 300 else None,
        base_url=lambda fake: None,
        check_is_remote=True,  # GET on the URL records nothing (issue 15)
    ),
}
