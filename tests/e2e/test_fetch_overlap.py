"""Fetching a PULL source and transforming it at once: a download broken midway, a cancellation.

The job's transform reads the producer's body as it arrives (each chunk also goes to the source
blob). A break midway must leave nothing behind: the retry downloads and transforms from the first
byte, and the output, rejects and counts are exactly those of one unbroken transform of the body.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import time

import requests

from exchange.identifiers import IDENTIFIER_TYPES
from exchange.transfer.pipeline import run_transform
from tests.e2e.conftest import audience_by_external, read_rows, register, sha, wait_job
from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]
ROWS = 150_000  # about 4.5 MB: several transform blocks, so the transform is well under way at the break


def _source() -> bytes:
    lines = ["email,country"]
    for i in range(ROWS):
        if i % 997 == 5:
            lines.append(f"not an email {i},FR")  # rejected
        elif i % 1000 == 7:
            lines.append(f"User{i - 500}@Example.com,DE")  # a later copy of an earlier key
        else:
            lines.append(f"user{i}@example.com,FR")
    return ("\n".join(lines) + "\n").encode()


def _reference(tmp_path, body: bytes):
    """Output bytes, rejects bytes and counts of one unbroken transform of ``body``."""
    out, rej = tmp_path / "ref-out.csv", tmp_path / "ref-rej.csv"
    result = run_transform([body], gzip=False, rules=MAPPING, identifier_types=set(IDENTIFIER_TYPES),
                           out_path=str(out), rejects_path=str(rej))
    return out.read_bytes(), rej.read_bytes(), result.counts


def _setup(api, tmp_path, body: bytes):
    prod = ProtocolEndpoint(producer_dir=tmp_path / "p", credential="pt")
    cons = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="ct")
    prod.start()
    cons.start()
    prod.write_audience("aud", body)
    register(api, name="P", contact_url=prod.url, producer={"transport": "pull"}, identifiers=["email"],
             attributes=["country"], credential="pt")
    c = register(api, name="C", contact_url=cons.url, identifiers=["email_sha256"], attributes=["country"],
                 credential="ct", consumer={"transport": "push", "max_rows_per_request": 50_000})
    return prod, cons, c, audience_by_external(api, "aud")


def _sent_size(prod: ProtocolEndpoint) -> int:
    """How many body bytes the producer sends for the audience (gzip, as the exchange asks for it)."""
    r = requests.get(f"{prod.url}/audiences/aud/data", headers={"Authorization": "Bearer pt",
                                                               "Accept-Encoding": "gzip"}, stream=True, timeout=30)
    assert r.status_code == 200 and r.headers.get("Content-Encoding") == "gzip"
    return sum(len(c) for c in r.raw.stream(1 << 16, decode_content=False))


def _share(api, aud, c) -> str:
    r = api.post("/v1/shares", json={"audience_id": aud["id"], "destination_id": c["id"],
                                     "destination_audience": "D", "mapping": MAPPING, "mode": "add"})
    assert r.status_code == 201, r.json
    return r.json["last_job_id"]


def _leftovers(root) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(".~tmp-")]


def test_a_download_broken_midway_is_retried_from_the_start_with_the_same_output(live, tmp_path):
    body = _source()
    ref_out, ref_rej, ref_counts = _reference(tmp_path, body)
    assert ref_counts["rejected"] > 100 and ref_counts["duplicates"] > 100  # the counts are worth comparing
    prod, cons, c, aud = _setup(live, tmp_path, body)
    with prod, cons:
        sent = _sent_size(prod)  # the gzip body: the break falls inside a gzip member
        prod.script("GET", "/audiences/aud/data", [Fault(drop_after_bytes=sent * 6 // 10)])
        job_id = _share(live, aud, c)
        job = wait_job(live, job_id, timeout=120)
        assert job["state"] == "partially_succeeded", (job, live.get(f"/v1/jobs/{job_id}/events").json)

        gets = prod.requests_to("GET", "/audiences/aud/data")
        assert len(gets) == 3  # the size probe, the broken download, then one whole one
        messages = [e["message"] for e in live.get(f"/v1/jobs/{job_id}/events").json["items"]]
        # both attempts transformed while downloading; the broken one was retried after a wait
        assert sum("as it arrives" in m for m in messages) == 2, messages
        assert any(m.startswith("waiting") for m in messages), [m for m in messages if "wait" in m]

        store = live.rt.blobs
        out = store.open(f"jobs/{job_id}/output.csv").read()
        assert out == ref_out  # not one row of the broken attempt, none missing, same order
        assert store.open(f"jobs/{job_id}/rejects.csv").read() == ref_rej
        source = store.open(f"jobs/{job_id}/source.csv").read()
        assert gzip.decompress(source) == body and job["bytes"] == len(source) == sent
        for key in ("received", "valid", "rejected", "duplicates", "hashed"):
            assert job["counts"][key] == ref_counts[key], (key, job["counts"], ref_counts)
        assert job["counts"]["delivered"] == ref_counts["valid"] == ROWS - ref_counts["rejected"] - \
            ref_counts["duplicates"]
        members = [r["email_sha256"] for r in read_rows(cons.consumer_file("D"))]
        assert len(members) == len(set(members)) == ref_counts["valid"]
        assert sha("user0@example.com") in members
        assert _leftovers(store.root) == []  # the broken attempt's partial source blob is gone


def test_the_stored_output_digest_is_the_blob_digest(live, tmp_path):
    """The output is moved into the store with the transform's digest: it must be the blob's own."""
    body = _source()
    prod, cons, c, aud = _setup(live, tmp_path, body)
    with prod, cons:
        job_id = _share(live, aud, c)
        assert wait_job(live, job_id, timeout=120)["state"] == "partially_succeeded"
        from exchange.jobs.progress import read_progress
        from exchange.models import Job
        with live.rt.db.session() as s:
            progress = read_progress(s.get(Job, job_id))
        data = live.rt.blobs.open(progress.output_key).read()
        assert progress.output_sha256 == hashlib.sha256(data).hexdigest()
        assert len(prod.requests_to("GET", "/audiences/aud/data")) == 1


def test_cancelling_while_the_download_is_transformed_stops_cleanly(live, tmp_path):
    body = _source()
    prod, cons, c, aud = _setup(live, tmp_path, body)
    with prod, cons:
        prod.script("GET", "/audiences/aud/data", [Fault(stall_after_bytes=_sent_size(prod) // 2, stall=3.0)])
        job_id = _share(live, aud, c)
        wait_job(live, job_id, until={"fetching"}, timeout=30)
        deadline = time.monotonic() + 30
        while not any("as it arrives" in e["message"] for e in live.get(f"/v1/jobs/{job_id}/events").json["items"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = live.post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code in (200, 202), r.json
        job = wait_job(live, job_id, timeout=60)
        assert job["state"] == "cancelled", job
        store = live.rt.blobs
        assert not store.exists(f"jobs/{job_id}/source.csv") and not store.exists(f"jobs/{job_id}/output.csv")
        assert cons.requests_to("POST") == []
        assert _leftovers(store.root) == []
