"""Click to Connect in Chromium: a provider defines an application, an operator reviews it, a user of
another account connects it by OAuth 2.0 consent (and another one by key) and shares an audience to it."""
from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from exchange.app import create_app
from exchange.applications import registry
from exchange.auth.keys import create_account
from exchange.auth.users import create_user
from exchange.db import upgrade
from exchange.models import Endpoint
from exchange.runtime import Runtime
from exchange.toolkit.ref_oauth import OAuthSettings
from exchange.toolkit.reference_endpoint import ReferenceEndpoint
from exchange.web.headless import LiveServer, sign_in
from tests.browser.conftest import PASSWORD, wait_terminal, write_producer_folder
from tests.conftest import make_config

pytestmark = pytest.mark.browser
OPERATOR = "op@exchange.test"


@pytest.fixture(scope="module")
def site(tmp_path_factory, playwright_browser):
    tmp = tmp_path_factory.mktemp("connect")
    cfg = make_config(tmp, workers=2, max_attempts=3, operator_emails=OPERATOR)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    server = LiveServer(app).start()
    write_producer_folder(tmp / "crm")
    oauth = OAuthSettings(client_id="exchange-client", client_secret="ads-client-secret",
                          redirect_uris=[f"{server.url}/v1/connect/callback"], scopes=["audiences"])
    ads = ReferenceEndpoint(consumer_dir=tmp / "ads", oauth=oauth).start()
    crm = ReferenceEndpoint(producer_dir=tmp / "crm", credential="crm-customer-key").start()
    users = {}
    with rt.db.session() as db:
        for name, email in (("Ads Cloud Inc", "dev@adscloud.test"), ("Customer", "carol@customer.test"),
                            ("Exchange operators", OPERATOR)):
            account, token = create_account(db, name)
            create_user(db, account.id, email, PASSWORD)
            users[name] = (account.id, token, email)
    yield {"url": server.url, "rt": rt, "ads": ads, "crm": crm, "users": users, "tmp": tmp}
    server.stop()
    ads.stop()
    crm.stop()
    rt.shutdown()


def _as(context, site, who: str):
    page = context.new_page()
    sign_in(page, site["url"], site["users"][who][2], PASSWORD)
    return page


