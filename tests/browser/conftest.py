"""Browser fixtures: the exchange with its workers on a loopback port, two accounts, reference endpoints.

Each test module gets its own site (a fresh database); Chromium is launched once per session and
each test gets a fresh browser context (no shared cookies). Tests are skipped with the reason when
``/usr/bin/chromium`` is missing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exchange.app import create_app
from exchange.auth.keys import create_account
from exchange.auth.users import create_user
from exchange.db import upgrade
from exchange.runtime import Runtime
from exchange.toolkit.reference_endpoint import ReferenceEndpoint
from exchange.web.headless import DESKTOP, LiveServer, chromium_missing, launch, sign_in
from tests.conftest import make_config

PASSWORD = "correct-horse-1"
TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}

# 20 good people, one duplicate (Alice again after normalisation) and two bad rows
GOOD = [(f"person{i}@example.com", f"Person{i}", "FR" if i % 2 else "DE") for i in range(20)]
LOYAL_CSV = "email,first_name,country\n" + "".join(f"{e},{n},{c}\n" for e, n, c in GOOD) + (
    " PERSON0@Example.com,Again,FR\n"  # duplicate of person0 after normalize_email
    "not-an-email,Mallory,FR\n"         # rejected: not an email
    ",Nobody,DE\n"                      # rejected: no identifier
)
LOYAL_META = ('{"name": "Loyal customers", "description": "Customers with three or more orders this year.", '
              '"tags": ["crm", "vip"]}')
NEWSLETTER_CSV = "email,first_name\n" + "".join(f"reader{i}@example.org,Reader{i}\n" for i in range(5))
NEWSLETTER_META = '{"name": "Newsletter readers", "description": "Opted in to the weekly letter.", "tags": ["crm"]}'


class SlowConsumer(ReferenceEndpoint):
    """A PUSH consumer that takes its time per part, so the job page is seen while it runs."""

    delay = 0.4

    def wsgi(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            time.sleep(self.delay)
        return super().wsgi(environ, start_response)


@dataclass
class Site:
    url: str
    rt: Runtime
    producer: ReferenceEndpoint
    consumer: ReferenceEndpoint
    accounts: dict = field(default_factory=dict)  # name -> (account id, api token, user email)
    notes: dict = field(default_factory=dict)


def write_producer_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loyal_customers.csv").write_text(LOYAL_CSV)
    (folder / "loyal_customers.json").write_text(LOYAL_META)
    (folder / "newsletter.csv").write_text(NEWSLETTER_CSV)
    (folder / "newsletter.json").write_text(NEWSLETTER_META)


@pytest.fixture(scope="session")
def playwright_browser():
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, playwright_browser):
    tmp = tmp_path_factory.mktemp("web")
    cfg = make_config(tmp, workers=2, max_attempts=3)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    write_producer_folder(tmp / "crm")
    producer = ReferenceEndpoint(producer_dir=tmp / "crm", credential="crm-token").start()
    consumer = SlowConsumer(consumer_dir=tmp / "ads", credential="ads-token").start()
    server = LiveServer(app).start()
    s = Site(url=server.url, rt=rt, producer=producer, consumer=consumer)
    with rt.db.session() as db:
        for name, email in (("Acme", "alice@acme.test"), ("Other", "bob@other.test")):
            account, token = create_account(db, name)
            create_user(db, account.id, email, PASSWORD)
            s.accounts[name] = (account.id, token, email)
    yield s
    server.stop()
    producer.stop()
    consumer.stop()
    rt.shutdown()


@pytest.fixture
def context(playwright_browser):
    ctx = playwright_browser.new_context(viewport=DESKTOP, accept_downloads=True)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


def login(page, site: Site, account: str = "Acme") -> None:
    sign_in(page, site.url, site.accounts[account][2], PASSWORD)


def wait_terminal(rt: Runtime, job_id: str, timeout: float = 30.0) -> str:
    from exchange.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.session() as db:
            state = db.get(Job, job_id).state
        if state in TERMINAL:
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")
