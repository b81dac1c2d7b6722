"""S3BlobStore against moto's S3 server on loopback: single PUT, multipart, abort, ranges, retention."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from exchange.blobs import MIN_PART_SIZE, BlobInfo, BlobNotFound, InvalidBlobKey, S3BlobStore


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def fake_aws_env(monkeypatch) -> None:
    # Fake credentials only; nothing leaves loopback.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def client(s3_endpoint: str, fake_aws_env):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="exchange-blobs")
    yield s3
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="exchange-blobs"):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket="exchange-blobs", Key=obj["Key"])
    for upload in s3.list_multipart_uploads(Bucket="exchange-blobs").get("Uploads", []):
        s3.abort_multipart_upload(Bucket="exchange-blobs", Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket="exchange-blobs")


@pytest.fixture
def store(client) -> S3BlobStore:
    return S3BlobStore("exchange-blobs", "tenant-a/", client=client, part_size=MIN_PART_SIZE)


def raw_keys(client) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket="exchange-blobs").get("Contents", [])]


def test_small_stream_is_one_put_under_the_prefix(store: S3BlobStore, client) -> None:
    chunks = [b"email\n", b"a@x.example\n"]
    info = store.put_stream("jobs/1/source.csv", chunks)
    data = b"".join(chunks)
    assert info == BlobInfo("jobs/1/source.csv", len(data), hashlib.sha256(data).hexdigest())
    assert raw_keys(client) == ["tenant-a/jobs/1/source.csv"]
    assert store.size("jobs/1/source.csv") == len(data)
    assert store.exists("jobs/1/source.csv") and not store.exists("jobs/1/other")
    with store.open("jobs/1/source.csv") as fh:
        assert fh.read() == data


def test_large_stream_uses_multipart(store: S3BlobStore, client) -> None:
    block = os.urandom(1 << 20)
    chunks = [block] * 12 + [b"tail"]  # 12 MiB + 4 bytes: three parts at 5 MiB
    calls: list[str] = []
    client.meta.events.register("before-call.s3.*", lambda model, **kw: calls.append(model.name))
    info = store.put_stream("big.bin", iter(chunks))
    data = b"".join(chunks)
    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    assert calls.count("CreateMultipartUpload") == 1
    assert calls.count("UploadPart") == 3
    assert calls.count("CompleteMultipartUpload") == 1
    assert "PutObject" not in calls
    assert hashlib.sha256(b"".join(store.iter_chunks("big.bin"))).hexdigest() == info.sha256


def test_failure_mid_multipart_aborts_and_leaves_nothing(store: S3BlobStore, client) -> None:
    def stream():
        for _ in range(7):
            yield os.urandom(1 << 20)  # a part is already uploaded when the source fails
        raise ConnectionResetError("source dropped")

    with pytest.raises(ConnectionResetError):
        store.put_stream("jobs/9/out.csv", stream())
    assert raw_keys(client) == []
    assert client.list_multipart_uploads(Bucket="exchange-blobs").get("Uploads", []) == []
    assert not store.exists("jobs/9/out.csv")


def test_failure_keeps_previous_version(store: S3BlobStore) -> None:
    store.put_bytes("snap", b"complete")

    def broken():
        yield b"partial"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.put_stream("snap", broken())
    assert b"".join(store.iter_chunks("snap")) == b"complete"


def test_ranges(store: S3BlobStore) -> None:
    data = bytes(range(256)) * 40
    store.put_bytes("r.bin", data)
    assert b"".join(store.iter_chunks("r.bin", 100, 200)) == data[100:200]
    assert b"".join(store.iter_chunks("r.bin", 10_000)) == data[10_000:]
    assert b"".join(store.iter_chunks("r.bin", 7, 7)) == b""
    assert b"".join(store.iter_chunks("r.bin", len(data))) == b""
    assert [len(c) for c in store.iter_chunks("r.bin", 0, 1000, chunk_size=400)] == [400, 400, 200]
    with pytest.raises(ValueError):
        store.iter_chunks("r.bin", len(data) + 10)
    with pytest.raises(BlobNotFound):
        store.iter_chunks("missing", 5)
    store.put_bytes("empty", b"")
    assert b"".join(store.iter_chunks("empty")) == b""


def test_missing_keys_and_key_safety(store: S3BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.size("nope")
    with pytest.raises(BlobNotFound):
        store.open("nope")
    store.delete("nope")
    with pytest.raises(InvalidBlobKey):
        store.put_bytes("../other-tenant/x", b"x")


def test_list_delete_prefix_local_path_and_purge(store: S3BlobStore, client) -> None:
    for key in ["jobs/1/a", "jobs/1/b", "jobs/12/a", "keep/x"]:
        store.put_bytes(key, key.encode())
    client.put_object(Bucket="exchange-blobs", Key="tenant-b/jobs/1/a", Body=b"not ours")
    assert [e.key for e in store.list("jobs/1/")] == ["jobs/1/a", "jobs/1/b"]
    assert [e.key for e in store.list("jobs/1")] == ["jobs/1/a", "jobs/1/b", "jobs/12/a"]
    with store.local_path("keep/x") as path:
        assert path.read_bytes() == b"keep/x"
    assert not path.exists()
    assert store.delete_prefix("jobs/1/") == 2
    assert [e.key for e in store.list()] == ["jobs/12/a", "keep/x"]
    assert store.purge_older_than("jobs/", datetime.now(UTC) - timedelta(days=1)) == 0
    assert store.purge_older_than("jobs/", datetime.now(UTC) + timedelta(minutes=1)) == 1
    assert sorted(raw_keys(client)) == ["tenant-a/keep/x", "tenant-b/jobs/1/a"]


def test_builds_its_own_client_from_an_endpoint(s3_endpoint: str, client) -> None:
    store = S3BlobStore("exchange-blobs", "", endpoint_url=s3_endpoint)
    store.put_bytes("direct", b"ok")
    assert raw_keys(client) == ["direct"]


def test_writer_multipart_commit_and_abort(store: S3BlobStore, client) -> None:
    store.put_bytes("snap", b"old")
    data = os.urandom(MIN_PART_SIZE + 1234)
    with store.writer("snap") as w:
        for i in range(0, len(data), 1 << 20):
            w.write(data[i:i + (1 << 20)])
        assert store.open("snap").read() == b"old"  # a part is uploaded, nothing visible yet
        info = w.commit()
    assert info == BlobInfo("snap", len(data), hashlib.sha256(data).hexdigest())
    assert store.open("snap").read() == data

    with pytest.raises(RuntimeError), store.writer("snap") as w:
        w.write(os.urandom(MIN_PART_SIZE + 1))  # one part uploaded
        raise RuntimeError("the download broke")
    assert store.open("snap").read() == data  # the previous version stays
    assert client.list_multipart_uploads(Bucket="exchange-blobs").get("Uploads", []) == []  # aborted

    with store.writer("never") as w:
        w.write(b"small, never committed")
    assert not store.exists("never")


def test_put_file_move_copies_and_hashes(store: S3BlobStore, tmp_path) -> None:
    src = tmp_path / "output.csv"
    src.write_bytes(b"h\n1\n")
    info = store.put_file("jobs/1/output.csv", src, move=True, sha256="0" * 64)
    assert info == BlobInfo("jobs/1/output.csv", 4, hashlib.sha256(b"h\n1\n").hexdigest())
    assert store.open("jobs/1/output.csv").read() == b"h\n1\n"
