"""The S3-compatible blob store (scaled deployment): multipart uploads completed only on success."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from .base import (
    DEFAULT_CHUNK,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    BlobEntry,
    BlobNotFound,
    BlobStore,
    BlobWriter,
    check_range,
    read_range,
    require_aware,
    validate_key,
)


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

    def writer(self, key: str) -> BlobWriter:
        return _S3Writer(self, key)

    def _get(self, key: str, **kwargs: Any) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except self.client.exceptions.NoSuchKey as exc:
            raise BlobNotFound(f"No blob at {key!r}.") from exc

    def open(self, key: str) -> IO[bytes]:
        body: IO[bytes] = self._get(key)["Body"]  # botocore's StreamingBody
        return body

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
            check_range(start, end, self.size(key))  # raises unless start is exactly the end
            return iter(())
        return read_range(body, None, chunk_size)

    def size(self, key: str) -> int:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
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
        count, batch = 0, list[dict[str, str]]()

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
        require_aware(cutoff)
        return self._delete_many(e.key for e in self.list(prefix) if e.modified < cutoff)

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        body: Any = self.open(key)  # a StreamingBody, which reads in chunks itself
        fd, tmp = tempfile.mkstemp(prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out, contextlib.closing(body):
                for chunk in body.iter_chunks(DEFAULT_CHUNK):
                    out.write(chunk)
            yield Path(tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


class _S3Writer(BlobWriter):
    """Parts of ``part_size`` as they fill; a small blob is one PUT on commit (atomic either way)."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        super().__init__(key)
        self.store, self.s3_key = store, store._key(key)
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def _upload_part(self, data: bytes) -> None:
        st, number = self.store, len(self.parts) + 1
        resp = st.client.upload_part(Bucket=st.bucket, Key=self.s3_key, UploadId=self.upload_id,
                                     PartNumber=number, Body=data)
        self.parts.append({"ETag": resp["ETag"], "PartNumber": number})

    def _write(self, chunk: bytes) -> None:
        st = self.store
        self.buffer += chunk
        try:
            while len(self.buffer) >= st.part_size:
                if self.upload_id is None:
                    self.upload_id = st.client.create_multipart_upload(Bucket=st.bucket, Key=self.s3_key)["UploadId"]
                self._upload_part(bytes(self.buffer[: st.part_size]))
                del self.buffer[: st.part_size]
        except BaseException:
            self.abort()
            raise

    def _commit(self) -> None:
        st = self.store
        try:
            if self.upload_id is None:
                # Small blobs: one PUT, which S3 makes visible atomically.
                st.client.put_object(Bucket=st.bucket, Key=self.s3_key, Body=bytes(self.buffer))
            else:
                if self.buffer:
                    self._upload_part(bytes(self.buffer))
                st.client.complete_multipart_upload(Bucket=st.bucket, Key=self.s3_key, UploadId=self.upload_id,
                                                    MultipartUpload={"Parts": self.parts})
        except BaseException:
            self._abort()
            raise
        self.buffer = bytearray()

    def _abort(self) -> None:
        self.buffer = bytearray()
        if self.upload_id is not None:
            # Best effort: a failed abort must not hide the original error; bucket lifecycle
            # rules for incomplete uploads are the backstop.
            with contextlib.suppress(Exception):
                self.store.client.abort_multipart_upload(Bucket=self.store.bucket, Key=self.s3_key,
                                                         UploadId=self.upload_id)
            self.upload_id = None
