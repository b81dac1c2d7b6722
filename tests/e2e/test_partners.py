"""Shares to partner endpoints through real jobs: each partner's fake ends holding exactly the members."""
from __future__ import annotations

import csv
import io
import json

import pytest

from exchange.adapters.base import SegmentContext
from exchange.app import create_app
from exchange.db import upgrade
from exchange.runtime import Runtime
from tests.conftest import make_config, new_account
from tests.e2e.conftest import audience_by_external, register, wait_job
from tests.fakes.partners import KITS


@pytest.fixture(params=sorted(KITS))
def partner(request, tmp_path):
    yield from _partner(request.param, tmp_path)


@pytest.fixture
def batch_partner(tmp_path):
    yield from _partner("batch", tmp_path)


def _partner(name, tmp_path):
    kit = KITS[name]
    fake = kit.make_fake()
    fake.start()
    base = kit.base_url(fake)
    cfg = make_config(tmp_path, adapter_base_urls=json.dumps({kit.adapter_type: base} if base else {}))
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    api = new_account(rt, app.test_client())
    yield kit, fake, api
    rt.shutdown()
    fake.stop()


def _upload(api, producer, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    r = api.client.put(f"/v1/endpoints/{producer['id']}/audiences/aud7/data", data=buf.getvalue().encode(),
                       headers={"Authorization": f"Bearer {producer['endpoint_key']}", "Content-Type": "text/csv"})
    assert r.status_code == 200, r.json


def test_partner_add_replace_remove(partner):
    kit, fake, api = partner
    rows = [kit.row(i) for i in range(15)]
    columns = list(rows[0])
    producer = register(api, name="CRM", producer={"transport": "push"}, identifiers=[columns[0]],
                        attributes=columns[1:])
    _upload(api, producer, rows[0:10])
    dest = register(api, name=kit.adapter_type, adapter={"type": kit.adapter_type, "settings": kit.good_settings(fake)})
    assert dest["adapter"]["type"] == kit.adapter_type
    secrets_in_view = json.dumps(dest)
    for value in kit.good_settings(fake).values():
        if isinstance(value, str) and len(value) > 12 and "://" not in value:
            assert value not in secrets_in_view  # secrets never come back
    ctx = SegmentContext(site_id=api.account_id, segment_id="aud7", segment_name="Loyal customers", job_id="-")
    mapping = [{"source": c, "target": c} for c in columns]
    share = api.post("/v1/shares", json={"audience_id": audience_by_external(api, "aud7")["id"],
                                         "destination_id": dest["id"], "destination_audience": "Loyal customers",
                                         "mapping": mapping, "mode": "add", "reject_threshold": 0.5})
    assert share.status_code == 201, share.json
    share = share.json

    def run(expected_state="succeeded"):
        job = wait_job(api, api.post(f"/v1/shares/{share['id']}/run").json["id"], timeout=60)
        assert job["state"] == expected_state, (job, [e["message"] for e in
                                                      api.get(f"/v1/jobs/{job['id']}/events").json["items"]])
        return job

    first = wait_job(api, share["last_job_id"], timeout=60)
    events = api.get(f"/v1/jobs/{first['id']}/events").json["items"]
    assert first["state"] == "succeeded", [e["message"] for e in events]
    assert kit.members(fake, ctx) == {kit.key(r) for r in rows[0:10]}

    # replace (the partner cannot replace natively): adds and removes from the snapshot
    api.patch(f"/v1/shares/{share['id']}", json={"mode": "replace"})
    _upload(api, producer, rows[5:15])
    second = run()
    assert (second["counts"]["added"], second["counts"]["removed"]) == (5, 5)
    assert kit.members(fake, ctx) == {kit.key(r) for r in rows[5:15]}

    # a delta run with nothing changed sends nothing
    before = len(fake.requests)
    third = run()
    assert third["counts"]["added"] == 0 and third["counts"]["removed"] == 0
    assert kit.members(fake, ctx) == {kit.key(r) for r in rows[5:15]}
    assert sum(1 for r in fake.requests[before:] if kit.rows_in(r)) == 0

    # remove
    api.patch(f"/v1/shares/{share['id']}", json={"mode": "remove", "delta": False})
    _upload(api, producer, rows[12:15])
    run()
    assert kit.members(fake, ctx) == {kit.key(r) for r in rows[5:12]}


def test_partner_bad_credentials_fail_fast(partner):
    kit, fake, api = partner
    rows = [kit.row(i) for i in range(3)]
    columns = list(rows[0])
    producer = register(api, name="CRM", producer={"transport": "push"}, identifiers=[columns[0]],
                        attributes=columns[1:])
    _upload(api, producer, rows)
    dest = register(api, name="p", adapter={"type": kit.adapter_type, "settings": kit.bad_settings(fake)})
    verify = api.post(f"/v1/endpoints/{dest['id']}/verify").json
    if kit.check_is_remote:
        assert verify["ok"] is False and kit.blamed_setting in json.dumps(verify)
    share = api.post("/v1/shares", json={"audience_id": audience_by_external(api, "aud7")["id"],
                                         "destination_id": dest["id"], "mapping": [{"source": c, "target": c}
                                                                                    for c in columns]}).json
    job = wait_job(api, share["last_job_id"], timeout=60)
    assert job["state"] == "failed"
    assert kit.blamed_setting in job["error"]["detail"] or kit.blamed_setting in json.dumps(job["error"])
    for value in kit.bad_settings(fake).values():
        if isinstance(value, str) and "wrong" in value:
            assert value not in json.dumps(api.get(f"/v1/jobs/{job['id']}/events").json)
            assert value not in json.dumps(job)


def test_adapters_listed(partner):
    kit, fake, api = partner
    items = api.get("/v1/adapters").json["items"]
    names = {a["name"] for a in items}
    assert {"equativ", "batch", "stackadapt", "equals"} <= names
    one = next(a for a in items if a["name"] == kit.adapter_type)
    assert one["batch_size"] > 0 and one["rate_limit"] > 0 and one["identifiers"]
    assert one["hosts"] and one["limits"] and all(limit["source"] for limit in one["limits"])
    secret_fields = [k for k, v in one["settings"].get("properties", {}).items() if v.get("writeOnly")]
    assert secret_fields or kit.adapter_type == "equals"


def test_invalid_settings_rejected_on_registration(partner):
    kit, fake, api = partner
    r = api.post("/v1/endpoints", json={"name": "p", "adapter": {"type": kit.adapter_type,
                                                                 "settings": {"nonsense": 1}}})
    assert r.status_code == 422
    assert any(k.startswith("adapter.settings") for k in r.json["errors"])


def test_adapter_check_route(partner):
    """POST /v1/endpoints/{id}/adapter-check: the smoke check for a registered partner endpoint."""
    kit, fake, api = partner
    settings = kit.good_settings(fake)
    dest = register(api, name="p", adapter={"type": kit.adapter_type, "settings": settings})
    r = api.post(f"/v1/endpoints/{dest['id']}/adapter-check")
    assert r.status_code == 200, r.json
    report = r.json
    assert report["ok"] is True, report["steps"]
    assert [s["name"] for s in report["steps"]] == ["settings", "credentials", "add one test member",
                                                    "remove the test member", "read back"]
    assert len(report["exchanges"]) == len(fake.requests) > 0
    text = r.get_data(as_text=True)
    from exchange.adapters.base import secret_names
    from exchange.adapters.registry import get_adapter

    for name in secret_names(get_adapter(kit.adapter_type).settings_schema):
        value = settings.get(name)
        if value:
            assert value not in text
            if "://" in value:
                assert value.split("://", 1)[1].split("/", 1)[1] not in text  # Equals: the URL's path
    bad = register(api, name="bad", adapter={"type": kit.adapter_type, "settings": kit.bad_settings(fake)})
    report = api.post(f"/v1/endpoints/{bad['id']}/adapter-check").json
    assert report["ok"] is False and kit.blamed_setting in json.dumps(report["steps"])
    plain = register(api, name="CRM", producer={"transport": "push"}, identifiers=["email"])
    r = api.post(f"/v1/endpoints/{plain['id']}/adapter-check")
    assert r.status_code == 409 and r.headers["Content-Type"].startswith("application/problem+json")


def test_adapter_check_button_on_the_endpoint_page(batch_partner):
    """The web page of a partner endpoint has a "Smoke check" button showing steps and exchanges."""
    import re

    from exchange.auth.users import create_user

    kit, fake, api = batch_partner
    settings = kit.good_settings(fake)
    dest = register(api, name="Batch", adapter={"type": "batch", "settings": settings})
    rt = api.client.application.extensions["exchange"]
    with rt.db.session() as s:
        create_user(s, api.account_id, "ops@acme.test", "correct-horse-1")
    web = api.client.application.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    web.post("/login", data={"email": "ops@acme.test", "password": "correct-horse-1", "csrf_token": token})
    page = web.get(f"/endpoints/{dest['id']}").text
    assert "Smoke check" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    result = web.post(f"/endpoints/{dest['id']}/adapter-check", data={"csrf_token": token})
    assert result.status_code == 200
    assert 'id="smoke-check"' in result.text and "passed" in result.text and "nb_ids" in result.text
    for name in ("rest_api_key", "project_key"):
        assert settings[name] not in result.text
