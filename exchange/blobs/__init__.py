"""Blob storage for uploads, artifacts and deliveries: the contract (:mod:`.base`), a local folder
(:mod:`.local`) and S3-compatible storage (:mod:`.s3`); :func:`open_blob_store` picks one from a URL."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ..errors import ConfigError
from .base import (
    DEFAULT_CHUNK,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobWriter,
    InvalidBlobKey,
    validate_key,
)
from .local import LocalBlobStore
from .s3 import S3BlobStore

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "BlobEntry",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobWriter",
    "InvalidBlobKey",
    "LocalBlobStore",
    "S3BlobStore",
    "open_blob_store",
    "validate_key",
]


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
