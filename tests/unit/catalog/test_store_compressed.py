"""Uploads are checked in the request thread and compressed + written in a helper thread: all or nothing."""
from __future__ import annotations

import errno
import gzip
import os
import threading
from types import SimpleNamespace

import pytest

from exchange.blobs import LocalBlobStore
from exchange.blobs import local as blobstore
from exchange.catalog.ingest import _store_compressed
from exchange.errors import CsvDataError


def _rt(tmp_path):
    return SimpleNamespace(blobs=LocalBlobStore(tmp_path / "blobs"))


def _files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_stores_the_whole_body_compressed(tmp_path):
    rt = _rt(tmp_path)
    chunks = [b"email\n"] + [b"user%d@example.com\n" % i for i in range(50_000)]
    _store_compressed(rt, "audiences/p/a/v1.csv.gz", iter(chunks))
    assert gzip.decompress(rt.blobs.open("audiences/p/a/v1.csv.gz").read()) == b"".join(chunks)
    assert [t for t in threading.enumerate() if t.name.startswith("upload-")] == []


def test_a_refused_body_leaves_nothing(tmp_path):
    rt = _rt(tmp_path)

    def checked():
        for _ in range(40):
            yield os.urandom(1 << 20)  # more than the queue holds: the writer has written some
        raise CsvDataError("line 12345 is too long")

    with pytest.raises(CsvDataError):
        _store_compressed(rt, "audiences/p/a/v1.csv.gz", checked())
    assert _files(rt.blobs.root) == []  # neither the blob nor a temp file
    assert [t for t in threading.enumerate() if t.name.startswith("upload-")] == []


def test_a_full_disk_stops_the_request_side_and_leaves_nothing(tmp_path, monkeypatch):
    rt = _rt(tmp_path)
    write_all = blobstore._write_all
    written = []

    def full(fd, data):
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(data))
        return write_all(fd, data)

    monkeypatch.setattr(blobstore, "_write_all", full)
    read = []

    def checked():
        for _ in range(10_000):  # far more than is read before the failure shows
            read.append(1)
            yield os.urandom(1 << 20)

    with pytest.raises(OSError) as exc:
        _store_compressed(rt, "audiences/p/a/v1.csv.gz", checked())
    assert exc.value.errno == errno.ENOSPC
    assert len(read) < 100  # the request side stopped soon after the writer failed
    assert _files(rt.blobs.root) == []
