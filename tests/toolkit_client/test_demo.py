"""``exchange demo`` run headless: the ad platform holds exactly the expected rows; a rerun reuses it all."""
from __future__ import annotations

import csv
import hashlib
import json
import stat

from click.testing import CliRunner

from exchange.demo import SAMPLE_DIR, run_demo
from exchange.toolkit.cli import main as toolkit
from tests.conftest import make_config
from tests.toolkit_client.conftest import LiveExchange


def expected_rows(file_name: str, attribute: str) -> dict[str, str]:
    """email_sha256 → attribute, computed independently from a CRM file (SPEC §6 normalization):
    trimmed, lower-cased, SHA-256; malformed rows and invalid emails rejected; duplicates once."""
    expected: dict[str, str] = {}
    with (SAMPLE_DIR / file_name).open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        for fields in reader:
            if len(fields) != len(header):
                continue  # malformed row: rejected
            row = dict(zip(header, fields, strict=True))
            email = row["email"].strip().lower()
            local, at, domain = email.partition("@")
            if not at or not local or not domain or "@" in domain or " " in email:
                continue  # invalid email: rejected
            expected.setdefault(hashlib.sha256(email.encode()).hexdigest(), row[attribute])
    return expected


def test_demo_delivers_exact_rows_and_reuses_state_on_restart(tmp_path):
    config = make_config(tmp_path, allow_private_urls=False)
    lines: list[str] = []
    info = run_demo(config, serve=False, out=lines.append)
    printed = "\n".join(lines)
    assert info.api_key in printed and info.password in printed and "demo@example.com" in printed
    assert str(info.ads_file) in printed and info.url in printed

    ads = info.jobs["ads_now"]
    assert ads["state"] == "partially_succeeded", ads
    with info.ads_file.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    expected = expected_rows("loyal_customers.csv", "country")
    assert len(rows) == len(expected) == ads["counts"]["delivered"]
    assert {r["email_sha256"]: r["country"] for r in rows} == expected
    assert ads["counts"]["rejected"] == 3  # malformed email, wrong field count, no identifier

    state_file = tmp_path / "var" / "demo.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert info.jobs["warehouse_hourly"]["state"] == "awaiting_consumer"

    again = run_demo(config, serve=False, out=lines.append)
    assert again.reused and again.account_id == info.account_id and again.api_key == info.api_key
    assert again.endpoint_ids == info.endpoint_ids and again.share_ids == info.share_ids
    assert again.password == info.password and again.jobs == {}  # nothing re-run
    saved = json.loads(state_file.read_text())
    assert saved["account_id"] == info.account_id

    # demo.json lost, database kept: the demo adopts what exists (new keys), duplicating nothing
    state_file.unlink()
    adopted = run_demo(config, serve=False, out=lines.append)
    assert adopted.account_id == info.account_id and adopted.endpoint_ids == info.endpoint_ids
    assert adopted.share_ids == info.share_ids and adopted.api_key != info.api_key
    assert adopted.password != info.password and adopted.jobs == {}

    from exchange.db import Database
    from exchange.models import Account, Endpoint, Share
    db = Database(config.database_url)
    with db.session() as s:
        assert s.query(Account).count() == 2  # the Demo account and the provider of its two applications
        assert s.query(Endpoint).count() == 3 and s.query(Share).count() == 2
        # the CRM and the ad platform are connected from approved applications: by key, by OAuth consent
        connected = {e.name: e.credential_type for e in s.query(Endpoint) if e.application_id}
        assert connected == {"Demo CRM": "key", "Demo ad platform": "oauth2"}
    db.dispose()

    # the warehouse pulls its delivery with the toolkit, as the printed command says
    live = LiveExchange(tmp_path)  # the same var_dir: the demo's database and blobs
    try:
        result = CliRunner().invoke(toolkit, ["--url", live.url, "--key", adopted.warehouse_key, "--json",
                                              "pull", "--out", str(adopted.warehouse_dir)])
        assert result.exit_code == 0, result.output
        [pulled] = [json.loads(line) for line in result.stdout.splitlines()]
        with open(pulled["path"], newline="", encoding="utf-8") as fh:
            warehouse = {r["email_sha256"]: r["first_name"] for r in csv.DictReader(fh)}
        assert warehouse == expected_rows("newsletter_subscribers.csv", "first_name")
        assert len(warehouse) == pulled["rows"]
        job = live.client(adopted.api_key).wait_job(info.jobs["warehouse_hourly"]["id"], 30, interval=0.05)
        assert job["state"] in ("succeeded", "partially_succeeded")
    finally:
        live.stop()
