"""The shared contract suite: every registered adapter, against its partner's fake.

Parametrized over ``list_adapters()`` (built-ins and entry points), so a new adapter is tested
as soon as it is registered — and fails here until it has a kit in tests/fakes/partners.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from exchange.adapters.base import secret_names
from exchange.adapters.registry import get_adapter, list_adapters, validate_settings
from exchange.errors import InvalidCredentials, RetryableTransferError, ValidationFailed
from tests.adapters.conftest import Harness, make_harness
from tests.fakes.partners import KITS

NAMES = [a["name"] for a in list_adapters()]


@pytest.fixture(params=NAMES)
def h(request) -> Iterator[Harness]:
    assert request.param in KITS, f"adapter {request.param!r} has no partner kit in tests/fakes/partners"
    yield from make_harness(request.param)


def _batches(h: Harness) -> list[int]:
    return [n for n in (h.kit.rows_in(rec) for rec in h.fake.requests) if n is not None]


def _secrets(h: Harness, settings: dict) -> list[str]:
    adapter = h.adapter(settings)
    return [v for v in adapter.secret_values() if len(v) >= 4]


def test_declarations(h: Harness):
    cls = get_adapter(h.kit.adapter_type)
    assert cls.name == h.kit.adapter_type and cls.title
    assert cls.identifiers and cls.batch_size >= 1 and cls.rate_limit > 0
    assert cls.native_modes <= {"add", "remove", "replace"}


def test_settings_describe_secrets_as_write_only(h: Harness):
    described = next(a for a in list_adapters() if a["name"] == h.kit.adapter_type)
    cls = get_adapter(h.kit.adapter_type)
    secrets = secret_names(cls.settings_schema)
    assert secrets, "every partner has at least one credential"
    for name, prop in described["settings"]["properties"].items():
        assert prop["title"] and prop["description"], name
        assert prop["secret"] == (name in secrets)
        if name in secrets:
            assert prop["writeOnly"] is True
    loaded = validate_settings(h.kit.adapter_type, h.kit.good_settings(h.fake))
    dumped = cls.settings_schema().dump(loaded)
    assert not set(secrets) & set(dumped), "secrets must never be dumped"


def test_unknown_and_missing_settings_rejected(h: Harness):
    with pytest.raises(ValidationFailed) as err:
        validate_settings(h.kit.adapter_type, {**h.kit.good_settings(h.fake), "surprise": "x"})
    assert "adapter.settings.surprise" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        validate_settings(h.kit.adapter_type, {})
    assert all(key.startswith("adapter.settings.") for key in err.value.errors)


def test_check_accepts_good_credentials(h: Harness):
    h.adapter().check()


def test_check_names_the_wrong_setting(h: Harness):
    adapter = h.adapter(h.kit.bad_settings(h.fake))
    if not h.kit.check_is_remote:
        adapter.check()  # nothing harmless to call: must not send anything
        assert h.fake.requests == []
        return
    with pytest.raises(InvalidCredentials) as err:
        adapter.check()
    assert err.value.setting == h.kit.blamed_setting


def test_add_then_remove_lands_exact_members(h: Harness):
    rows = h.rows(0, 25)
    report = h.deliver(adds=rows)
    assert report.accepted == report.added == 25 and report.rejected == []
    assert h.members() == h.keys(rows)
    report = h.deliver(removes=rows[:10])
    assert report.removed == 10
    assert h.members() == h.keys(rows[10:])


def test_batch_size_honoured(h: Harness):
    size = get_adapter(h.kit.adapter_type).batch_size
    count = 2 * size + 1 if size > 1 else 3
    report = h.deliver(adds=h.rows(0, count))
    assert _batches(h) == [size, size, 1] if size > 1 else [1, 1, 1]
    assert report.requests == 3 and report.accepted == count
    assert len(h.members()) == count


def test_429_is_waited_not_failed(h: Harness):
    retry_after = 7 if h.fake.send_retry_after else None
    h.fake.throttle_next(2, retry_after=retry_after)
    rows = h.rows(0, 5)
    # One attempt only: rate-limit waits must not use the attempt budget.
    report = h.deliver(adds=rows, max_attempts=1)
    assert h.members() == h.keys(rows)
    assert report.retries == 0 and report.waited_seconds > 0
    if retry_after:
        assert report.waited_seconds == 2 * retry_after
    assert sum(e.startswith("waiting for rate limit until ") for e in h.events) == 2


def test_429_waits_are_bounded(h: Harness):
    h.fake.throttle_next(50, retry_after=60 if h.fake.send_retry_after else None)
    with pytest.raises(RetryableTransferError, match="429"):
        h.deliver(adds=h.rows(0, 3), max_wait=300)


def test_5xx_is_retried_then_given_up(h: Harness):
    h.fake.fail_next(2, 503)
    rows = h.rows(0, 5)
    report = h.deliver(adds=rows)
    assert report.retries == 2 and h.members() == h.keys(rows)
    assert any("retrying in" in e for e in h.events)
    h.fake.fail_next(10, 500)
    with pytest.raises(RetryableTransferError, match="gave up after 3 attempts"):
        h.deliver(adds=h.rows(5, 8), max_attempts=3)


def test_auth_error_fails_fast_naming_the_setting(h: Harness):
    with pytest.raises(InvalidCredentials) as err:
        h.deliver(h.adapter(h.kit.bad_settings(h.fake)), adds=h.rows(0, 20))
    assert err.value.setting == h.kit.blamed_setting
    assert h.kit.blamed_setting in err.value.detail
    assert all(s < 0.5 for s in h.clock.sleeps)  # pacing only, no backoff: not retried
    assert len(h.fake.requests) <= get_adapter(h.kit.adapter_type).concurrency


def test_rows_without_identifier_rejected_with_reason(h: Harness):
    good = h.rows(0, 4)
    bad = {k: "" for k in good[0]}
    report = h.deliver(adds=[*good[:2], bad, *good[2:]])
    assert report.accepted == 4 and len(report.rejected) == 1
    row, reason = report.rejected[0]
    assert row is bad and "required" in reason
    assert h.members() == h.keys(good)


def test_secrets_absent_from_events_messages_and_logs(h: Harness, caplog):
    caplog.set_level(logging.DEBUG)
    good = h.kit.good_settings(h.fake)
    bad = h.kit.bad_settings(h.fake)
    secrets = _secrets(h, good) + _secrets(h, bad)
    assert secrets
    h.fake.fail_next(1, 503)
    h.fake.throttle_next(1, retry_after=1 if h.fake.send_retry_after else None)
    h.deliver(adds=h.rows(0, 3), removes=h.rows(0, 1))
    messages = []
    with pytest.raises(InvalidCredentials) as err:
        h.deliver(h.adapter(bad), adds=h.rows(0, 3))
    messages.append(str(err.value))
    messages.append(str(err.value.problem()))
    text = "\n".join([*h.events, *messages, caplog.text])
    assert "HTTP" in caplog.text or h.events  # the logs did capture the traffic
    for value in secrets:
        assert value not in text


def test_replace_as_adds_and_removes_from_snapshot(h: Harness):
    before, after = h.rows(0, 20), h.rows(10, 30)
    h.deliver(adds=before)
    old, new = h.keys(before), h.keys(after)
    # What the engine computes from the snapshot for a partner without native replace.
    adds = [r for r in after if h.kit.key(r) not in old]
    removes = [r for r in before if h.kit.key(r) not in new]
    report = h.deliver(adds=adds, removes=removes)
    assert (report.added, report.removed) == (10, 10)
    assert h.members() == new


def test_delta_run_sends_only_changes(h: Harness):
    h.deliver(adds=h.rows(0, 12))
    first = len(h.fake.requests)
    report = h.deliver(adds=h.rows(12, 14), removes=h.rows(0, 1))
    assert (report.added, report.removed) == (2, 1)
    assert sum(h.kit.rows_in(rec) or 0 for rec in h.fake.requests[first:]) == 3
    assert h.members() == h.keys(h.rows(1, 14))


def test_every_outbound_host_is_overridable_by_setting(h: Harness):
    """One shape for all adapters: ``hosts`` {role: base URL}; nothing goes to the partner's own hosts."""
    cls = get_adapter(h.kit.adapter_type)
    assert cls.hosts, "every adapter declares its outbound host roles"
    settings = {**h.kit.good_settings(h.fake), "hosts": {role: h.fake.url for role in cls.hosts}}
    if h.kit.adapter_type == "equals":  # the URL is the credential: only its origin is replaced
        settings["url"] = "https://equals.invalid" + h.fake.path
    adapter = cls(settings, h.adapter().context, h.session, base_url=None)
    assert all(adapter.host(role) == h.fake.url for role in cls.hosts)
    h.deliver(adapter, adds=h.rows(0, 3))
    assert h.members() == h.keys(h.rows(0, 3))


