"""LocalBlobStore: atomic writes, key safety, ranges, listing and retention."""
from __future__ import annotations

import errno
import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exchange.blobs import BlobInfo, BlobNotFound, InvalidBlobKey, LocalBlobStore


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_put_stream_reports_size_and_sha256(store: LocalBlobStore) -> None:
    chunks = [b"email,country\n", b"a@x.example,FR\n" * 1000, b"", bytearray(b"tail\n")]
    info = store.put_stream("jobs/1/source.csv", iter(chunks))
    data = b"".join(chunks)
    assert info == BlobInfo("jobs/1/source.csv", len(data), hashlib.sha256(data).hexdigest())
    assert (store.root / "jobs/1/source.csv").read_bytes() == data
    assert store.size("jobs/1/source.csv") == len(data)
    assert store.exists("jobs/1/source.csv")
    with store.open("jobs/1/source.csv") as fh:
        assert fh.read(6) == b"email," and fh.read() == data[6:]


def test_large_stream_is_written_in_full(store: LocalBlobStore) -> None:
    chunks = [os.urandom(100_000) for _ in range(30)]  # crosses the 1 MiB write buffer several times
    info = store.put_stream("big.bin", chunks)
    assert info.size == 3_000_000
    assert hashlib.sha256(store.root.joinpath("big.bin").read_bytes()).hexdigest() == info.sha256


def test_failing_iterator_leaves_nothing(store: LocalBlobStore) -> None:
    def rows():
        yield b"email\n"
        yield b"a@x.example\n" * 200_000  # past the buffer, so bytes reached the temp file
        raise RuntimeError("source connection dropped")

    with pytest.raises(RuntimeError, match="dropped"):
        store.put_stream("jobs/2/source.csv", rows())
    assert not store.exists("jobs/2/source.csv")
    assert files_under(store.root) == []
    assert list(store.list("")) == []


def test_failure_keeps_previous_version(store: LocalBlobStore) -> None:
    store.put_bytes("snap/latest", b"old complete snapshot")

    def broken():
        yield b"new partial"
        raise OSError(errno.ECONNRESET, "reset")

    with pytest.raises(OSError):
        store.put_stream("snap/latest", broken())
    assert store.root.joinpath("snap/latest").read_bytes() == b"old complete snapshot"
    assert files_under(store.root) == ["snap/latest"]


def test_disk_full_during_write_leaves_nothing(store: LocalBlobStore, monkeypatch) -> None:
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError) as info:
        store.put_stream("jobs/3/out.csv", [b"x" * (2 << 20)])
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert files_under(store.root) == []


def test_disk_full_at_fsync_leaves_nothing(store: LocalBlobStore, monkeypatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        store.put_stream("jobs/3/out.csv", [b"small"])
    monkeypatch.undo()
    assert files_under(store.root) == []


def test_non_bytes_chunk_is_refused_without_leftovers(store: LocalBlobStore) -> None:
    with pytest.raises(TypeError):
        store.put_stream("k", ["text, not bytes"])  # type: ignore[list-item]
    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "key",
    ["", "../escape", "a/../../escape", "/etc/passwd", "a\\b", "C:/x", "a//b", "a/./b", "a/", "nul\x00", ".~tmp-x",
     "x" * 1100],
)
def test_unsafe_keys_are_refused(store: LocalBlobStore, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidBlobKey):
        store.exists(key)


def test_symlink_escape_is_refused(store: LocalBlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "link").symlink_to(outside)
    with pytest.raises(InvalidBlobKey, match="outside"):
        store.put_bytes("link/file", b"x")
    assert list(outside.iterdir()) == []


