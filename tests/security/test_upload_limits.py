"""Upload-time CSV limits, record counting, gzip bounds and compressed storage (PUSH producer uploads).

Every refused upload answers 422/413 *before* a version becomes current: the audience keeps its
previous data, version and row count, and no blob or temporary part is left behind.
"""
from __future__ import annotations

import csv
import gzip
import io
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.catalog.uploads import UploadStats, measured
from exchange.transfer.csvio import CsvLimits, open_csv
from tests.conftest import new_account

LIMITS = CsvLimits()


@pytest.fixture
def producer(make_exchange):
    rt, app = make_exchange(max_decompressed_bytes=64 << 20)
    api = new_account(rt, app.test_client(), "A")
    ep = api.post("/v1/endpoints", json={"name": "P", "contact_url": "http://p.example",
                                         "producer": {"transport": "push"}, "identifiers": ["email"]}).json
    url = f"/v1/endpoints/{ep['id']}/audiences/a/data"
    first = api.client.put(url, data=b"email\na@x.io\nb@x.io\n", headers={
        "Authorization": f"Bearer {api.token}", "Content-Type": "text/csv"})
    assert first.status_code == 200 and first.json["rows"] == 2, first.json

    def put(body, **headers):
        return api.client.put(url, data=body, headers={"Authorization": f"Bearer {api.token}",
                                                       "Content-Type": "text/csv", **headers})

    def current():
        aud = api.get("/v1/audiences", query_string={"q": "a"}).json["items"][0]
        return aud

    put.rt, put.first, put.current = rt, first.json, current
    return put


