"""Blob storage for uploads, artifacts and deliveries: a local folder or S3-compatible storage.

Every write is atomic: ``put_stream`` makes a blob visible only once all of it is stored, and a
failure midway (the iterator raises, the disk is full, the process dies) leaves any previous blob
at the key untouched and no partial one. Locally that is a temp file in the target folder, fsynced
and ``os.replace``d; on S3 a multipart upload completed only on success and aborted otherwise.

Keys are relative, ``/``-separated paths (``jobs/<id>/source.csv``); keys that could escape the
store (``..``, absolute paths, backslashes, control characters) are refused on every backend.
Ranges follow Python slicing: ``iter_chunks(key, start, end)`` yields bytes ``[start, end)``.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import urlsplit
from urllib.request import url2pathname

from exchange.errors import ConfigError, NotFound, ValidationFailed

DEFAULT_CHUNK = 1 << 20
DEFAULT_PART_SIZE = 8 << 20
MIN_PART_SIZE = 5 << 20  # S3's minimum size for every part but the last
_TMP_PREFIX = ".~tmp-"
_KEY_PART = re.compile(r"[^\x00-\x1f\x7f\\]+")


class InvalidBlobKey(ValidationFailed):
    title = "Invalid blob key"
    type_slug = "invalid-blob-key"


class BlobNotFound(NotFound):
    title = "Blob not found"
    type_slug = "blob-not-found"


class BlobInfo(NamedTuple):
    key: str
    size: int
    sha256: str


class BlobEntry(NamedTuple):
    key: str
    size: int
    modified: datetime


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative key; ``prefix=True`` also allows "" and a trailing "/"."""
    if not isinstance(key, str):
        raise InvalidBlobKey("A blob key must be a string.")
    body = key[:-1] if prefix and key.endswith("/") else key
    if prefix and body == "":
        return key
    if not body or len(key) > 1024:
        raise InvalidBlobKey("A blob key must be 1 to 1024 characters long.")
    if body.startswith("/") or re.match(r"^[A-Za-z]:", body):
        raise InvalidBlobKey(f"Blob key {key!r} must be relative.")
    for part in body.split("/"):
        if part in ("", ".", "..") or not _KEY_PART.fullmatch(part) or part.startswith(_TMP_PREFIX):
            raise InvalidBlobKey(f"Blob key {key!r} has an invalid segment {part!r}.")
    return key


def _require_aware(cutoff: datetime) -> datetime:
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    return cutoff


def _check_range(start: int, end: int | None, size: int) -> int:
    end = size if end is None else min(end, size)
    if start < 0 or start > size or end < start:
        raise ValueError(f"invalid range [{start}, {end}) for a blob of {size} bytes")
    return end


class BlobStore(ABC):
    """Where the exchange keeps bytes; see the module docstring for the guarantees."""

    @abstractmethod
    def put_stream(self, key: str, chunks: Iterable[bytes]) -> BlobInfo: ...

    def put_file(self, key: str, path: str | os.PathLike[str]) -> BlobInfo:
        with open(path, "rb") as fh:
            return self.put_stream(key, iter(lambda: fh.read(DEFAULT_CHUNK), b""))

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        return self.put_stream(key, [data])

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A streaming binary reader; close it (or use ``with``)."""

    @abstractmethod
    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        """Blobs whose key starts with ``prefix`` (a plain string prefix, as on S3)."""

    @abstractmethod
    def local_path(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A local file holding the blob for the duration of the ``with`` block; do not modify it."""

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        for entry in list(self.list(prefix)):
            self.delete(entry.key)
            count += 1
        return count

    def purge_older_than(self, prefix: str, cutoff: datetime) -> int:
        """Delete blobs under ``prefix`` last modified before ``cutoff``; returns how many."""
        _require_aware(cutoff)
        count = 0
        for entry in [e for e in self.list(prefix) if e.modified < cutoff]:
            self.delete(entry.key)
            count += 1
        return count


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
                return tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
            except FileNotFoundError:
                continue
        raise OSError(errno.ENOENT, f"cannot create a temporary file in {directory}")

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        target = self._path(key)
        fd, tmp = self._temp_file(target.parent)
        digest, size = hashlib.sha256(), 0
        try:
            buffer = bytearray()
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                # Batch small chunks (one CSV row each, say) into fewer system calls.
                if len(buffer) >= DEFAULT_CHUNK:
                    _write_all(fd, buffer)
                    buffer.clear()
            _write_all(fd, buffer)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)
        return BlobInfo(key, size, digest.hexdigest())

    def open(self, key: str) -> IO[bytes]:
        return open(self._existing(key), "rb")

    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]:
        # Validate and open now, so a bad key or range fails before a caller sends response headers.
        fh = open(self._existing(key), "rb")  # noqa: SIM115 - closed by the generator below
        try:
            stop = _check_range(start, end, os.fstat(fh.fileno()).st_size)
            fh.seek(start)
        except BaseException:
            fh.close()
            raise
        return _read_range(fh, stop - start, chunk_size)

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
                yield entry, name.startswith(_TMP_PREFIX)

    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        return (entry for entry, is_temp in self._walk(prefix) if not is_temp)

    def purge_older_than(self, prefix: str, cutoff: datetime) -> int:
        # Temp files left by a crash mid-write are invisible to ``list``; retention removes them too.
        _require_aware(cutoff)
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


