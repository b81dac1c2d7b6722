"""Each user sees only their own account: lists are empty and direct URLs answer 404 for others."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from exchange.catalog.audiences import search
from exchange.catalog.endpoints import register_endpoint
from exchange.catalog.gather import gather_on_registration
from exchange.shares.service import create_share
from tests.browser.conftest import login, wait_terminal

pytestmark = pytest.mark.browser
MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]


@pytest.fixture(scope="module")
def acme(site):
    """Acme's endpoints, audience, share and finished job, made through the services."""
    rt, (account, _, _) = site.rt, site.accounts["Acme"]
    with rt.db.session() as s:
        crm, _, _ = register_endpoint(rt, s, account, {
            "name": "CRM", "contact_url": site.producer.url, "producer": {"transport": "pull"},
            "identifiers": ["email"], "attributes": ["first_name", "country"], "credential": "crm-token"})
        ads, _, _ = register_endpoint(rt, s, account, {
            "name": "Ads", "contact_url": site.consumer.url, "identifiers": ["email_sha256"], "attributes": [],
            "credential": "ads-token", "consumer": {"transport": "push", "max_rows_per_request": 100,
                                                    "gzip": False, "replace": True}})
        ids = {"crm": crm.id, "ads": ads.id}
    gather_on_registration(rt, ids["crm"])
    with rt.db.session() as s:
        audiences, _ = search(s, account, q="loyal")
        share = create_share(rt, s, account, {
            "audience_id": audiences[0].id, "destination_id": ids["ads"], "mapping": MAPPING, "mode": "add",
            "schedule": {"type": "now"}, "delta": False, "reject_threshold": 0.2})
        ids.update(audience=audiences[0].id, share=share.id, job=share.last_job_id)
    rt.executor.wake()
    assert wait_terminal(rt, ids["job"]) == "partially_succeeded"
    return ids


def test_owner_sees_everything(site, page, acme):
    login(page, site, "Acme")
    page.goto(f"{site.url}/endpoints")
    expect(page.locator("#endpoints tbody tr")).to_have_count(2)
    page.goto(f"{site.url}/jobs/{acme['job']}")
    expect(page.locator("#job-state")).to_have_text("Partially succeeded")
    # the session reads the JSON API (GET only) without an Authorization header
    assert page.request.get(f"{site.url}/v1/jobs/{acme['job']}").json()["state"] == "partially_succeeded"
    assert page.request.get(f"{site.url}/v1/jobs/{acme['job']}/rejects").status == 200
    refused = page.request.post(f"{site.url}/v1/shares/{acme['share']}/run")
    assert refused.status == 401


def test_other_account_sees_none_of_it(site, page, acme):
    login(page, site, "Other")
    page.goto(f"{site.url}/endpoints")
    expect(page.get_by_role("heading", name="No endpoints yet")).to_be_visible()
    page.goto(f"{site.url}/audiences?q=loyal")
    expect(page.get_by_role("heading", name="No audience matches")).to_be_visible()
    page.goto(f"{site.url}/audiences")
    expect(page.get_by_role("heading", name="The catalog is empty")).to_be_visible()
    page.goto(f"{site.url}/shares")
    expect(page.get_by_role("heading", name="No shares yet")).to_be_visible()
    page.goto(f"{site.url}/jobs")
    expect(page.get_by_role("heading", name="No jobs yet")).to_be_visible()
    page.goto(f"{site.url}/shares/new")
    expect(page.get_by_label("Source audience")).to_have_count(0)
    for path in (f"/endpoints/{acme['crm']}", f"/endpoints/{acme['ads']}", f"/audiences/{acme['audience']}",
                 f"/jobs/{acme['job']}", f"/shares/new?audience={acme['audience']}"):
        response = page.goto(site.url + path)
        assert response.status == 404, path
        expect(page.get_by_role("heading", name="404 · Not found")).to_be_visible()
    for path in (f"/v1/jobs/{acme['job']}", f"/v1/jobs/{acme['job']}/rejects", f"/v1/audiences/{acme['audience']}"):
        assert page.request.get(site.url + path).status == 404, path
    # actions on another account's objects are refused too
    page.goto(f"{site.url}/keys")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path in (f"/endpoints/{acme['ads']}/disable", f"/shares/{acme['share']}/run",
                 f"/jobs/{acme['job']}/cancel", f"/endpoints/{acme['crm']}/verify"):
        assert page.request.post(site.url + path, form={"csrf_token": token}).status == 404, path


def test_signed_out_visitors_are_sent_to_sign_in(site, page, acme):
    page.goto(f"{site.url}/jobs/{acme['job']}")
    expect(page).to_have_url(f"{site.url}/login?next=/jobs/{acme['job']}")
    assert page.request.get(f"{site.url}/v1/jobs/{acme['job']}").status == 401