def test_define_review_connect_by_consent_and_share(site, playwright_browser):
    url, ads = site["url"], site["ads"]
    provider_ctx, operator_ctx, customer_ctx = (playwright_browser.new_context() for _ in range(3))
    try:
        # the provider defines its application in the console and submits it
        prov = _as(provider_ctx, site, "Ads Cloud Inc")
        prov.goto(f"{url}/provider/applications/new")
        prov.get_by_label("Name", exact=True).fill("Ads Cloud")
        prov.get_by_label("Contact URL").fill(ads.url)
        prov.get_by_label("Consumer").select_option("push")
        prov.get_by_label("email", exact=True).uncheck()
        prov.get_by_label("email_sha256", exact=True).check()
        prov.get_by_label("Attributes").fill("country")
        prov.get_by_label("They consent at your site (OAuth 2.0)").check()
        prov.get_by_label("Authorization endpoint").fill(f"{ads.url}/oauth/authorize")
        prov.get_by_label("Token endpoint").fill(f"{ads.url}/oauth/token")
        prov.get_by_label("Client ID").fill("exchange-client")
        prov.get_by_label("Client secret").fill("ads-client-secret")
        prov.get_by_label("Scopes").fill("audiences")
        prov.get_by_role("button", name="Save").click()
        expect(prov.locator("[data-state]")).to_have_attribute("data-state", "draft")
        prov.get_by_role("button", name="Submit for review").click()
        expect(prov.locator("[data-state]")).to_have_attribute("data-state", "in_review")
        assert "ads-client-secret" not in prov.content()

        # the operator rejects it with a reason; the provider sees it, edits, submits again
        op = _as(operator_ctx, site, "Exchange operators")
        op.goto(f"{url}/operator/applications")
        review = op.locator("[data-review]")
        expect(review).to_contain_text("Ads Cloud")
        review.get_by_label("Reason").fill("Describe what you do with the audiences.")
        review.get_by_role("button", name="Reject").click()
        expect(op.get_by_text("Ads Cloud: rejected.")).to_be_visible()
        prov.reload()
        expect(prov.locator("#review-reason")).to_have_text("Describe what you do with the audiences.")
        prov.get_by_label("Description").fill("Retargeting on hashed emails.")
        prov.get_by_role("button", name="Save").click()
        prov.get_by_role("button", name="Submit for review").click()
        op.goto(f"{url}/operator/applications")
        op.locator("[data-review]").get_by_role("button", name="Approve").click()
        expect(op.get_by_text("Nothing to review")).to_be_visible()
        prov.reload()
        expect(prov.locator("[data-state]")).to_have_attribute("data-state", "approved")

        # a user of another account connects it from the directory by consenting at the provider
        cust = _as(customer_ctx, site, "Customer")
        cust.goto(f"{url}/applications")
        row = cust.locator("#directory tbody tr", has_text="Ads Cloud")
        expect(row).to_contain_text("Consent at the provider (OAuth 2.0)")
        row.get_by_role("link", name="Connect Ads Cloud").click()
        cust.get_by_label("Name", exact=True).fill("Ads Cloud (retargeting)")
        cust.get_by_role("button", name="Continue to Ads Cloud Inc").click()
        expect(cust.get_by_role("heading", name="Connect Reference endpoint")).to_be_visible()
        assert cust.url.startswith(f"{ads.url}/oauth/authorize?")
        cust.get_by_role("button", name="Allow").click()
        expect(cust.get_by_role("heading", name="Ads Cloud (retargeting)")).to_be_visible()
        endpoint_id = cust.url.rstrip("/").rsplit("/", 1)[-1]
        assert cust.url == f"{url}/endpoints/{endpoint_id}"
        expect(cust.locator("#connected-from")).to_contain_text("OAuth 2.0 consent")
        provider_ctx.close()
        operator_ctx.close()
    finally:
        for ctx in (provider_ctx, operator_ctx):
            try:
                ctx.close()
            except Exception:  # noqa: BLE001 - already closed
                pass

    # the customer shares an audience to it; the delivery carries the token from the consent
    rt = site["rt"]
    customer_id, customer_key, _ = site["users"]["Customer"]
    client = create_app(runtime=rt).test_client()
    h = {"Authorization": f"Bearer {customer_key}"}
    src = client.post("/v1/endpoints", headers=h, json={"name": "CDP", "producer": {"transport": "push"},
                                                        "identifiers": ["email"], "attributes": ["country"]}).json
    up = client.put(f"/v1/endpoints/{src['id']}/audiences/vip/data", data=b"email,country\na@x.io,FR\nb@x.io,DE\n",
                    headers={"Authorization": f"Bearer {src['endpoint_key']}", "Content-Type": "text/csv"})
    assert up.status_code == 200
    aud = client.get("/v1/audiences", headers=h).json["items"][0]
    share = client.post("/v1/shares", headers=h, json={
        "audience_id": aud["id"], "destination_id": endpoint_id, "destination_audience": "VIP",
        "mapping": [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
                    {"source": "country", "target": "country"}]}).json
    assert wait_terminal(rt, share["last_job_id"]) == "succeeded"
    delivered = (site["tmp"] / "ads").rglob("*.csv")
    assert any("FR" in p.read_text() for p in delivered)
    with rt.db.session() as db:
        token = json.loads(rt.secrets.decrypt(db.get(Endpoint, endpoint_id).credential_enc))
    assert ads.app.oauth_store.valid(token["access_token"])  # the only credential this endpoint accepts
    # the job page shows it succeeded
    cust.goto(f"{url}/jobs/{share['last_job_id']}")
    expect(cust.locator("body")).to_contain_text("Succeeded")  # the state label (issue 19: readable labels)
    customer_ctx.close()


def test_connect_by_key_and_declined_consent(site, context):
    rt, url = site["rt"], site["url"]
    provider_id = site["users"]["Ads Cloud Inc"][0]
    with rt.db.session() as db:
        crm, _ = registry.create_application(rt, db, provider_id, {
            "name": "Reference CRM", "description": "Customer lists", "contact_url": site["crm"].url,
            "producer": {"transport": "pull"}, "identifiers": ["email"], "attributes": ["first_name", "country"],
            "auth": {"type": "key"}})
        crm.state = "in_review"
        db.flush()
        registry.approve(db, crm.id)
    page = context.new_page()
    sign_in(page, url, site["users"]["Customer"][2], PASSWORD)
    page.goto(f"{url}/applications")
    row = page.locator("#directory tbody tr", has_text="Reference CRM")
    row.get_by_role("link", name="Connect Reference CRM").click()
    page.get_by_role("button", name="Connect").click()  # no key: the form says so
    expect(page.locator(".field-error")).to_contain_text("Required")
    page.get_by_label("Key from Ads Cloud Inc").fill("crm-customer-key")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("heading", name="Reference CRM is registered")).to_be_visible()
    page.get_by_role("link", name="Continue to the endpoint").click()
    expect(page.locator("body")).to_contain_text("Loyal customers")  # gathered with the customer's key

    # declining at the provider ends on a clear page and creates nothing
    with rt.db.session() as db:
        before = db.query(Endpoint).count()
    page.goto(f"{url}/applications")
    page.locator("#directory tbody tr", has_text="Ads Cloud").get_by_role("link", name="Connect Ads Cloud").click()
    page.get_by_role("button", name="Continue to Ads Cloud Inc").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.locator("[data-testid=connect-failed]")).to_contain_text("You declined the connection")
    expect(page.locator("[data-testid=connect-failed]")).to_contain_text("No endpoint was created")
    time.sleep(0.2)
    with rt.db.session() as db:
        assert db.query(Endpoint).count() == before
