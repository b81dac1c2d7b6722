"""``/readyz`` names every failed dependency; ``exchange blobs init`` creates the bucket; misconfigured
processes refuse to start with one line (issue 18 §1)."""
from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from exchange.app import create_app
from exchange.cli import main
from exchange.health import DOWN, MISCONFIGURED, check_all
from exchange.runtime import Runtime
from tests.conftest import make_config, prepare_db
from tests.scaled.deployment import free_port


def _ready(rt):
    resp = create_app(runtime=rt).test_client().get("/readyz")
    return resp.status_code, resp.get_json()


def test_ready_with_every_check_named(runtime):
    status, body = _ready(runtime)
    assert status == 200, body
    assert body == {"status": "ready", "checks": {"database": "ok", "blobs": "ok"}}


def test_missing_bucket_is_not_ready_then_blobs_init_fixes_it(tmp_path, migrated_template, s3_server,
                                                             bucket_name, monkeypatch):
    url, client = s3_server
    cfg = make_config(tmp_path, blob_url=f"s3://{bucket_name}/exchange", s3_endpoint_url=url)
    prepare_db(cfg, migrated_template)
    rt = Runtime(cfg)
    status, body = _ready(rt)
    assert status == 503
    assert body["errors"] == {"blobs": [f"bucket {bucket_name!r} does not exist: create it with "
                                        "`exchange blobs init`"]}
    assert body["type"].endswith("/not-ready") and "blobs:" in body["detail"]

    for key, value in {"EXCHANGE_BLOB_URL": f"s3://{bucket_name}/exchange", "EXCHANGE_S3_ENDPOINT_URL": url,
                       "EXCHANGE_VAR_DIR": str(tmp_path / "var")}.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["blobs", "init"])
    assert result.exit_code == 0, result.output
    assert f"bucket {bucket_name!r} created" in result.output and "probe passed" in result.output
    again = CliRunner().invoke(main, ["blobs", "init"])  # idempotent
    assert again.exit_code == 0 and f"bucket {bucket_name!r} exists" in again.output

    status, body = _ready(rt)
    assert status == 200, body
    # the probe cleaned up after itself
    assert client.list_objects_v2(Bucket=bucket_name).get("KeyCount", 0) == 0
    rt.shutdown()


def test_database_behind_or_down_is_named(tmp_path):
    cfg = make_config(tmp_path)  # no migrations applied
    rt = Runtime(cfg)
    status, body = _ready(rt)
    assert status == 503
    assert body["errors"]["database"] == ["database has no schema: run `exchange db upgrade`"]
    rt.shutdown()
    port = free_port()  # nothing listens there
    down = Runtime(make_config(tmp_path, database_url=f"postgresql+psycopg://u@127.0.0.1:{port}/x"))
    [db, blobs] = check_all(down)
    assert db.status == DOWN and "Database unreachable" in db.reason and blobs.ok
    down.shutdown()


def test_broker_nobody_listens_is_not_ready(runtime):
    port = free_port()
    runtime.config.executor = "celery"
    runtime.config.broker_url = f"redis://127.0.0.1:{port}/0"
    status, body = _ready(runtime)
    assert status == 503
    [reason] = body["errors"]["broker"]
    assert f"broker unreachable at redis://127.0.0.1:{port}/0" in reason
    assert set(body["errors"]) == {"broker"}  # database and blobs pass
    runtime.config.broker_url = ""
    [*_, broker] = check_all(runtime)
    assert broker.status == MISCONFIGURED


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exchange.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_serve_and_worker_refuse_to_start_when_misconfigured(tmp_path, s3_server, bucket_name):
    import os

    url, _ = s3_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env.update(EXCHANGE_VAR_DIR=str(tmp_path / "var"), EXCHANGE_BLOB_URL=f"s3://{bucket_name}/x",
               EXCHANGE_S3_ENDPOINT_URL=url)
    out = _cli(env, "serve", "--port", str(free_port()))
    assert out.returncode == 3
    assert out.stderr.strip().splitlines()[-1] == (
        f"exchange serve: cannot start: blobs: bucket {bucket_name!r} does not exist: create it with "
        "`exchange blobs init`")
    env.update(EXCHANGE_EXECUTOR="celery", EXCHANGE_BROKER_URL="redis://127.0.0.1:1/0")
    env.pop("EXCHANGE_BLOB_URL")
    out = _cli(env, "worker")
    assert out.returncode == 3
    assert out.stderr.strip().splitlines()[-1] == (
        "exchange worker: cannot start: database: database has no schema: run `exchange db upgrade`")


def test_share_creation_does_not_wait_for_a_dead_broker(runtime, api):
    """A broker where nothing listens: /readyz says so, and creating a share still answers at once
    (it used to wait ~2-4 s on the publish); the job is safe in the database meanwhile."""
    import time

    from tests.e2e.conftest import audience_by_external, register
    from tests.e2e.test_deliveries import MAPPING, SOURCE

    runtime.config.executor = "celery"
    runtime.config.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    runtime._executor = None  # rebuilt for the celery executor
    p = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"], attributes=["country"])
    api.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=SOURCE.encode(),
                   headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    c = register(api, name="Warehouse", identifiers=["email_sha256"], consumer={"transport": "pull"})
    started = time.monotonic()
    share = api.post("/v1/shares", json={"audience_id": audience_by_external(api, "a")["id"],
                                         "destination_id": c["id"], "mapping": MAPPING})
    took = time.monotonic() - started
    assert share.status_code == 201 and took < 0.5, took
    assert api.get(f"/v1/jobs/{share.json['last_job_id']}").json["state"] == "queued"
    assert set(_ready(runtime)[1]["errors"]) == {"broker"}
