"""Edit and delete pages for endpoints and shares, every form error at once, the new key page after a
redirect, readable event lines, the favicon and the endpoint page's conformance check."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from exchange.catalog.audiences import search
from exchange.catalog.endpoints import register_endpoint
from exchange.catalog.gather import gather_on_registration
from exchange.models import Endpoint, Share
from exchange.shares import service as shares
from tests.browser.conftest import login, wait_terminal
from tests.browser.test_forms import field_error

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def setup(site):
    rt, (account, _, _) = site.rt, site.accounts["Acme"]
    with rt.db.session() as s:
        crm, _, _ = register_endpoint(rt, s, account, {
            "name": "Edit CRM", "contact_url": site.producer.url, "producer": {"transport": "pull"},
            "identifiers": ["email"], "credential": "crm-token"})
        ads, _, _ = register_endpoint(rt, s, account, {
            "name": "Edit Ads", "contact_url": site.consumer.url, "identifiers": ["email_sha256"],
            "attributes": ["country"], "credential": "ads-token", "consumer": {"transport": "push"}})
        ids = {"crm": crm.id, "ads": ads.id}
    gather_on_registration(rt, ids["crm"])
    with rt.db.session() as s:
        auds, _ = search(s, account, producer=ids["crm"])
        loyal = next(a for a in auds if a.external_id == "loyal_customers")
        share = shares.create_share(rt, s, account, {
            "audience_id": loyal.id, "destination_id": ids["ads"], "destination_audience": "Edit loyal",
            "mapping": [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}],
            "mode": "add", "schedule": {"type": "now"}, "delta": False, "reject_threshold": 0.5})
        ids["share"], ids["job"] = share.id, share.last_job_id
    rt.executor.wake()
    wait_terminal(rt, ids["job"])
    return ids


def test_endpoint_form_shows_every_error_at_once(site, page):
    login(page, site)
    page.goto(f"{site.url}/endpoints/new")
    page.get_by_label("Producer (audience source)").select_option("pull")
    page.get_by_label("Contact URL").fill("ftp://crm.example/exchange")
    page.get_by_label("Webhook URL").fill("not a url")
    page.get_by_role("button", name="Register").click()
    # one answer names the empty name, the contact URL's scheme and the webhook URL
    expect(field_error(page, "f-name")).to_contain_text("Length must be between 1 and 200")
    expect(field_error(page, "f-contact_url")).to_be_visible()
    expect(field_error(page, "f-webhook_url")).to_be_visible()
    expect(page.get_by_label("Contact URL")).to_have_value("ftp://crm.example/exchange")


def test_edit_endpoint_keeps_the_credential_and_reports_errors(site, page, setup):
    login(page, site)
    page.goto(f"{site.url}/endpoints/{setup['ads']}")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Edit Ads")
    expect(page.get_by_label("Contact URL")).to_have_value(site.consumer.url)
    expect(page.get_by_label("New credential")).to_have_value("")  # never put back into the page
    page.get_by_label("Contact URL").fill("")
    page.get_by_label("Name", exact=True).fill("")
    page.get_by_role("button", name="Save").click()
    expect(field_error(page, "f-name")).to_be_visible()
    expect(field_error(page, "f-contact_url")).to_contain_text("Required for a PULL producer or a PUSH consumer")

    page.get_by_label("Name", exact=True).fill("Ad platform (renamed)")
    page.get_by_label("Contact URL").fill(site.consumer.url)
    page.get_by_label("Attributes").fill("country, first_name")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{site.url}/endpoints/{setup['ads']}")
    expect(page.get_by_role("status")).to_contain_text("Ad platform (renamed) saved")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ad platform (renamed)")
    with site.rt.db.session() as s:
        ep = s.get(Endpoint, setup["ads"])
        assert ep.attributes == ["country", "first_name"]
        assert site.rt.credential(ep) == "ads-token"  # blank credential input kept the stored one
    # the renamed endpoint still passes the protocol check with its stored credential
    page.get_by_role("button", name="Check protocol conformance").click()
    panel = page.locator("#conformance")
    expect(panel).to_contain_text("conforming")
    expect(panel).to_contain_text("consumer.idempotency")
    expect(panel.locator("li.bad")).to_have_count(0)


def test_conformance_check_names_the_failing_rule(site, page, setup):
    login(page, site)
    with site.rt.db.session() as s:  # a wrong stored credential: the endpoint refuses it
        s.get(Endpoint, setup["crm"]).credential_enc = site.rt.secrets.encrypt("not-the-token")
    try:
        page.goto(f"{site.url}/endpoints/{setup['crm']}")
        page.get_by_role("button", name="Check protocol conformance").click()
        expect(page.locator("#conformance h2")).to_contain_text("failed")
        expect(page.locator("#conformance li.bad", has_text="producer.auth.accepted")).to_be_visible()
    finally:
        with site.rt.db.session() as s:
            s.get(Endpoint, setup["crm"]).credential_enc = site.rt.secrets.encrypt("crm-token")


def test_edit_share_then_delete_it(site, page, setup):
    login(page, site)
    page.goto(f"{site.url}/shares")
    page.locator(f"#share-{setup['share']}").get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Target for email")).to_have_value("email_sha256")
    page.get_by_label("Recurring, on a calendar (cron)").check()
    page.get_by_label("Cron expression").fill("61 * * *")
    page.get_by_label("Target for email").fill("")
    page.get_by_role("button", name="Save").click()
    # both problems in one answer: the cron expression and the mapping without an identifier
    expect(field_error(page, "f-cron")).to_contain_text("exactly 5 fields")
    expect(page.get_by_role("alert")).to_be_visible()

    page.get_by_label("Target for email").fill("email_sha256")
    page.get_by_label("Recurring, every…").check()
    page.get_by_label("Every", exact=True).fill("2")
    page.get_by_label("Replace").check()
    page.get_by_label("Target for country").fill("country")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{site.url}/shares")
    expect(page.get_by_role("status")).to_contain_text("Share saved")
    row = page.locator(f"#share-{setup['share']}")
    expect(row).to_contain_text("Every 2 hours")
    expect(row).to_contain_text("replace")
    with site.rt.db.session() as s:
        share = s.get(Share, setup["share"])
        assert share.schedule == {"type": "interval", "every": "PT2H"}
        assert [r["target"] for r in share.mapping] == ["email_sha256", "country"]

    row.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Delete the share to “Edit loyal”?")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted the share")
    expect(page.locator(f"#share-{setup['share']}")).to_have_count(0)
    page.goto(f"{site.url}/jobs/{setup['job']}")  # its past job stays visible
    expect(page.locator("#events")).to_contain_text("Partially succeeded:")  # a label, not the raw state
    assert "partially_succeeded" not in page.locator("#events").inner_text()


def test_delete_endpoint_after_confirmation(site, page):
    rt, (account, _, _) = site.rt, site.accounts["Acme"]
    with rt.db.session() as s:
        ep, _, _ = register_endpoint(rt, s, account, {"name": "Short-lived", "producer": {"transport": "push"},
                                                      "identifiers": ["email"]})
        ep_id = ep.id
    login(page, site)
    page.goto(f"{site.url}/endpoints/{ep_id}")
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Delete the endpoint Short-lived?")
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(f"{site.url}/endpoints/{ep_id}")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{site.url}/endpoints")
    expect(page.get_by_role("status")).to_contain_text("Short-lived was deleted")
    with rt.db.session() as s:
        assert s.get(Endpoint, ep_id) is None


def test_new_key_page_is_not_resubmitted_on_reload(site, page):
    login(page, site)
    page.goto(f"{site.url}/keys")
    before = page.locator("#keys tbody tr").count()
    page.get_by_label("Name", exact=True).fill("prg key")
    page.get_by_role("button", name="Create key").click()
    expect(page).to_have_url(f"{site.url}/keys")  # redirected: the page is a GET
    token = page.get_by_label("API key", exact=True).input_value()
    assert re.match(r"^aex_[0-9a-f]{12}_", token)
    page.reload()
    expect(page.locator("#keys tbody tr")).to_have_count(before + 1)  # no second key
    assert token not in page.content()  # and the token is gone


def test_favicon(site, page):
    login(page, site)
    page.goto(f"{site.url}/")
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(f"{site.url}{href}").headers["content-type"].startswith("image/svg+xml")
    answer = page.request.get(f"{site.url}/favicon.ico")  # browsers ask for it without a session too
    assert answer.ok and answer.headers["content-type"].startswith("image/svg+xml")


def test_edit_partner_endpoint_keeps_secrets(site, page):
    rt, (account, _, _) = site.rt, site.accounts["Acme"]
    with rt.db.session() as s:
        ep, _, _ = register_endpoint(rt, s, account, {"name": "Batch app", "adapter": {"type": "batch", "settings": {
            "rest_api_key": "rest-secret-1", "api_key": "appkey1", "custom_user_id": "customer_id"}}})
        ep_id = ep.id
    login(page, site)
    page.goto(f"{site.url}/endpoints/{ep_id}/edit")
    expect(page.locator("#f-batch-custom_user_id")).to_have_value("customer_id")
    expect(page.locator("#f-batch-rest_api_key")).to_have_value("")  # a secret is never put back
    assert "rest-secret-1" not in page.content()
    page.locator("#f-batch-custom_user_id").fill("crm_id")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Batch app saved")
    with rt.db.session() as s:
        settings = rt.adapter_settings(s.get(Endpoint, ep_id))
    assert settings["custom_user_id"] == "crm_id" and settings["rest_api_key"] == "rest-secret-1"
    assert settings["api_key"] == "appkey1"
