# ruff: noqa: F811 - the fixtures of test_toolkit_cli are imported, then requested by name
"""``exchange-toolkit`` keys, endpoint and share edit commands, push's job ids and ``jobs watch --until``."""
from __future__ import annotations

import json

import pytest
import requests

from tests.toolkit_client.test_toolkit_cli import as_json, cfg_file, cli, ok, push_setup  # noqa: F401 - fixtures


def test_keys_create_list_revoke(cli, live):
    created = as_json(cli("--json", "keys", "create", "--name", "ci"))
    assert created["key"].startswith("aex_") and created["scope"] == "account"
    text = ok(cli("keys", "list")).output
    assert created["prefix"] in text and "ci" in text
    assert requests.get(f"{live.url}/v1/keys", headers={"Authorization": f"Bearer {created['key']}"}).ok
    revoked = ok(cli("keys", "revoke", created["id"]))
    assert f"revoked key {created['id']}" in revoked.output
    assert requests.get(f"{live.url}/v1/keys", headers={"Authorization": f"Bearer {created['key']}"}).status_code == 401
    assert created["prefix"] not in ok(cli("keys", "list")).output  # revoked keys need --all
    assert created["prefix"] in ok(cli("keys", "list", "--all")).output


def test_endpoint_key_for_an_endpoint(cli, client):
    ep = client.register_endpoint({"name": "CDP", "producer": {"transport": "push"}, "identifiers": ["email"]})
    key = as_json(cli("--json", "keys", "create", "--endpoint-id", ep["id"]))
    assert key["scope"] == "endpoint" and key["endpoint_id"] == ep["id"]
    assert "the exchange answered" in cli("keys", "create", "--endpoint-id", "nope").output


def test_endpoints_update_disable_enable_delete(cli, client):
    ep = client.register_endpoint({"name": "CDP", "producer": {"transport": "push"}, "identifiers": ["email"]})
    result = ok(cli("endpoints", "update", ep["id"], "--name", "CDP 2", "--attribute", "country",
                    "--attribute", "first_name"))
    assert "updated endpoint" in result.output and "attributes, name" in result.output
    shown = client.get_endpoint(ep["id"])
    assert shown["name"] == "CDP 2" and shown["attributes"] == ["country", "first_name"]
    bad = cli("endpoints", "update", ep["id"], "--contact-url", "ftp://x.example")
    assert bad.exit_code == 1 and "contact_url" in bad.output
    assert cli("endpoints", "update", ep["id"]).exit_code == 2  # nothing to change
    assert "is disabled" in ok(cli("endpoints", "disable", ep["id"])).output
    assert client.get_endpoint(ep["id"])["status"] == "disabled"
    assert "is active" in ok(cli("endpoints", "enable", ep["id"])).output
    declined = cli("endpoints", "delete", ep["id"])  # asks first; no answer → nothing deleted
    assert declined.exit_code != 0 and "Delete endpoint" in declined.output
    assert client.get_endpoint(ep["id"])
    assert "deleted endpoint" in ok(cli("endpoints", "delete", ep["id"], "--yes")).output
    assert cli("endpoints", "show", ep["id"]).exit_code == 1


def test_shares_update_pause_resume_run_delete_and_push_job_ids(cli, client, live, tmp_path):
    s = push_setup(client, live, tmp_path)
    body = json.loads(s["share_file"].read_text()) | {"schedule": {"type": "on_new_data"}}
    s["share_file"].write_text(json.dumps(body))
    share = as_json(cli("--json", "shares", "create", "--file", str(s["share_file"])))
    result = ok(cli("shares", "update", share["id"], "--every", "PT6H", "--mode", "replace", "--no-delta"))
    assert "every 6 hours" in result.output.lower()
    shown = as_json(cli("--json", "shares", "show", share["id"]))
    assert shown["mode"] == "replace" and shown["schedule"] == {"type": "interval", "every": "PT6H"}
    assert cli("shares", "update", share["id"], "--every", "PT1H", "--cron", "0 6 * * *").exit_code == 2
    assert "is paused" in ok(cli("shares", "pause", share["id"])).output
    resumed = ok(cli("shares", "resume", share["id"])).output
    assert "is active" in resumed and "next run" in resumed
    job = as_json(cli("--json", "shares", "run", share["id"]))
    watched = ok(cli("jobs", "watch", job["id"], "--until", "awaiting_consumer", "--interval", "0.1"))
    assert "awaiting_consumer" in watched.output.splitlines()[-2]  # stopped there, not at the end

    # push prints the jobs an on_new_data share started
    on_new_data = tmp_path / "on_new_data.json"
    on_new_data.write_text(json.dumps({"schedule": {"type": "on_new_data"}}))
    ok(cli("shares", "update", share["id"], "--file", str(on_new_data)))  # back to on_new_data
    producer = client.search_audiences().items[0]["endpoint_id"]
    new_csv = tmp_path / "new.csv"
    new_csv.write_text("email,country\nnew@example.com,FR\n")
    pushed = ok(cli("push", producer, "loyal", str(new_csv), key=_endpoint_key(client, producer)))
    assert "triggered jobs: " in pushed.output
    job_id = pushed.output.split("triggered jobs: ")[1].split()[0].rstrip(",")
    assert client.get_job(job_id)["share_id"] == share["id"]

    assert "deleted share" in ok(cli("shares", "delete", share["id"], "--yes")).output
    assert cli("shares", "show", share["id"]).exit_code == 1


def _endpoint_key(client, endpoint_id: str) -> str:
    return client.create_key("push", scope="endpoint", endpoint_id=endpoint_id)["key"]


@pytest.mark.parametrize("args", [["conformance", "--help"], ["keys", "--help"]])
def test_help(cli, args):
    assert ok(cli(*args)).output.startswith("Usage:")