def test_bad_host_settings_fail_fast_naming_the_setting(h: Harness):
    cls = get_adapter(h.kit.adapter_type)
    role = sorted(cls.hosts)[0]
    for hosts, key in (({"nowhere": "https://x.example"}, "adapter.settings.hosts.nowhere"),
                       ({role: "ftp://x.example"}, f"adapter.settings.hosts.{role}"),
                       ({role: "https://x.example/?a=1"}, f"adapter.settings.hosts.{role}")):
        with pytest.raises(ValidationFailed) as err:
            validate_settings(h.kit.adapter_type, {**h.kit.good_settings(h.fake), "hosts": hosts})
        assert list(err.value.errors) == [key]
    with pytest.raises(ValidationFailed) as err:
        h.adapter().__class__(h.kit.good_settings(h.fake), h.adapter().context, h.session,
                              base_url={role: "not a url"})
    assert list(err.value.errors) == [f"EXCHANGE_ADAPTER_BASE_URLS.{h.kit.adapter_type}.{role}"]


def test_docs_page_names_every_setting_host_and_limit(h: Harness):
    """docs/adapters/<partner>.md stays in step with the code: settings, host roles, limits, sources."""
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "adapters" / f"{h.kit.adapter_type}.md"
    assert page.exists(), f"{page} is missing"
    text = page.read_text(encoding="utf-8")
    cls = get_adapter(h.kit.adapter_type)
    described = next(a for a in list_adapters() if a["name"] == h.kit.adapter_type)
    for name in described["settings"]["properties"]:
        assert f"`{name}`" in text, f"setting {name} undocumented in {page.name}"
    for role in cls.hosts:
        assert role in text, f"host role {role} undocumented in {page.name}"
    for limit in cls.limits:
        assert f"`{limit.name}`" in text, f"limit {limit.name} undocumented in {page.name}"
    for status in ("documented", "assumed"):
        assert status in text