def test_ranges(store: LocalBlobStore) -> None:
    data = bytes(range(256)) * 40
    store.put_bytes("r.bin", data)
    assert b"".join(store.iter_chunks("r.bin")) == data
    assert b"".join(store.iter_chunks("r.bin", 100, 200)) == data[100:200]
    assert b"".join(store.iter_chunks("r.bin", 10_000)) == data[10_000:]
    assert b"".join(store.iter_chunks("r.bin", 5, 10**9)) == data[5:]
    assert b"".join(store.iter_chunks("r.bin", len(data))) == b""
    chunks = list(store.iter_chunks("r.bin", 0, 1000, chunk_size=300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    with pytest.raises(ValueError):
        store.iter_chunks("r.bin", len(data) + 1)
    with pytest.raises(ValueError):
        store.iter_chunks("r.bin", 50, 10)
    with pytest.raises(BlobNotFound):
        store.iter_chunks("missing")  # fails at the call, before any byte is sent


def test_missing_keys(store: LocalBlobStore) -> None:
    assert not store.exists("nope")
    for op in (store.size, store.open):
        with pytest.raises(BlobNotFound):
            op("nope")
    store.delete("nope")  # idempotent


def test_list_delete_prefix_and_pruning(store: LocalBlobStore) -> None:
    for key in ["jobs/1/a.csv", "jobs/1/b.csv", "jobs/12/a.csv", "jobs/2/a.csv", "other.txt"]:
        store.put_bytes(key, key.encode())
    assert [e.key for e in store.list("jobs/1/")] == ["jobs/1/a.csv", "jobs/1/b.csv"]
    assert [e.key for e in store.list("jobs/1")] == ["jobs/1/a.csv", "jobs/1/b.csv", "jobs/12/a.csv"]
    assert len(list(store.list())) == 5
    entry = next(store.list("other"))
    assert entry.size == len(b"other.txt") and entry.modified.tzinfo is not None
    assert store.delete_prefix("jobs/1/") == 2
    assert not (store.root / "jobs/1").exists()  # empty folders are pruned
    assert [e.key for e in store.list("jobs/")] == ["jobs/12/a.csv", "jobs/2/a.csv"]
    assert list(store.list("nothing/here/")) == []


def test_put_file_and_local_path(store: LocalBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "upload.csv"
    src.write_bytes(b"email\nb@x.example\n")
    info = store.put_file("in/upload.csv", src)
    assert info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    with store.local_path("in/upload.csv") as path:
        assert path == store.root / "in/upload.csv"
        assert path.read_bytes() == src.read_bytes()


def test_purge_older_than(store: LocalBlobStore) -> None:
    now = time.time()
    for key, age_days in [("jobs/1/src", 40), ("jobs/1/rejects", 31), ("jobs/2/src", 2), ("keep/x", 90)]:
        store.put_bytes(key, b"x")
        stamp = now - age_days * 86400
        os.utime(store.root / key, (stamp, stamp))
    crash_leftover = store.root / "jobs/2/.~tmp-crashed"
    crash_leftover.write_bytes(b"partial")
    os.utime(crash_leftover, (now - 35 * 86400,) * 2)
    cutoff = datetime.now(UTC) - timedelta(days=30)
    assert store.purge_older_than("jobs/", cutoff) == 2
    assert files_under(store.root) == ["jobs/2/src", "keep/x"]
    with pytest.raises(ValueError, match="timezone"):
        store.purge_older_than("jobs/", datetime(2020, 1, 1))


def test_writer_commits_everything_or_nothing(store: LocalBlobStore) -> None:
    store.put_bytes("jobs/5/source.csv", b"old")
    with store.writer("jobs/5/source.csv") as w:
        w.write(b"a,b\n")
        w.write(b"1,2\n")
        assert store.open("jobs/5/source.csv").read() == b"old"  # nothing visible before the commit
        info = w.commit()
    assert info == BlobInfo("jobs/5/source.csv", 8, hashlib.sha256(b"a,b\n1,2\n").hexdigest())
    assert store.open("jobs/5/source.csv").read() == b"a,b\n1,2\n"
    with pytest.raises(ValueError):
        w.write(b"more")  # a finished write takes no more bytes

    with pytest.raises(RuntimeError), store.writer("jobs/5/source.csv") as w:
        w.write(b"x" * (3 << 20))  # large enough to have reached the disk
        raise RuntimeError("the download broke")
    assert store.open("jobs/5/source.csv").read() == b"a,b\n1,2\n"  # the previous blob stays
    assert files_under(store.root) == ["jobs/5/source.csv"]  # no temp file left

    with store.writer("jobs/6/x") as w:
        w.write(b"left without a commit")
    assert not store.exists("jobs/6/x") and files_under(store.root) == ["jobs/5/source.csv"]


def test_put_file_move_renames_and_reports_the_given_digest(store: LocalBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "output.csv"
    src.write_bytes(b"h\n1\n")
    digest = hashlib.sha256(b"h\n1\n").hexdigest()
    ino = src.stat().st_ino
    info = store.put_file("jobs/7/output.csv", src, move=True, sha256=digest)
    assert info == BlobInfo("jobs/7/output.csv", 4, digest)
    assert not src.exists()  # taken, not copied
    assert (store.root / "jobs/7/output.csv").stat().st_ino == ino
    assert store.open("jobs/7/output.csv").read() == b"h\n1\n"

    src.write_bytes(b"no digest given")
    info = store.put_file("jobs/7/rejects.csv", src, move=True)
    assert info.sha256 == hashlib.sha256(b"no digest given").hexdigest() and info.size == 15

    src.write_bytes(b"kept")
    assert store.put_file("jobs/7/copy.csv", src).size == 4 and src.read_bytes() == b"kept"  # a copy by default


def test_put_file_move_across_filesystems_copies(store: LocalBlobStore, tmp_path: Path, monkeypatch) -> None:
    from exchange.blobs import local

    def exdev(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(local, "_move", exdev)
    src = tmp_path / "output.csv"
    src.write_bytes(b"h\n2\n")
    info = store.put_file("jobs/8/output.csv", src, move=True, sha256="0" * 64)
    # the copy hashes what it copies
    assert info == BlobInfo("jobs/8/output.csv", 4, hashlib.sha256(b"h\n2\n").hexdigest())
    assert store.open("jobs/8/output.csv").read() == b"h\n2\n"