def _read_range(fh: IO[bytes], length: int | None, chunk_size: int) -> Iterator[bytes]:
    """Yield ``length`` bytes (all, if ``None``) from ``fh`` in chunks, closing it at the end."""
    with contextlib.closing(fh):
        while length is None or length > 0:
            data = fh.read(chunk_size if length is None else min(chunk_size, length))
            if not data:
                return
            if length is not None:
                length -= len(data)
            yield data


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


class S3BlobStore(BlobStore):
    """Blobs as objects under ``prefix`` in an S3-compatible ``bucket`` (scale-out deployment)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        part_size: int = DEFAULT_PART_SIZE,
    ):
        if part_size < MIN_PART_SIZE:
            raise ValueError("part_size must be at least 5 MiB")
        if client is None:
            import boto3
            from botocore.config import Config

            # S3-compatible servers (MinIO, moto, Ceph) behind a custom endpoint expect path-style URLs.
            style = {"addressing_style": "path"} if endpoint_url else {}
            config = Config(s3=style, retries={"mode": "standard", "max_attempts": 5})
            client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.part_size = part_size

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, {self.prefix!r})"

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _not_found(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return code in ("404", "NoSuchKey", "NotFound")

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        s3_key = self._key(key)
        digest, size = hashlib.sha256(), 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        def upload_part(data: bytes) -> None:
            number = len(parts) + 1
            resp = self.client.upload_part(
                Bucket=self.bucket, Key=s3_key, UploadId=upload_id, PartNumber=number, Body=data
            )
            parts.append({"ETag": resp["ETag"], "PartNumber": number})

        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=s3_key)["UploadId"]
                    upload_part(bytes(buffer[: self.part_size]))
                    del buffer[: self.part_size]
            if upload_id is None:
                # Small blobs: one PUT, which S3 makes visible atomically.
                self.client.put_object(Bucket=self.bucket, Key=s3_key, Body=bytes(buffer))
            else:
                if buffer:
                    upload_part(bytes(buffer))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=s3_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            if upload_id is not None:
                # Best effort: a failed abort must not hide the original error; bucket lifecycle
                # rules for incomplete uploads are the backstop.
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=s3_key, UploadId=upload_id)
            raise
        return BlobInfo(key, size, digest.hexdigest())

    def _get(self, key: str, **kwargs: Any) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except self.client.exceptions.NoSuchKey as exc:
            raise BlobNotFound(f"No blob at {key!r}.") from exc

    def open(self, key: str) -> IO[bytes]:
        return self._get(key)["Body"]

    def iter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range [{start}, {end})")
        if end == start:
            return iter(())
        kwargs: dict[str, Any] = {}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self._get(key, **kwargs)["Body"]
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            _check_range(start, end, self.size(key))  # raises unless start is exactly the end
            return iter(())
        return _read_range(body, None, chunk_size)

    def size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except self.client.exceptions.ClientError as exc:
            if self._not_found(exc):
                raise BlobNotFound(f"No blob at {key!r}.") from exc
            raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        validate_key(prefix, prefix=True)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                yield BlobEntry(obj["Key"][len(self.prefix) :], obj["Size"], obj["LastModified"])

    def _delete_many(self, keys: Iterable[str]) -> int:
        count, batch = 0, []

        def flush() -> None:
            resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if resp.get("Errors"):
                raise OSError(f"S3 refused to delete {len(resp['Errors'])} object(s) under {self.prefix!r}")

        for key in keys:
            batch.append({"Key": self._key(key)})
            if len(batch) == 1000:  # the DeleteObjects limit
                flush()
                count, batch = count + len(batch), []
        if batch:
            flush()
        return count + len(batch)

    def delete_prefix(self, prefix: str) -> int:
        return self._delete_many(e.key for e in self.list(prefix))

    def purge_older_than(self, prefix: str, cutoff: datetime) -> int:
        _require_aware(cutoff)
        return self._delete_many(e.key for e in self.list(prefix) if e.modified < cutoff)

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        body = self.open(key)
        fd, tmp = tempfile.mkstemp(prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out, contextlib.closing(body):
                for chunk in body.iter_chunks(DEFAULT_CHUNK):
                    out.write(chunk)
            yield Path(tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def open_blob_store(url: str, *, s3_endpoint_url: str | None = None, s3_client: Any = None) -> BlobStore:
    """A store from ``EXCHANGE_BLOB_DIR``-style settings: a path, ``file://`` URL or ``s3://bucket/prefix``."""
    if not url:
        raise ConfigError("The blob store location is empty.")
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"The blob store URL {url!r} names no bucket.")
        return S3BlobStore(parts.netloc, parts.path.strip("/"), endpoint_url=s3_endpoint_url, client=s3_client)
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"The blob store URL {url!r} must name a local folder.")
        return LocalBlobStore(url2pathname(parts.path))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        raise ConfigError(f"Unsupported blob store URL {url!r}: use a folder, file:// or s3://.")
    return LocalBlobStore(url)


