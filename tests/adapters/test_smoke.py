"""``exchange adapters check``: the live smoke check, run here against the local fakes only."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from exchange.cli import main
from tests.fakes.partners import KITS
from tests.fakes.partners.server import FakePartner

ENV = {"EXCHANGE_ALLOW_PRIVATE_URLS": "1"}  # the fakes listen on loopback


@pytest.fixture(params=sorted(KITS))
def fake(request) -> Iterator[tuple[str, FakePartner]]:
    kit = KITS[request.param]
    with kit.make_fake() as started:
        yield request.param, started


def _check(tmp_path, adapter_type: str, settings: dict, *base_urls: str, as_json: bool = False):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    args = ["adapters", "check", adapter_type, "--settings", str(path)]
    for url in base_urls:
        args += ["--base-url", url]
    return CliRunner().invoke(main, args + (["--json"] if as_json else []), env=ENV)


def _secrets(adapter_type: str, settings: dict) -> list[str]:
    from exchange.adapters.base import secret_names
    from exchange.adapters.registry import get_adapter

    values = [str(settings[name]) for name in secret_names(get_adapter(adapter_type).settings_schema)
              if settings.get(name)]
    if adapter_type == "equals":
        values += [v.split("://", 1)[1].split("/", 1)[1] for v in values]  # the secret path of the URL
    return values


def test_check_passes_and_prints_every_exchange_scrubbed(tmp_path, fake):
    adapter_type, partner = fake
    kit = KITS[adapter_type]
    settings = kit.good_settings(partner)
    base = kit.base_url(partner)
    result = _check(tmp_path, adapter_type, settings, *([base] if base else []))
    assert result.exit_code == 0, result.output
    for step in ("settings", "credentials", "add one test member", "remove the test member", "read back"):
        assert f"PASS {step}:" in result.output
    assert result.output.rstrip().endswith(f"{adapter_type}: PASS")
    # each request and answer is printed: one "→" and one "←" per request the fake received
    assert result.output.count("] → ") == len(partner.requests) == result.output.count("← HTTP ")
    for secret in _secrets(adapter_type, settings):
        assert secret not in result.output
    if adapter_type == "equativ":  # an OAuth token learnt on the way is a secret too
        assert partner.tokens and all(token not in result.output for token in partner.tokens)
        assert "client_secret=***" in result.output and '"access_token":"***"' in result.output
    if adapter_type == "batch":  # the read-back reports the partner's own counts
        assert '"nb_ids": 0' in result.output and "Audience_Exchange_smoke_test" in result.output
        assert partner.audiences["Audience_Exchange_smoke_test"]["display_name"].endswith(
            "_exchange-smoke-test_Audience Exchange smoke test")
    assert any(r.status < 300 for r in partner.requests)


def test_check_fails_on_bad_credentials_naming_the_setting(tmp_path, fake):
    adapter_type, partner = fake
    kit = KITS[adapter_type]
    settings = kit.bad_settings(partner)
    base = kit.base_url(partner)
    result = _check(tmp_path, adapter_type, settings, *([base] if base else []), as_json=True)
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    failed = [s for s in report["steps"] if not s["ok"]]
    assert len(failed) == 1 and kit.blamed_setting in failed[0]["detail"]
    assert report["ok"] is False
    for secret in _secrets(adapter_type, settings):
        assert secret not in result.output


def test_check_refuses_bad_settings_and_bad_hosts(tmp_path):
    result = _check(tmp_path, "batch", {"rest_api_key": "r"})
    assert result.exit_code == 1
    assert "FAIL settings: adapter.settings.custom_user_id" in result.output
    result = _check(tmp_path, "equativ", {"client_id": "a", "client_secret": "b", "segment_provider_id": "1"},
                    "profiles=ftp://nowhere")
    assert result.exit_code == 1 and "--base-url.equativ.profiles" in result.output
    result = _check(tmp_path, "nope", {})
    assert result.exit_code == 2 and "Unknown adapter type" in result.output


def test_check_routes_each_role_to_its_own_host(tmp_path):
    from tests.fakes.partners.equativ import FakeEquativ

    with FakeEquativ() as auth, FakeEquativ() as rest:
        rest.tokens = auth.tokens  # one platform behind two hosts
        settings = KITS["equativ"].good_settings(auth)
        result = _check(tmp_path, "equativ", settings, f"auth={auth.url}", f"segments={rest.url}",
                        f"profiles={rest.url}")
        assert result.exit_code == 0, result.output
        assert {r.path for r in auth.requests} == {"/oauth/token"}
        assert {r.path.rsplit("/", 1)[1] for r in rest.requests} == {"segments", "profiles"}


def test_check_scrubs_a_key_carried_in_the_url(tmp_path):
    """Batch 1.x puts the app API key in the path: the printed URLs must not show it."""
    from tests.fakes.partners.batch import FakeBatch

    with FakeBatch() as partner:
        settings = {"api_key": partner.api_key, "rest_api_key": partner.rest_api_key, "custom_user_id": "id"}
        result = _check(tmp_path, "batch", settings, partner.url)
        assert result.exit_code == 0, result.output
        assert "/1.0/***/custom-audience" in result.output
        assert partner.api_key not in result.output and partner.rest_api_key not in result.output
        assert any(partner.api_key in r.path for r in partner.requests)  # it was really sent
