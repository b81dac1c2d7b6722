"""The adapter registry: built-ins, entry points, descriptions and settings validation."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from exchange.adapters import registry
from exchange.adapters.base import Adapter
from exchange.errors import NotFound, ValidationFailed


class Extra(Adapter):
    """A third-party adapter registered through an entry point."""

    name = "extra"
    title = "Extra"
    identifiers = ("email",)


def test_builtins_listed_with_capabilities():
    described = {a["name"]: a for a in registry.list_adapters()}
    assert {"equativ", "batch", "stackadapt", "equals"} <= set(described)
    batch = described["batch"]
    assert batch["batch_size"] == 10_000 and batch["native_modes"] == ["add", "remove"]
    assert batch["settings"]["properties"]["rest_api_key"] == {
        "type": "string", "title": "REST API Key", "description": "REST API key (Settings → General).",
        "secret": True, "writeOnly": True, "required": True}
    assert batch["settings"]["properties"]["audience_type"]["default"] == "custom_ids"
    assert batch["settings"]["additionalProperties"] is False
    assert "rest_api_key" in batch["settings"]["required"] and "api_key" not in batch["settings"]["required"]
    assert batch["hosts"] == {"api": "https://api.batch.com"}
    assert {"name": "ids_per_request", "value": 10_000, "unit": "ids", "status": "documented"}.items() <= \
        next(limit for limit in batch["limits"] if limit["name"] == "ids_per_request").items()
    equativ = described["equativ"]
    assert set(equativ["hosts"]) == {"auth", "segments", "profiles"}
    assert next(limit for limit in equativ["limits"] if limit["name"] == "profiles_per_second")["value"] == 1000
    for adapter in described.values():
        assert adapter["limits"], adapter["name"]
        for limit in adapter["limits"]:
            assert limit["status"] in {"documented", "observed", "assumed"} and limit["source"]


def test_entry_points_are_merged(monkeypatch):
    entry = EntryPoint("extra", f"{__name__}:Extra", registry.GROUP)
    broken = EntryPoint("broken", "no.such.module:Thing", registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry, broken])
    assert registry.get_adapter("extra") is Extra
    assert registry.get_adapter("equativ").name == "equativ"


def test_unknown_type():
    with pytest.raises(NotFound):
        registry.get_adapter("nope")
    with pytest.raises(ValidationFailed) as err:
        registry.validate_settings("nope", {})
    assert "adapter.type" in err.value.errors


def test_validate_settings_applies_defaults_and_reports_fields():
    loaded = registry.validate_settings("equativ", {"client_id": "a", "client_secret": "b", "segment_provider_id": "7"})
    assert loaded["region"] == "eu" and loaded["profile_id_column"] == "cookie_id" and loaded["site_id"] is None
    with pytest.raises(ValidationFailed) as err:
        registry.validate_settings("equativ", {"client_id": "a", "region": "mars"})
    assert set(err.value.errors) == {"adapter.settings.client_secret", "adapter.settings.segment_provider_id",
                                     "adapter.settings.region"}


def test_plugins_declaring_one_base_url_get_the_api_host_role():
    class Legacy(Adapter):
        """A plug-in written before host roles."""

        name = "legacy"
        title = "Legacy"
        identifiers = ("email",)
        base_url_default = "https://partner.example"

    from exchange.adapters.base import SegmentContext

    assert Legacy.hosts == {"api": "https://partner.example"}
    ctx = SegmentContext("s", "a", "A", "j")
    assert Legacy({}, ctx, None).base_url == "https://partner.example"
    assert Legacy({}, ctx, None, base_url="http://127.0.0.1:9").base_url == "http://127.0.0.1:9"
    assert Legacy({"hosts": {"api": "https://sandbox.example/"}}, ctx, None).base_url == "https://sandbox.example"
