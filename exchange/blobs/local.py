"""The local-folder blob store (embedded deployment): atomic writes by temp file, fsync and rename."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .base import (
    DEFAULT_CHUNK,
    TMP_PREFIX,
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobWriter,
    InvalidBlobKey,
    check_range,
    read_range,
    require_aware,
    validate_key,
)


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root_dir``; the embedded default (SPEC §12)."""

    def __init__(self, root_dir: str | os.PathLike[str]):
        self.root = Path(root_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # Defence in depth against symlinks planted inside the root.
        if os.path.commonpath([self.root, os.path.realpath(path)]) != str(self.root):
            raise InvalidBlobKey(f"Blob key {key!r} resolves outside the store.")
        return path

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(f"No blob at {key!r}.")
        return path

    def _temp_file(self, directory: Path) -> tuple[int, str]:
        # A concurrent delete may remove the freshly created, still empty folder; try again.
        for _ in range(5):
            directory.mkdir(parents=True, exist_ok=True)
            try:
                return tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
            except FileNotFoundError:
                continue
        raise OSError(errno.ENOENT, f"cannot create a temporary file in {directory}")

    def writer(self, key: str) -> BlobWriter:
        target = self._path(key)
        fd, tmp = self._temp_file(target.parent)
        return _LocalWriter(key, target, fd, tmp)

    def put_file(self, key: str, path: str | os.PathLike[str], *, move: bool = False,
                 sha256: str | None = None) -> BlobInfo:
        if not move:
            return super().put_file(key, path)
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is durable before the name points at it
            size = os.fstat(fd).st_size
            if sha256 is None:
                with open(fd, "rb", closefd=False) as fh:
                    sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
        finally:
            os.close(fd)
        try:
            _move(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return super().put_file(key, path)  # another filesystem: copy
        _fsync_dir(target.parent)
        return BlobInfo(key, size, sha256)

    def open(self, key: str) -> IO[bytes]:
        return open(self._existing(key), "rb")

    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]:
        # Validate and open now, so a bad key or range fails before a caller sends response headers.
        fh = open(self._existing(key), "rb")  # noqa: SIM115 - closed by the generator below
        try:
            stop = check_range(start, end, os.fstat(fh.fileno()).st_size)
            fh.seek(start)
        except BaseException:
            fh.close()
            raise
        return read_range(fh, stop - start, chunk_size)

    def size(self, key: str) -> int:
        return self._existing(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty folders up to the root, so per-job folders do not pile up."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _walk(self, prefix: str) -> Iterator[tuple[BlobEntry, bool]]:
        """(entry, is_temp_file) for files under ``prefix``; walks only the deepest folder it names."""
        validate_key(prefix, prefix=True)
        base = self.root.joinpath(*prefix.split("/")[:-1])
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue  # deleted while listing
                entry = BlobEntry(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
                yield entry, name.startswith(TMP_PREFIX)

    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        return (entry for entry, is_temp in self._walk(prefix) if not is_temp)

    def purge_older_than(self, prefix: str, cutoff: datetime) -> int:
        # Temp files left by a crash mid-write are invisible to ``list``; retention removes them too.
        require_aware(cutoff)
        count = 0
        for entry, is_temp in [item for item in self._walk(prefix) if item[0].modified < cutoff]:
            path = self.root / entry.key
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._prune(path.parent)
            count += not is_temp
        return count

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        yield self._existing(key)


class _LocalWriter(BlobWriter):
    """A temp file beside the target: written in batches, fsynced and renamed on commit, removed on abort."""

    def __init__(self, key: str, target: Path, fd: int, tmp: str) -> None:
        super().__init__(key)
        self.target, self.fd, self.tmp = target, fd, tmp
        self.buffer = bytearray()

    def _write(self, chunk: bytes) -> None:
        self.buffer += chunk
        # Batch small chunks (one CSV row each, say) into fewer system calls.
        if len(self.buffer) >= DEFAULT_CHUNK:
            _write_all(self.fd, self.buffer)
            self.buffer.clear()

    def _commit(self) -> None:
        try:
            _write_all(self.fd, self.buffer)
            self.buffer.clear()
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(self.tmp, self.target)
        except BaseException:
            self._abort()
            raise
        _fsync_dir(self.target.parent)

    def _abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _move(src: str | os.PathLike[str], dst: Path) -> None:
    """Rename ``src`` over ``dst`` (atomic); OSError(EXDEV) across filesystems."""
    os.replace(src, dst)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems do not support fsync on folders.
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
