"""``exchange-toolkit`` against a live exchange on loopback: every command, bad input, network errors."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from exchange.demo import SAMPLE_DIR
from exchange.toolkit.cli import main
from exchange.toolkit.reference_endpoint import ReferenceEndpoint

ROOT = Path(__file__).resolve().parents[2]
MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]
GOOD = "email,country\na@example.com,FR\nB@example.com ,DE\nbad-email,FR\n"


@pytest.fixture
def cfg_file(tmp_path) -> Path:
    return tmp_path / "config" / "exchange-toolkit.json"


@pytest.fixture
def cli(live, account_key, cfg_file):
    """Run the CLI in-process with a clean environment; ``key=`` switches to another key."""
    def run(*args: str, key: str | None = account_key, url: str | None = live.url, **env: str) -> Result:
        base = {"EXCHANGE_TOOLKIT_URL": None, "EXCHANGE_TOOLKIT_KEY": None,
                "EXCHANGE_TOOLKIT_CONFIG": str(cfg_file)}
        prefix = [*(["--url", url] if url else []), *(["--key", key] if key else [])]
        return CliRunner().invoke(main, [*prefix, *args], env={**base, **env})
    return run


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def as_json(result: Result):
    return json.loads(ok(result).stdout)


def push_setup(client, live, tmp_path, csv_text: str = GOOD) -> dict:
    """A PUSH producer with data, a PULL consumer, and the audience id; returns ids and keys."""
    producer = client.register_endpoint({"name": "CDP", "producer": {"transport": "push"},
                                         "identifiers": ["email"], "attributes": ["country"]})
    (tmp_path / "src.csv").write_text(csv_text)
    live.client(producer["endpoint_key"]).upload_audience_data(producer["id"], "loyal", tmp_path / "src.csv")
    consumer = client.register_endpoint({"name": "Warehouse", "consumer": {"transport": "pull"},
                                         "identifiers": ["email_sha256"], "attributes": ["country"]})
    audience = client.search_audiences(producer=producer["id"]).items[0]
    share_file = tmp_path / "share.json"
    share_file.write_text(json.dumps({"audience_id": audience["id"], "destination_id": consumer["id"],
                                      "destination_audience": "Loyal", "mapping": MAPPING,
                                      "reject_threshold": 0.5}))
    return {"consumer_key": consumer["endpoint_key"], "consumer_id": consumer["id"], "share_file": share_file,
            "audience_id": audience["id"]}


# --- configuration -----------------------------------------------------------------------------
def test_configure_writes_a_private_file_used_by_later_commands(cli, live, account_key, cfg_file, closed_port):
    result = ok(cli("configure", "--url", live.url, "--key", account_key, url=None, key=None))
    assert str(cfg_file) in result.output
    assert json.loads(cfg_file.read_text()) == {"url": live.url, "key": account_key}
    assert stat.S_IMODE(cfg_file.stat().st_mode) == 0o600
    assert ok(cli("endpoints", "list", url=None, key=None)).output.strip() == "(none)"
    # the environment beats the file, and --url beats the environment
    bad = f"http://127.0.0.1:{closed_port}"
    assert cli("--retries", "0", "endpoints", "list", url=None, key=None,
               EXCHANGE_TOOLKIT_URL=bad).exit_code == 3
    assert ok(cli("endpoints", "list", key=None, EXCHANGE_TOOLKIT_URL=bad)).exit_code == 0


def test_configure_refuses_a_key_the_exchange_rejects(cli, live, cfg_file):
    result = cli("configure", "--url", live.url, "--key", "aex_wrong_key", url=None, key=None)
    assert result.exit_code == 1 and "401" in result.stderr and not cfg_file.exists()


def test_configure_prompts_for_missing_values(cli, live, account_key, cfg_file):
    result = CliRunner().invoke(main, ["configure", "--no-check"], input=f"{live.url}\n{account_key}\n",
                                env={"EXCHANGE_TOOLKIT_CONFIG": str(cfg_file)})
    assert result.exit_code == 0, result.output
    assert json.loads(cfg_file.read_text())["key"] == account_key


@pytest.mark.parametrize(("args", "message"), [
    (["endpoints", "list"], "no exchange URL"),
    (["--url", "ftp://example.com", "endpoints", "list"], "http://"),
    (["deliveries", "ack", "d1", "--accepted", "-1"], "-1"),
    (["deliveries", "list", "--state", "bogus"], "bogus"),
    (["push", "e1", "a1", "/no/such/file.csv"], "does not exist"),
    (["endpoints", "register", "--producer", "push"], "--name"),
    (["no-such-command"], "No such command"),
    (["serve-endpoint", "--port", "0"], "producer folder, a consumer folder"),
])
def test_bad_arguments_exit_2_with_a_message(cli, args, message):
    result = cli(*args, url=None, key=None)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_an_unreadable_config_file_is_reported(cli, cfg_file):
    cfg_file.parent.mkdir(parents=True)
    cfg_file.write_text("{not json")
    result = cli("endpoints", "list", url=None, key=None)
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


def test_network_errors_exit_3(cli, closed_port):
    result = cli("--retries", "1", "deliveries", "list", url=f"http://127.0.0.1:{closed_port}")
    assert result.exit_code == 3 and "cannot reach the exchange" in result.stderr


def test_problem_documents_exit_1(cli):
    missing = cli("deliveries", "download", "nope")
    assert missing.exit_code == 1 and "404" in missing.stderr
    assert cli("jobs", "show", "nope").exit_code == 1
    assert "401" in cli("endpoints", "list", key="aex_bad_key").stderr


# --- endpoints and audiences -------------------------------------------------------------------
def test_endpoints_register_list_show(cli, tmp_path):
    made = ok(cli("endpoints", "register", "--name", "Ads", "--consumer", "push", "--contact-url",
                  "http://127.0.0.1:9/x", "--identifier", "email_sha256", "--attribute", "country", "--gzip",
                  "--max-rows-per-request", "500", "--credential", "tok"))
    assert "endpoint key (shown once" in made.output and "aex_" in made.output
    body = tmp_path / "ep.json"
    body.write_text(json.dumps({"name": "from file", "producer": {"transport": "push"},
                                "identifiers": ["email"]}))
    created = as_json(cli("--json", "endpoints", "register", "--file", str(body), "--name", "CDP"))
    assert created["name"] == "CDP" and created["endpoint_key"]
    listed = as_json(cli("--json", "endpoints", "list"))
    ads = next(e for e in listed if e["name"] == "Ads")
    assert ads["consumer"] == {"transport": "push", "gzip": True, "max_rows_per_request": 500,
                               "replace": True, "ack_timeout_seconds": None}
    assert "CDP" in ok(cli("endpoints", "list", "--role", "producer")).output
    assert as_json(cli("--json", "endpoints", "show", created["id"]))["id"] == created["id"]
    invalid = cli("endpoints", "register", "--name", "x", "--producer", "pull", "--identifier", "email")
    assert invalid.exit_code == 1 and "contact_url" in invalid.stderr


def test_verify_refresh_search_and_publish(cli, live, tmp_path):
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "vip.csv").write_text(GOOD)
    with ReferenceEndpoint(producer_dir=tmp_path / "crm", credential="crm-tok") as crm:
        crm_url = crm.url
        ep = as_json(cli("--json", "endpoints", "register", "--name", "CRM", "--producer", "pull",
                         "--contact-url", crm.url, "--identifier", "email", "--credential", "crm-tok"))
        assert "passes verification" in ok(cli("endpoints", "verify", ep["id"])).output
        (tmp_path / "crm" / "more.csv").write_text(GOOD)
        assert "found 2 audiences (1 new" in ok(cli("endpoints", "refresh", ep["id"])).output
    assert {a["external_id"] for a in as_json(cli("--json", "audiences", "search", "--producer", ep["id"]))} == {
        "vip", "more"}
    broken = as_json(cli("--json", "endpoints", "register", "--name", "Gone", "--producer", "pull",
                         "--contact-url", crm_url, "--identifier", "email"))
    failed = cli("endpoints", "verify", broken["id"])  # nothing listens there any more
    assert failed.exit_code == 1 and "FAILS" in failed.output

    cdp = as_json(cli("--json", "endpoints", "register", "--name", "CDP", "--producer", "push",
                      "--identifier", "email"))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"description": "from a file", "tags": ["a"]}))
    published = ok(cli("audiences", "publish", cdp["id"], "churn", "--file", str(meta), "--name", "Churners",
                       "--identifier", "email", "--tag", "risk", "--size", "10", key=cdp["endpoint_key"]))
    assert "published audience churn" in published.output
    [aud] = as_json(cli("--json", "audiences", "search", "Churners"))
    assert (aud["description"], aud["tags"], aud["size"]) == ("from a file", ["risk"], 10)


def test_push_streams_a_large_file_with_a_progress_bar(cli, live, client, tmp_path):
    cdp = client.register_endpoint({"name": "CDP", "producer": {"transport": "push"}, "identifiers": ["email"]})
    big = tmp_path / "big.csv"
    with big.open("w") as fh:
        fh.write("email,country\n")
        for i in range(60_000):
            fh.write(f"user{i}@example.com,FR\n")
    assert big.stat().st_size > 1024 * 1024
    import hashlib
    result = ok(cli("push", cdp["id"], "big", str(big), key=cdp["endpoint_key"]))
    assert "uploaded 60000 rows" in result.stdout
    assert hashlib.sha256(big.read_bytes()).hexdigest() in result.stdout
    assert "uploading big.csv" in result.stderr  # the progress bar's label
    zipped = as_json(cli("--json", "push", "--gzip", "--no-progress", cdp["id"], "big", str(big),
                         key=cdp["endpoint_key"]))
    assert zipped["rows"] == 60_000
    other = client.register_endpoint({"name": "Other", "producer": {"transport": "push"}, "identifiers": ["email"]})
    refused = cli("push", cdp["id"], "big", str(big), key=other["endpoint_key"])
    assert refused.exit_code == 1 and "403" in refused.stderr


# --- shares, jobs and deliveries ---------------------------------------------------------------
def test_share_deliveries_download_ack_and_job_commands(cli, live, client, tmp_path):
    s = push_setup(client, live, tmp_path)
    share = as_json(cli("--json", "shares", "create", "--file", str(s["share_file"])))
    job_id = share["last_job_id"]
    job = client.wait_job(job_id, 30, interval=0.05, until={"awaiting_consumer", "failed"})
    assert job["state"] == "awaiting_consumer", job
    assert share["id"] in ok(cli("shares", "list")).output
    [ready] = as_json(cli("--json", "deliveries", "list", "--state", "ready", key=s["consumer_key"]))
    assert ok(cli("deliveries", "list", key=s["consumer_key"])).output.count(ready["id"]) == 1
    out = tmp_path / "out.csv"
    assert str(out) in ok(cli("deliveries", "download", ready["id"], "--out", str(out), key=s["consumer_key"])).output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == ready["row_count"] == 2
    acked = ok(cli("deliveries", "ack", ready["id"], "--accepted", "2", "--message", "ok", key=s["consumer_key"]))
    assert "2 accepted, 0 rejected" in acked.output
    watched = ok(cli("jobs", "watch", job_id, "--interval", "0.05"))
    assert "partially_succeeded" in watched.stdout and "delivered 2" in watched.stdout
    assert "rejected 1" in ok(cli("jobs", "show", job_id)).output
    assert "state" in ok(cli("jobs", "events", job_id)).output
    assert job_id in ok(cli("jobs", "list", "--share-id", share["id"])).output
    rejects = ok(cli("jobs", "rejects", job_id, "--out", str(tmp_path)))
    assert "bad-email" in (tmp_path / f"rejects-{job_id}.csv").read_text() and "saved" in rejects.output
    again = ok(cli("shares", "run", share["id"])).output.split()[1]
    client.wait_job(again, 30, interval=0.05, until={"awaiting_consumer", "failed"})
    assert cli("jobs", "watch", again, "--timeout", "0.2", "--interval", "0.05").exit_code == 4
    cancelled = ok(cli("jobs", "cancel", again))
    assert f"job {again}" in cancelled.output
    assert cli("jobs", "watch", again, "--interval", "0.05").exit_code == 1  # cancelled


def test_jobs_watch_exits_1_when_the_job_fails(cli, live, client, tmp_path):
    s = push_setup(client, live, tmp_path, csv_text="email,country\nnope,FR\nalso-nope,DE\n")
    share = as_json(cli("--json", "shares", "create", "--file", str(s["share_file"])))
    result = cli("jobs", "watch", share["last_job_id"], "--interval", "0.05")
    assert result.exit_code == 1 and "failed" in result.stdout and "error:" in result.stdout


def test_pull_downloads_and_acks_every_ready_delivery(cli, live, client, tmp_path):
    s = push_setup(client, live, tmp_path)
    jobs = [client.create_share(json.loads(s["share_file"].read_text()))["last_job_id"],
            client.create_share({**json.loads(s["share_file"].read_text()), "destination_audience": "Other"})[
                "last_job_id"]]
    for job_id in jobs:
        client.wait_job(job_id, 30, interval=0.05, until={"awaiting_consumer", "failed"})
    out = tmp_path / "pulled"
    result = ok(cli("--json", "pull", "--out", str(out), key=s["consumer_key"]))
    pulled = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(pulled) == 2 and all(Path(p["path"]).parent == out and p["rows"] == 2 for p in pulled)
    assert sorted(p.name.split("-")[0] for p in out.iterdir()) == ["Loyal", "Other"]
    for job_id in jobs:
        assert client.wait_job(job_id, 30, interval=0.05)["state"] == "partially_succeeded"
    assert ok(cli("pull", "--out", str(out), key=s["consumer_key"])).stdout == ""


def _env(live, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_TOOLKIT")}
    return {**env, "EXCHANGE_TOOLKIT_URL": live.url, "EXCHANGE_TOOLKIT_KEY": key, "PYTHONPATH": str(ROOT)}


def test_pull_watch_pulls_new_deliveries_until_interrupted(live, client, tmp_path):
    s = push_setup(client, live, tmp_path)
    out = tmp_path / "watched"
    proc = subprocess.Popen([sys.executable, "-m", "exchange.toolkit.cli", "pull", "--out", str(out), "--watch",
                             "--interval", "0.2"], env=_env(live, s["consumer_key"]), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        job_id = client.create_share(json.loads(s["share_file"].read_text()))["last_job_id"]
        assert client.wait_job(job_id, 30, interval=0.1)["state"] == "partially_succeeded"  # acked by the loop
        assert len(list(out.glob("Loyal-*.csv"))) == 1
        # the job ends when the exchange records the ack; the command prints its line just after
        deadline = time.monotonic() + 15
        while not any("acknowledged" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        reader.join(timeout=5)
        stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "stopped" in stderr and any("acknowledged" in line for line in lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_endpoint_serves_a_producer_folder(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exchange.toolkit.cli", "serve-endpoint", "--port", str(port),
                             "--producer-dir", str(SAMPLE_DIR), "--consumer-dir", str(tmp_path / "in"),
                             "--credential", "s3cret"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env_plain())
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert requests.get(f"{base}/audiences", timeout=5).status_code == 401
        listed = requests.get(f"{base}/audiences", headers={"Authorization": "Bearer s3cret"}, timeout=5).json()
        assert {a["id"] for a in listed["audiences"]} >= {"loyal_customers", "newsletter_subscribers"}
        pushed = requests.post(f"{base}/audiences/Ads/data?mode=add", data=b"email_sha256\n" + b"a" * 64 + b"\n",
                               headers={"Authorization": "Bearer s3cret", "Content-Type": "text/csv"}, timeout=5)
        assert pushed.status_code == 200 and (tmp_path / "in" / "Ads.csv").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in err


def _env_plain() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_adapters_lists_partner_adapters(cli):
    result = ok(cli("adapters"))
    assert all(name in result.output for name in ("equativ", "batch", "stackadapt", "equals"))
