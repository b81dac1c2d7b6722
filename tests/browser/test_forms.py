"""Bad input shows its error next to the field; keys are shown once; pages fit a phone's width."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from exchange.catalog.endpoints import register_endpoint
from exchange.catalog.gather import gather_on_registration
from exchange.web.headless import PHONE
from tests.browser.conftest import PASSWORD, login

pytestmark = pytest.mark.browser


def field_error(page, input_id: str):
    """The error message the input points at with aria-describedby."""
    described = page.locator(f"#{input_id}").get_attribute("aria-describedby") or ""
    error_id = next((i for i in described.split() if i.startswith("err-")), None)
    assert error_id, f"#{input_id} has no error attached ({described!r})"
    return page.locator(f"#{error_id}")


@pytest.fixture(scope="module")
def endpoints(site):
    rt, (account, _, _) = site.rt, site.accounts["Acme"]
    with rt.db.session() as s:
        crm, _, _ = register_endpoint(rt, s, account, {
            "name": "CRM", "contact_url": site.producer.url, "producer": {"transport": "pull"},
            "identifiers": ["email"], "credential": "crm-token"})
        ads, _, _ = register_endpoint(rt, s, account, {
            "name": "Ads", "contact_url": site.consumer.url, "identifiers": ["email_sha256"],
            "credential": "ads-token", "consumer": {"transport": "push"}})
        ids = {"crm": crm.id, "ads": ads.id}
    gather_on_registration(rt, ids["crm"])
    return ids


def test_wrong_password_is_refused(site, page):
    page.goto(f"{site.url}/login")
    page.get_by_label("Email").fill("alice@acme.test")
    page.get_by_label("Password").fill(PASSWORD + "x")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Email")).to_have_value("alice@acme.test")


def test_endpoint_form_errors_sit_next_to_their_fields(site, page):
    login(page, site)
    page.goto(f"{site.url}/endpoints/new")
    page.get_by_role("button", name="Register").click()
    expect(field_error(page, "f-name")).to_contain_text("Length must be between 1 and 200")

    page.get_by_label("Name", exact=True).fill("Broken CRM")
    page.get_by_label("Producer (audience source)").select_option("pull")
    page.get_by_label("Custom identifiers").fill("Bad-Name")
    page.get_by_role("button", name="Register").click()
    expect(field_error(page, "f-custom_identifiers")).to_contain_text("lowercase letters")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Broken CRM")  # input kept

    page.get_by_label("Custom identifiers").fill("")
    page.get_by_role("button", name="Register").click()
    expect(field_error(page, "f-contact_url")).to_contain_text("Required for a PULL producer or a PUSH consumer")

    # partner adapter: settings come from its schema, secrets are password inputs
    page.get_by_label("Batch (partner adapter)").check()
    expect(page.get_by_label("Contact URL")).to_be_hidden()
    api_key = page.get_by_label("Batch API Key")
    expect(api_key).to_be_visible()
    expect(api_key).to_have_attribute("type", "password")
    page.get_by_label("Custom User Id").fill("customer_id")
    page.get_by_role("button", name="Register").click()
    expect(field_error(page, "f-batch-api_key")).to_contain_text("Missing data for required field")
    expect(field_error(page, "f-batch-rest_api_key")).to_contain_text("Missing data for required field")
    expect(page.get_by_label("Batch API Key")).to_have_value("")  # secrets are never echoed back


def test_wizard_errors_sit_next_to_their_fields(site, page, endpoints):
    login(page, site)
    page.goto(f"{site.url}/audiences")
    page.get_by_role("link", name="Newsletter readers").click()
    page.get_by_role("link", name="Share this audience").click()
    page.get_by_label("Destination endpoint").select_option(label="Ads")
    expect(page.get_by_label("Target for email")).to_have_value("email_sha256")
    page.get_by_label("Target for email").fill("")  # nothing the destination accepts any more
    page.get_by_label("Recurring, on a calendar (cron)").check()
    page.get_by_label("Cron expression").fill("61 * * *")
    expect(page.locator("#schedule-preview")).to_contain_text("exactly 5 fields")
    page.get_by_role("button", name="Create share").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(field_error(page, "f-cron")).to_contain_text("exactly 5 fields")

    page.get_by_label("Cron expression").fill("0 6 * * *")
    page.get_by_role("button", name="Create share").click()
    expect(page.locator("#err-mapping")).to_contain_text("must produce at least one identifier")
    page.get_by_label("Target for email").fill("email")
    page.get_by_role("button", name="Create share").click()
    expect(field_error(page, "mapping-0-target")).to_contain_text("does not accept the identifier 'email'")
    page.get_by_label("Target for email").fill("email_sha256")
    page.get_by_label("Transforms for email").fill("sha256, normalize_email")
    page.get_by_role("button", name="Create share").click()
    expect(field_error(page, "mapping-0-transform")).to_contain_text("sha256 must come after")
    page.get_by_label("Transforms for email").fill("normalize_email, sha256")
    page.get_by_role("button", name="Create share").click()
    expect(page).to_have_url(f"{site.url}/shares")
    expect(page.get_by_role("status")).to_contain_text("Share created: Every day at 06:00")


def test_api_key_is_shown_once_and_can_be_revoked(site, page):
    login(page, site)
    page.goto(f"{site.url}/keys")
    page.get_by_label("Scope").select_option("endpoint")
    page.get_by_role("button", name="Create key").click()
    expect(field_error(page, "f-endpoint_id")).to_contain_text("Required for endpoint-scope keys")
    page.get_by_label("Name", exact=True).fill("nightly export")
    page.get_by_label("Scope").select_option("account")
    page.get_by_role("button", name="Create key").click()
    token = page.get_by_label("API key", exact=True).input_value()
    assert re.match(r"^aex_[0-9a-f]{12}_", token)
    row = page.locator("#keys tbody tr", has_text="nightly export")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(page.locator("#keys tbody tr", has_text="nightly export")).to_contain_text("revoked")
    assert token not in page.content()  # shown once
    assert page.request.get(f"{site.url}/v1/keys", headers={"Authorization": f"Bearer {token}"}).status == 401


def test_pages_fit_a_phone(site, context, endpoints):
    page = context.new_page()
    page.set_viewport_size(PHONE)
    login(page, site)
    for path in ("/", "/endpoints", "/endpoints/new", "/audiences", "/shares", "/shares/new", "/jobs", "/keys",
                 f"/endpoints/{endpoints['crm']}"):
        page.goto(site.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide"
    page.goto(f"{site.url}/endpoints")
    expect(page.locator("#endpoints thead")).not_to_be_in_viewport()
