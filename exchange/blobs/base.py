"""Blob storage for uploads, artifacts and deliveries: a local folder or S3-compatible storage.

Every write is atomic: ``put_stream`` makes a blob visible only once all of it is stored, and a
failure midway (the iterator raises, the disk is full, the process dies) leaves any previous blob
at the key untouched and no partial one. Locally that is a temp file in the target folder, fsynced
and ``os.replace``d; on S3 a multipart upload completed only on success and aborted otherwise.
:meth:`BlobStore.writer` is the same write driven by the caller (``write`` chunks as they come,
then ``commit``; leaving the ``with`` block without committing aborts), for a body that is also
consumed elsewhere as it arrives (a download teed into the transform). ``put_file(..., move=True)``
lets the local store take a finished file by rename instead of copying it.

Keys are relative, ``/``-separated paths (``jobs/<id>/source.csv``); keys that could escape the
store (``..``, absolute paths, backslashes, control characters) are refused on every backend.
Ranges follow Python slicing: ``iter_chunks(key, start, end)`` yields bytes ``[start, end)``.

This module holds the contract (:class:`BlobStore`) and key rules; :mod:`.local` and :mod:`.s3`
implement it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, NamedTuple

from exchange.errors import NotFound, ValidationFailed

DEFAULT_CHUNK = 1 << 20
DEFAULT_PART_SIZE = 8 << 20
MIN_PART_SIZE = 5 << 20  # S3's minimum size for every part but the last
TMP_PREFIX = ".~tmp-"
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
        if part in ("", ".", "..") or not _KEY_PART.fullmatch(part) or part.startswith(TMP_PREFIX):
            raise InvalidBlobKey(f"Blob key {key!r} has an invalid segment {part!r}.")
    return key


def require_aware(cutoff: datetime) -> datetime:
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    return cutoff


def check_range(start: int, end: int | None, size: int) -> int:
    end = size if end is None else min(end, size)
    if start < 0 or start > size or end < start:
        raise ValueError(f"invalid range [{start}, {end}) for a blob of {size} bytes")
    return end


class BlobWriter(ABC):
    """One atomic write in progress: ``write`` chunks, then ``commit``; anything else aborts it.

    Use it as a context manager: leaving the block without :meth:`commit` (an exception, a
    cancellation) calls :meth:`abort`, which removes everything written so far; the key keeps its
    previous blob, if any."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.size = 0
        self._digest = hashlib.sha256()
        self.done = False

    def write(self, chunk: bytes) -> None:
        if self.done:
            raise ValueError(f"the write of {self.key!r} is already finished")
        self._digest.update(chunk)  # refuses str: nothing is written for a wrong chunk type
        self.size += len(chunk)
        self._write(chunk)

    def commit(self) -> BlobInfo:
        """Make the blob visible at the key, all of it; returns its size and SHA-256."""
        if self.done:
            raise ValueError(f"the write of {self.key!r} is already finished")
        self._commit()
        self.done = True
        return BlobInfo(self.key, self.size, self._digest.hexdigest())

    def abort(self) -> None:
        if not self.done:
            self.done = True
            self._abort()

    @abstractmethod
    def _write(self, chunk: bytes) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class BlobStore(ABC):
    """Where the exchange keeps bytes; see the module docstring for the guarantees."""

    @abstractmethod
    def writer(self, key: str) -> BlobWriter:
        """Start an atomic write of ``key`` (see :class:`BlobWriter`)."""

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        with self.writer(key) as w:
            for chunk in chunks:
                w.write(chunk)
            return w.commit()

    def put_file(self, key: str, path: str | os.PathLike[str], *, move: bool = False,
                 sha256: str | None = None) -> BlobInfo:
        """Store the file at ``path``. ``move=True``: the caller is done with the file, and a store
        that can take it whole (the local one, on the same filesystem) renames it into place;
        otherwise it is copied and left where it is. ``sha256``: the file's digest when the caller
        computed it while writing the file; a store that moves the file reports it instead of
        reading the file again (a copy hashes what it copies)."""
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
        require_aware(cutoff)
        count = 0
        for entry in [e for e in self.list(prefix) if e.modified < cutoff]:
            self.delete(entry.key)
            count += 1
        return count


def read_range(fh: IO[bytes], length: int | None, chunk_size: int) -> Iterator[bytes]:
    """Yield ``length`` bytes (all, if ``None``) from ``fh`` in chunks, closing it at the end."""
    with contextlib.closing(fh):
        while length is None or length > 0:
            data = fh.read(chunk_size if length is None else min(chunk_size, length))
            if not data:
                return
            if length is not None:
                length -= len(data)
            yield data
