"""Disk full on the blob store: the job fails cleanly, nothing is delivered, nothing half-written stays.

The "disk" fills up inside :class:`LocalBlobStore`'s own write loop: the write of a matching key
gets part of its bytes onto the disk and then ``OSError(ENOSPC)``, so the store's real cleanup path
(temp file removed, target never replaced) is what runs. Once space is back, running the share
again succeeds.
"""
from __future__ import annotations

import errno
import fnmatch
import os

import pytest

from exchange.blobs import LocalBlobStore
from exchange.blobs import local as blobstore
from tests.faults.helpers import ROWS, members, setup_shares, sha, wait_all


class DiskFull:
    """While ``full``, writing a blob whose key matches ``pattern`` runs out of space halfway.

    The job's temp folder counts as another filesystem here (``_move`` fails with EXDEV), so a
    finished output file is copied into the store, as with a blob folder on another disk, rather
    than renamed (a rename writes no data and cannot run out of space)."""

    def __init__(self, monkeypatch, pattern: str):
        self.pattern, self.full, self.hits = pattern, True, []
        keys: dict[int, str] = {}  # open temp file descriptor -> the key being written
        writer, write_all = LocalBlobStore.writer, blobstore._write_all

        def tracking_writer(store, key):
            w = writer(store, key)
            keys[w.fd] = key
            return w

        def filling_write_all(fd, data):
            key = keys.get(fd)
            if self.full and data and key and fnmatch.fnmatchcase(key, self.pattern):
                write_all(fd, bytes(data[: len(data) // 2]))  # part of it fits, then the disk is full
                self.hits.append(key)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write_all(fd, data)

        def other_filesystem(src, dst):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

        monkeypatch.setattr(LocalBlobStore, "writer", tracking_writer)
        monkeypatch.setattr(blobstore, "_write_all", filling_write_all)
        monkeypatch.setattr(blobstore, "_move", other_filesystem)


def _leftovers(root) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(".~tmp-")]


@pytest.mark.parametrize("artifact", ["source", "output"])
def test_disk_full_fails_job_cleanly_then_recovers(live, tmp_path, monkeypatch, artifact):
    disk = DiskFull(monkeypatch, f"jobs/*/{artifact}.csv")
    prod, cons, shares = setup_shares(live, tmp_path, ["a"])
    with prod, cons:
        job_id = shares["a"]["last_job_id"]
        job = wait_all(live, [job_id])[job_id]

        assert disk.hits == [f"jobs/{job_id}/{artifact}.csv"]  # failed once, not retried in a loop
        assert job["state"] == "failed", job
        assert job["error"]["status"] == 507 and "no space left" in job["error"]["detail"].lower(), job["error"]
        assert cons.requests_to("POST") == []  # no part reached the consumer
        store = live.rt.blobs
        assert not store.exists(f"jobs/{job_id}/{artifact}.csv")
        assert _leftovers(store.root) == []  # no half-written blob, visible or not
        if artifact == "output":  # the source fetched before the failure is intact
            assert store.size(f"jobs/{job_id}/source.csv") == job["bytes"] > 0

        disk.full = False  # space is back
        r = live.post(f"/v1/shares/{shares['a']['id']}/run")
        assert r.status_code in (200, 201, 202), r.json
        again = wait_all(live, [r.json["id"]])[r.json["id"]]
        assert again["state"] == "succeeded", again
        assert sorted(members(cons, "Da")) == sorted(sha(f"a{i}@example.com") for i in range(ROWS))
        assert _leftovers(store.root) == []
