"""Secrets never appear in API responses, events, errors or logs; keys rotate."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

from tests.e2e.conftest import audience_by_external, register, wait_job
from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint

CREDENTIAL = "Cred-5ecret-Value-91f3"


def test_credentials_never_leak(live, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cons = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="something-else").start()
    with cons:
        cons.script("POST", "/audiences/*/data", [Fault(status=401, body={"detail": "bad token"})])
        p = register(live, name="CDP", producer={"transport": "push"}, identifiers=["email"])
        live.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=b"email\na@x.io\n",
                        headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
        c = register(live, name="Ads", contact_url=cons.url, identifiers=["email"], credential=CREDENTIAL,
                     consumer={"transport": "push"}, webhook_url="http://127.0.0.1:1/hook")
        batch = register(live, name="Batch", adapter={"type": "batch", "settings": {
            "api_key": "BATCHKEY0123456789", "rest_api_key": "RESTKEY-abcdef-123456", "custom_user_id": "email"}})
        share = live.post("/v1/shares", json={"audience_id": audience_by_external(live, "a")["id"],
                                              "destination_id": c["id"], "mapping": [
                                                  {"source": "email", "target": "email"}]}).json
        job = wait_job(live, share["last_job_id"])
        assert job["state"] == "failed" and "credential" in job["error"]["detail"]
        seen = [
            live.get(f"/v1/endpoints/{c['id']}").get_data(as_text=True),
            live.get(f"/v1/endpoints/{batch['id']}").get_data(as_text=True),
            json.dumps(batch),
            live.get("/v1/endpoints").get_data(as_text=True),
            live.get(f"/v1/jobs/{job['id']}").get_data(as_text=True),
            live.get(f"/v1/jobs/{job['id']}/events").get_data(as_text=True),
            live.get("/v1/account/export").get_data(as_text=True),
            live.get("/v1/audit").get_data(as_text=True),
            live.post(f"/v1/endpoints/{batch['id']}/verify").get_data(as_text=True),
            caplog.text,
        ]
        for secret in (CREDENTIAL, "BATCHKEY0123456789", "RESTKEY-abcdef-123456", c["webhook_secret"]):
            for text in seen:
                assert secret not in text
        # the credential was really sent to the endpoint (so the test would notice a leak path)
        assert cons.requests_to("POST")[0].header("Authorization") == f"Bearer {CREDENTIAL}"


def test_keys_rotate(tmp_path):
    env = {"EXCHANGE_VAR_DIR": str(tmp_path / "var"), "EXCHANGE_SECRET_KEY": "old-key"}

    def run(*args, extra=None):
        import os
        return subprocess.run([sys.executable, "-m", "exchange.cli", *args], env={**os.environ, **env, **(extra or {})},
                              capture_output=True, text=True, check=True).stdout

    run("db", "upgrade")
    token = json.loads(run("accounts", "create", "A", "--json"))["api_key"]
    from exchange.app import create_app
    from exchange.config import Config
    from exchange.models import Endpoint

    def app_with(**keys):
        return create_app(Config.from_env({**env, **keys}, scheduler=False))

    app = app_with()
    ep = app.test_client().post("/v1/endpoints", headers={"Authorization": f"Bearer {token}"}, json={
        "name": "C", "contact_url": "https://93.184.216.34/x", "identifiers": ["email"], "credential": "tok-1",
        "consumer": {"transport": "push"}}).json
    rt = app.extensions["exchange"]
    with rt.db.session() as s:
        before = s.get(Endpoint, ep["id"]).credential_enc
    rt.shutdown()
    out = run("keys", "rotate", extra={"EXCHANGE_SECRET_KEY": "new-key", "EXCHANGE_OLD_SECRET_KEYS": "old-key"})
    assert "re-encrypted 1 secrets" in out
    app2 = app_with(EXCHANGE_SECRET_KEY="new-key")  # the old key is no longer configured
    rt2 = app2.extensions["exchange"]
    with rt2.db.session() as s:
        after = s.get(Endpoint, ep["id"]).credential_enc
        assert after != before and rt2.secrets.decrypt(after) == "tok-1"
    rt2.shutdown()