def _unchanged(producer):
    aud = producer.current()
    assert aud["version"] == producer.first["version"] and aud["size"] == 2, aud
    files = [p for p in (producer.rt.config.var_dir / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1 and producer.first["version"] in files[0].name, files  # no new blob, no part


BAD = {
    "2 MiB line": b"email\n" + b"a" * (2 << 20) + b"@x.io\n",
    "5,000 columns": (",".join(f"c{i}" for i in range(5000)) + "\n").encode() + b"x\n",
    "100,000 columns": (",".join(f"c{i}" for i in range(100_000)) + "\n").encode(),
    "3 MB unterminated quote on one line": b'email\n"' + b"a" * 3_000_000 + b"\n",
    "3 MB unterminated quote over lines": b'email\n"' + b"a@x.io\n" * 500_000,
    "unterminated quote at the end": b'email\na@x.io\n"b@x.io\n',
    "NUL byte": b"email\na@x.io\x00\n",
    "empty": b"",
    "header only blanks": b"\n\n\n",
    "duplicate header": b"email,email\na,b\n",
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_uploads_refused_before_becoming_current(producer, name):
    r = producer(BAD[name])
    assert r.status_code == 422, (name, r.status_code, r.json)
    assert r.content_type == "application/problem+json" and r.json["detail"]
    _unchanged(producer)


def test_bad_gzip_uploads_refused(producer):
    r = producer(gzip.compress(BAD["2 MiB line"]), **{"Content-Encoding": "gzip"})
    assert r.status_code == 422 and "longer than" in r.json["detail"]
    r = producer(gzip.compress(b"email\na@x.io\n")[:-6], **{"Content-Encoding": "gzip"})
    assert r.status_code == 422 and "truncated" in r.json["detail"]
    r = producer(b"email\na@x.io\n", **{"Content-Encoding": "gzip"})
    assert r.status_code == 422 and "gzip" in r.json["detail"]
    _unchanged(producer)


def test_records_not_lines(producer):
    body = b"email,note\n" + b"\n" * 1_000_000 + b'a@x.io,"two\nlines"\r\n\r\nb@x.io,x\n\n'
    r = producer(body)
    assert r.status_code == 200 and r.json["rows"] == 2, r.json
    assert producer.current()["size"] == 2
    r = producer(b"email\n\n\na@x.io\n\nb@x.io")  # no trailing newline
    assert r.json["rows"] == 2


def test_literal_quotes_inside_fields_are_not_quoting(producer):
    r = producer(b'email,height\na@x.io,5\'11"\nb@x.io,6\'1"\n')
    assert r.status_code == 200 and r.json["rows"] == 2, r.json
    r = producer(b'email,note\na@x.io,"say ""hi""\nthere"\nb@x.io,"x"\n')
    assert r.status_code == 200 and r.json["rows"] == 2, r.json


def test_gzip_bomb_bounded_by_ratio(make_exchange):
    """A 2 MB gzip inflating to 2 GB: refused (413) once it passes 100 × the bytes received."""
    rt, app = make_exchange(max_decompressed_bytes=8 << 30)  # the absolute cap is not what stops it
    api = new_account(rt, app.test_client(), "A")
    ep = api.post("/v1/endpoints", json={"name": "P", "contact_url": "http://p.example",
                                         "producer": {"transport": "push"}, "identifiers": ["email"]}).json
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"a@x.io\n" * (1 << 17)  # 896 KiB of valid rows
    body = z.compress(b"email\n") + b"".join(z.compress(block) for _ in range(300)) + z.flush()
    assert len(body) < 500_000  # 270 MB inflated (~670x); the bound stops it after 100 x 0.4 MB
    r = api.client.put(f"/v1/endpoints/{ep['id']}/audiences/a/data", data=body, headers={
        "Authorization": f"Bearer {api.token}", "Content-Type": "text/csv", "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "times its size" in r.json["detail"], r.json
    assert api.get("/v1/audiences").json["items"] == []  # nothing became current
    leftovers = [p for p in (rt.config.var_dir / "blobs").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_gzip_absolute_cap(make_exchange):
    rt, app = make_exchange(max_decompressed_bytes=1 << 20, max_inflate_ratio=0)
    api = new_account(rt, app.test_client(), "A")
    ep = api.post("/v1/endpoints", json={"name": "P", "contact_url": "http://p.example",
                                         "producer": {"transport": "push"}, "identifiers": ["email"]}).json
    body = gzip.compress(b"email\n" + b"a@x.io\n" * 200_000)
    r = api.client.put(f"/v1/endpoints/{ep['id']}/audiences/a/data", data=body, headers={
        "Authorization": f"Bearer {api.token}", "Content-Type": "text/csv", "Content-Encoding": "gzip"})
    assert r.status_code == 413


def test_uploads_stored_compressed(producer):
    plain = b"email,country\n" + b"".join(f"user{i}@example.com,FR\n".encode() for i in range(50_000))
    r = producer(plain)
    assert r.status_code == 200 and r.json["rows"] == 50_000 and r.json["bytes"] == len(plain)
    blobs = producer.rt.blobs
    key = next(k for k in _keys(producer) if r.json["version"] in k)
    assert key.endswith(".csv.gz")
    stored = b"".join(blobs.iter_chunks(key))
    assert gzip.decompress(stored) == plain and len(stored) < len(plain) / 4
    sent = gzip.compress(plain, 6)
    r2 = producer(sent, **{"Content-Encoding": "gzip"})
    assert r2.json["unchanged"] is True  # same content, whatever the encoding
    other = plain + b"last@example.com,DE\n"
    r3 = producer(gzip.compress(other, 6), **{"Content-Encoding": "gzip"})
    key3 = next(k for k in _keys(producer) if r3.json["version"] in k)
    assert b"".join(blobs.iter_chunks(key3)) == gzip.compress(other, 6)  # a gzip body is kept as sent
    assert r3.json["rows"] == 50_001


def _keys(producer):
    root = producer.rt.config.var_dir / "blobs"
    return [str(p.relative_to(root)) for p in root.rglob("*.gz")]


def test_job_reads_compressed_upload(make_exchange, tmp_path):
    """A share of an uploaded (stored gzip) audience delivers every row."""
    from tests.fakes.protocol_endpoint import ProtocolEndpoint

    rt, app = make_exchange(executor="inline")
    api = new_account(rt, app.test_client(), "A")
    ep = api.post("/v1/endpoints", json={"name": "P", "contact_url": "http://p.example",
                                         "producer": {"transport": "push"}, "identifiers": ["email"]}).json
    rows = [f"u{i}@example.com" for i in range(300)]
    body = ("email\n\n" + "\n".join(rows) + "\n\n").encode()
    r = api.client.put(f"/v1/endpoints/{ep['id']}/audiences/a/data", data=body, headers={
        "Authorization": f"Bearer {api.token}", "Content-Type": "text/csv"})
    assert r.json["rows"] == 300
    consumer = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="ct")
    with consumer:
        dest = api.post("/v1/endpoints", json={"name": "C", "contact_url": consumer.url, "credential": "ct",
                                               "identifiers": ["email"],
                                               "consumer": {"transport": "push"}}).json
        share = api.post("/v1/shares", json={"audience_id": r.json["audience_id"], "destination_id": dest["id"],
                                             "destination_audience": "D", "mode": "add",
                                             "mapping": [{"source": "email", "target": "email"}]})
        assert share.status_code == 201, share.json
        rt.executor.drain()
        job = api.get(f"/v1/jobs/{share.json['last_job_id']}").json
        assert job["state"] == "succeeded", job
        assert job["counts"]["received"] == 300, job["counts"]


def _csv_body(rows, crlf=False):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    w.writerow(["a", "b"])
    w.writerows(rows)
    return buf.getvalue().encode()


# a lone CR outside quotes is a reader-specific corner (the reader rejects the record); left out
FIELD = st.text(alphabet=st.sampled_from(list('ab,"\n x')), max_size=8)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.lists(FIELD, min_size=1, max_size=3), max_size=12), blanks=st.integers(0, 3),
       size=st.sampled_from([1, 2, 3, 5, 8, 13, 40, 200, 5000]), crlf=st.booleans())
def test_upload_count_matches_the_reader(rows, blanks, size, crlf):
    """Upload-time record counts equal what the job's reader receives (rows plus rejects)."""
    body = _csv_body(rows, crlf).replace(b"\n", b"\n" + b"\n" * blanks, 1)
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    stats = UploadStats()
    try:
        for _ in measured(chunks, stats, max_bytes=1 << 20):
            pass
    except Exception as exc:  # noqa: BLE001
        raise AssertionError((body, exc)) from exc
    stream = open_csv([body], limits=LIMITS)
    received = sum(len(b.rows) + len(b.rejects) for b in stream.batches())
    assert stats.rows == received, (body, stats.rows, received)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(alphabet=st.sampled_from(list('ab,"\n ')), max_size=60),
       size=st.sampled_from([1, 2, 3, 7, 16, 64, 5000]))
def test_hand_written_csv_counts_match_the_reader(text, size):
    """Arbitrary quoting (literal quotes mid-field, escapes, fields over lines): when the upload is
    accepted, its row count is what the reader receives; refused only for a quote never closed."""
    body = b"h1,h2\n" + text.encode()
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    stats = UploadStats()
    try:
        for _ in measured(chunks, stats, max_bytes=1 << 20):
            pass
    except Exception as exc:  # noqa: BLE001
        assert "never closed" in str(exc), (body, exc)
        return
    stream = open_csv([body], limits=LIMITS)
    received = sum(len(b.rows) + len(b.rejects) for b in stream.batches())
    assert stats.rows == received, (body, stats.rows, received)
