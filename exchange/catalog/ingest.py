"""Accept a PUSH producer's data upload: validate, stream to the blob store, record a new version."""
from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import select

from ..errors import BadRequest, UnsupportedMediaType
from ..models import Audience, new_id, utcnow
from .audiences import producer_endpoint, put_metadata
from .uploads import Inflater, UploadStats, check_chunk, check_end, compressed, measured, split_columns

if TYPE_CHECKING:
    from ..runtime import Runtime

CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/octet-stream", ""}


def _read(stream: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        yield chunk


def _checked_gzip(raw: Iterator[bytes], stats: UploadStats, max_bytes: int, max_ratio: float) -> Iterator[bytes]:
    """Yield the gzip body unchanged while its inflated bytes go through the upload checks."""
    inflater = Inflater(max_bytes, max_ratio)
    for chunk in raw:
        for piece in inflater.feed(chunk):
            check_chunk(stats, piece, max_bytes=max_bytes)
        yield chunk
    for piece in inflater.end():
        check_chunk(stats, piece, max_bytes=max_bytes)
    check_end(stats)


_END = object()


def _store_compressed(rt: Runtime, key: str, checked: Iterator[bytes]) -> None:
    """Store ``checked`` gzip-compressed at ``key``: reading and checking here, compressing and writing
    in a helper thread (the compressor and the hash release the GIL), so the two overlap.

    Whatever stops either side (a check refusing the body, the client going away, a full disk)
    stops both and aborts the write: no blob appears at ``key``. At most a few chunks wait between
    the two."""
    pipe: queue.Queue[object] = queue.Queue(maxsize=4)
    failed = threading.Event()
    errors: list[BaseException] = []

    def items() -> Iterator[bytes]:
        while (item := pipe.get()) is not _END:
            if not isinstance(item, bytes):
                raise _Abandoned()
            yield item

    def store() -> None:
        try:
            rt.blobs.put_stream(key, compressed(items()))
        except BaseException as exc:  # noqa: BLE001 - handed to the request thread
            errors.append(exc)
            failed.set()

    def put(item: object) -> None:
        while True:
            if failed.is_set():
                raise errors[0]
            try:
                pipe.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=store, name=f"upload-{key[-24:]}", daemon=True)
    worker.start()
    try:
        for chunk in checked:
            put(chunk)
        put(_END)
    except BaseException:
        if not failed.is_set():
            with contextlib.suppress(BaseException):
                put(None)  # the writer aborts: nothing is stored
        worker.join()
        raise
    worker.join()
    if errors:
        raise errors[0]


class _Abandoned(Exception):
    """The request side stopped: the write is aborted."""


def ingest_upload(rt: Runtime, account_id: str, endpoint_id: str, external_id: str, stream: BinaryIO, *,
                  content_type: str, content_encoding: str) -> dict:
    if content_type not in CSV_TYPES:
        raise UnsupportedMediaType("Upload audience data as text/csv.")
    encoding = content_encoding.strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise UnsupportedMediaType("Content-Encoding must be gzip or absent.")
    with rt.db.session() as s:
        producer_endpoint(s, account_id, endpoint_id)  # fail fast before reading the body
    stats = UploadStats()
    version = utcnow().strftime("%Y%m%dT%H%M%S") + "-" + new_id()[:8]
    # stored gzip: a gzip body as sent (inflated only to be checked), a plain one compressed on the way
    key = f"audiences/{endpoint_id}/{external_id}/{version}.csv.gz"
    cfg = rt.config
    try:
        if encoding == "gzip":
            rt.blobs.put_stream(key, _checked_gzip(_read(stream), stats, cfg.max_decompressed_bytes,
                                                   cfg.max_inflate_ratio))
        else:
            _store_compressed(rt, key, measured(_read(stream), stats, max_bytes=cfg.max_decompressed_bytes))
    except OSError as exc:
        raise BadRequest(f"The upload could not be stored ({exc.strerror or type(exc).__name__}).") from None
    digest = stats.sha256.hexdigest()
    ids, attrs = split_columns(stats.header or [])
    with rt.db.session() as s:
        # older versions stay until retention removes them: running jobs may still read them
        ep = producer_endpoint(s, account_id, endpoint_id)
        aud = s.scalar(select(Audience).where(Audience.endpoint_id == ep.id, Audience.external_id == external_id))
        if aud is not None and aud.data_sha256 == digest and aud.data_key:
            # the same bytes again: no new version, so on_new_data shares do not run for nothing
            rt.blobs.delete(key)
            return {"audience_id": aud.id, "external_id": external_id, "rows": stats.rows, "bytes": stats.bytes,
                    "sha256": digest, "version": aud.version, "columns": stats.header, "triggered_job_ids": [],
                    "unchanged": True}
        if aud is None:
            aud = put_metadata(s, account_id, endpoint_id, external_id,
                               {"identifiers": ids or [c for c in stats.header if c in (ep.identifiers or [])],
                                "attributes": attrs})
        aud.data_key, aud.data_rows, aud.data_sha256 = key, stats.rows, digest
        aud.data_columns, aud.data_uploaded_at = stats.header, utcnow()
        aud.version, aud.size, aud.source_updated_at = version, stats.rows, utcnow()
        aud.status, aud.gone_at = "active", None
        if not aud.identifiers:
            aud.identifiers = ids
        if not aud.attributes:
            aud.attributes = attrs
        s.flush()
        from ..shares.service import trigger_on_new_data
        job_ids = trigger_on_new_data(rt, s, aud)
        audience_id = aud.id
    rt.executor.wake()
    return {"audience_id": audience_id, "external_id": external_id, "rows": stats.rows, "bytes": stats.bytes,
            "sha256": digest, "version": version, "columns": stats.header, "triggered_job_ids": job_ids,
            "unchanged": False}
