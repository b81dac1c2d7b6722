"""The main journey in Chromium: sign in, register endpoints, find an audience, share it, watch the job."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login

pytestmark = pytest.mark.browser


def register_producer(page, site) -> None:
    page.goto(f"{site.url}/endpoints/new")
    page.get_by_label("Name", exact=True).fill("CRM")
    page.get_by_label("Contact URL").fill(site.producer.url)
    page.get_by_label("Producer (audience source)").select_option("pull")
    page.get_by_label("email", exact=True).check()
    page.get_by_label("Attributes").fill("first_name, country")
    page.get_by_label("Credential").fill("crm-token")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="CRM is registered")).to_be_visible()
    expect(page.get_by_label("Endpoint key", exact=True)).to_have_value(re.compile(r"^aex_"))
    page.get_by_role("link", name="Continue to the endpoint").click()
    page.get_by_role("button", name="Verify").click()
    verification = page.locator("#verification")
    expect(verification).to_contain_text("passed")
    expect(verification).to_contain_text("GET /audiences")
    expect(verification).to_contain_text("2 audiences listed")


def register_consumer(page, site) -> None:
    page.goto(f"{site.url}/endpoints/new")
    page.get_by_label("Name", exact=True).fill("Ads")
    page.get_by_label("Contact URL").fill(site.consumer.url)
    page.get_by_label("Consumer (audience destination)").select_option("push")
    page.get_by_label("Rows per request").fill("5")
    page.get_by_label("email", exact=True).uncheck()
    page.get_by_label("email_sha256", exact=True).check()
    page.get_by_label("Attributes").fill("first_name, country")
    page.get_by_label("Credential").fill("ads-token")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Ads is registered")).to_be_visible()
    page.goto(f"{site.url}/endpoints")
    rows = page.locator("#endpoints tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Ads")).to_contain_text("PUSH")


def find_audience(page, site, words: str, name: str) -> None:
    page.goto(f"{site.url}/audiences")
    page.get_by_label("Search").fill(words)
    page.get_by_label("Tag").select_option("vip" if "Loyal" in name else "crm")
    page.get_by_role("button", name="Search").click()
    results = page.locator("#results > li")
    expect(results).to_have_count(1)
    results.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def wizard_to_ads(page) -> None:
    page.get_by_role("link", name="Share this audience").click()
    page.get_by_label("Destination endpoint").select_option(label="Ads")
    expect(page.locator("#dest-info")).to_contain_text("email_sha256")


def test_share_an_audience_and_watch_its_job(site, page):
    login(page, site)
    expect(page.get_by_role("heading", name="Start here")).to_be_visible()
    register_producer(page, site)
    register_consumer(page, site)

    find_audience(page, site, "loyal", "Loyal customers")
    expect(page.locator("#description")).to_contain_text("three or more orders")
    expect(page.locator("#size")).to_contain_text("23 people")
    expect(page.get_by_text("Not shared yet.")).to_be_visible()

    wizard_to_ads(page)
    # mapping pre-filled by name: email is hashed for a destination that only takes hashes
    expect(page.get_by_label("Target for email")).to_have_value("email_sha256")
    expect(page.get_by_label("Transforms for email")).to_have_value("normalize_email, sha256")
    expect(page.get_by_label("Target for first_name")).to_have_value("first_name")
    expect(page.get_by_label("Name at the destination")).to_have_value("Loyal customers")
    expect(page.locator("#dest-info")).to_contain_text("must produce at least one")

    preview = page.locator("#schedule-preview")
    page.get_by_label("Recurring, every…").check()
    page.get_by_label("Every", exact=True).fill("2")
    expect(preview).to_contain_text("Every 2 hours")
    expect(preview.locator("li")).to_have_count(5)
    expect(page.get_by_label("Send only changes since the last successful run")).to_be_checked()
    page.get_by_label("Recurring, on a calendar (cron)").check()
    page.get_by_label("Cron expression").fill("30 7 * * 1-5")
    page.get_by_label("Time zone").fill("Europe/Paris")
    expect(preview).to_contain_text("Every weekday (Monday to Friday) at 07:30 (Europe/Paris)")
    page.get_by_label("Now", exact=True).check()
    expect(preview).to_contain_text("Once, as soon as the share is created")
    page.get_by_label("Send only changes since the last successful run").uncheck()
    page.get_by_role("button", name="Create share").click()

    # the job page follows the job live (the consumer answers slowly, so it is still running)
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]+$"))
    state = page.locator("#job-state")
    assert page.locator("#job").get_attribute("data-terminal") == "false"
    expect(state).to_have_text("Partially succeeded", timeout=30_000)
    expect(page.locator("#job-progress")).to_have_attribute("value", "100")
    expect(page.locator("#count-received")).to_have_text("23")
    expect(page.locator("#count-rejected")).to_have_text("2")
    expect(page.locator("#count-duplicates")).to_have_text("1")
    expect(page.locator("#count-delivered")).to_have_text("20")
    expect(page.locator("#events")).to_contain_text("Partially succeeded:")  # a label, not the state name
    expect(page.locator("#cancel-form")).to_be_hidden()
    delivered = site.consumer.app.consumer.path_for("Loyal customers").read_text().splitlines()
    assert len(delivered) == 21  # header + 20 distinct people
    assert delivered[0].split(",")[0] == "email_sha256"

    with page.expect_download() as info:
        page.get_by_role("link", name="Download rejects").click()
    rejects = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert len(rejects) == 2
    assert {r["first_name"] for r in rejects} == {"Mallory", "Nobody"}

    # the audience page lists the share; the shares list pauses, resumes and runs it
    page.goto(f"{site.url}/audiences")
    page.get_by_role("link", name="Loyal customers").click()
    expect(page.locator("#audience-shares")).to_contain_text("Ads")
    page.goto(f"{site.url}/shares")
    row = page.locator("#shares tbody tr")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("Share paused.")
    expect(row).to_contain_text("paused")
    row.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text("Share resumed.")
    row.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]+$"))
    # the producer answers 304 for unchanged data: the run succeeds without sending anything again
    expect(page.locator("#job-state")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#events")).to_contain_text("no change")
    page.goto(f"{site.url}/jobs")
    expect(page.locator("#jobs tbody tr")).to_have_count(2)

    # a clean audience goes all the way to "succeeded"
    find_audience(page, site, "newsletter", "Newsletter readers")
    wizard_to_ads(page)
    expect(page.get_by_label("Target for email")).to_have_value("email_sha256")
    page.get_by_role("button", name="Create share").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]+$"))
    expect(page.locator("#job-state")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#count-delivered")).to_have_text("5")
    expect(page.locator("#count-rejected")).to_have_text("0")
    expect(page.get_by_role("link", name="Download rejects")).to_be_hidden()
