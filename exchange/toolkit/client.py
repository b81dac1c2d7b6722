"""A typed Python client for the exchange's ``/v1`` API (SPEC §4, §10).

``Client(base_url, key)`` wraps every route: keys, endpoints (verify, refresh), the catalog, PUSH
producer uploads (streamed from a path or a file object, optionally gzip-compressed on the fly),
shares, jobs (with :meth:`Client.wait_job`), PULL consumer deliveries (resumable, checksum-verified
downloads) and adapters. Lists come back as :class:`Page`; every other answer is the JSON object the
API documents. Problem documents become :class:`ApiError` subclasses chosen by status.

Retries: connection errors, 429 (honouring ``Retry-After``) and 5xx are retried with exponential
backoff and jitter for idempotent calls; POSTs carry a generated ``Idempotency-Key`` so that they
are retried too without running twice.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Self

import requests
import urllib3

__all__ = [
    "TERMINAL_STATES",
    "ApiError",
    "BadRequest",
    "ChecksumMismatch",
    "Client",
    "Conflict",
    "Forbidden",
    "NetworkError",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ToolkitError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
]

JSON = dict[str, Any]
Progress = Callable[[int], None]
TERMINAL_STATES = frozenset({"succeeded", "partially_succeeded", "failed", "cancelled"})
CHUNK = 256 * 1024
RETRY_STATUSES = {429, 500, 502, 503, 504}
USER_AGENT = "exchange-toolkit/1.0"
# a body cut short mid-stream: resumable with Range
DROPPED = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
           urllib3.exceptions.HTTPError, OSError)


class ToolkitError(Exception):
    """Root of every error the client raises."""


class NetworkError(ToolkitError):
    """The exchange could not be reached (refused, reset, timed out), even after retries."""


class ChecksumMismatch(ToolkitError):
    """A downloaded delivery does not hash to the SHA-256 the exchange announced."""


class WaitTimeout(ToolkitError):
    """:meth:`Client.wait_job` gave up; ``job`` is the last state seen."""

    def __init__(self, message: str, *, job: JSON):
        super().__init__(message)
        self.job = job


class ApiError(ToolkitError):
    """The exchange answered with an error: the fields of its RFC 9457 problem document."""

    status = 0

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        errors: dict | None = None,
        type: str = "",
        instance: str = "",
        request_id: str = "",
        retry_after: float | None = None,
    ):
        self.status, self.title, self.detail = status, title, detail or title
        self.errors: dict[str, list[str]] = errors or {}
        self.type, self.instance, self.request_id, self.retry_after = type, instance, request_id, retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail != self.title:
            text += f": {self.detail}"
        fields = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.errors.items())
        return f"{text} ({fields})" if fields else text


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class ValidationError(ApiError):
    status = 422


class RateLimited(ApiError):
    status = 429


class ServerError(ApiError):
    status = 500


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationError,
        RateLimited,
    )
}


def error_for_response(response: requests.Response) -> ApiError:
    """The typed error of an error answer; a body that is no problem document still gives one."""
    status = response.status_code
    cls = ERRORS_BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    try:
        doc = response.json() if "json" in response.headers.get("Content-Type", "") else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    retry_after = None
    if response.headers.get("Retry-After", "").strip().isdigit():
        retry_after = float(response.headers["Retry-After"])
    errors = doc.get("errors") if isinstance(doc.get("errors"), dict) else None
    return cls(
        status,
        str(doc.get("title") or response.reason or "HTTP error"),
        str(doc.get("detail") or ""),
        errors=errors,
        type=str(doc.get("type") or ""),
        instance=str(doc.get("instance") or ""),
        request_id=response.headers.get("X-Request-Id", ""),
        retry_after=retry_after,
    )


@dataclass
class Page:
    """One page of a list: ``items`` plus the envelope's pagination fields."""

    items: list[JSON]
    page: int
    page_size: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.total


def _clean(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}


class _ReadProgress:
    """A file wrapper that reports bytes read; ``__len__`` lets requests send a Content-Length."""

    def __init__(self, fh: IO[bytes], length: int, progress: Progress | None):
        self._fh, self._length, self._progress = fh, length, progress

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(CHUNK if size is None or size < 0 else max(size, CHUNK))
        if data and self._progress:
            self._progress(len(data))
        return data


def _gzip_chunks(fh: IO[bytes], progress: Progress | None) -> Iterator[bytes]:
    """Compress a file on the fly (sent with chunked transfer encoding, never held whole)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip container
    while chunk := fh.read(CHUNK):
        if progress:
            progress(len(chunk))
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


class Client:
    """Client of one exchange, authenticated with an account key or an endpoint key."""

    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        timeout: float | tuple[float, float] = (5.0, 60.0),
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        session: requests.Session | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------
    def _delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        base = min(self.backoff * 2**attempt, self.max_backoff)
        return base / 2 + random.uniform(0, base / 2)  # jitter keeps many clients from retrying together

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        body: Callable[[], Any] | None = None,
        headers: dict | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send a request, retrying what is safe to retry; raise ApiError for a problem answer.

        ``body`` is a factory so that a retried upload re-opens its source from the start.
        """
        headers = dict(headers or {})
        if method == "POST":
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        url = self.base_url + path
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=_clean(params or {}),
                    json=json,
                    data=body() if body else None,
                    headers=headers,
                    timeout=self.timeout,
                    stream=stream,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise NetworkError(f"{method} {url} failed: {_reason(exc)}") from exc
                time.sleep(self._delay(attempt))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                error = error_for_response(response)
                response.close()
                time.sleep(self._delay(attempt, error.retry_after))
                continue
            if method == "DELETE" and attempt and response.status_code == 404:
                return response  # an earlier attempt deleted it before its answer was lost
            if response.status_code >= 400:
                error = error_for_response(response)
                response.close()
                raise error
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, **kwargs) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    def _page(self, path: str, params: dict) -> Page:
        data = self._json("GET", path, params=params)
        return Page(items=data["items"], page=data["page"], page_size=data["page_size"], total=data["total"])

    def iterate(self, lister: Callable[..., Page], /, **params) -> Iterator[JSON]:
        """Every item of a paginated list: ``client.iterate(client.list_shares, status="active")``."""
        page = 1
        while True:
            result = lister(**params, page=page)
            yield from result.items
            if not result.has_next or not result.items:
                return
            page += 1

    # --- keys ------------------------------------------------------------------------------------
    def list_keys(self, *, page: int = 1, page_size: int = 50) -> Page:
        return self._page("/v1/keys", {"page": page, "page_size": page_size})

    def create_key(self, name: str = "", *, scope: str = "account", endpoint_id: str | None = None) -> JSON:
        """Create an API key; the token is in ``["key"]`` of this answer only."""
        body = _clean({"name": name, "scope": scope, "endpoint_id": endpoint_id})
        return self._json("POST", "/v1/keys", json=body)

    def get_key(self, key_id: str) -> JSON:
        return self._json("GET", f"/v1/keys/{key_id}")

    def revoke_key(self, key_id: str) -> JSON:
        return self._json("DELETE", f"/v1/keys/{key_id}")

    # --- endpoints -------------------------------------------------------------------------------
    def list_endpoints(
        self,
        *,
        status: str | None = None,
        role: str | None = None,
        q: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page:
        return self._page(
            "/v1/endpoints", {"status": status, "role": role, "q": q, "page": page, "page_size": page_size}
        )

    def register_endpoint(self, body: JSON) -> JSON:
        """Register an endpoint (SPEC §4.1 shape); ``["endpoint_key"]`` is shown only here."""
        return self._json("POST", "/v1/endpoints", json=body)

    def get_endpoint(self, endpoint_id: str) -> JSON:
        return self._json("GET", f"/v1/endpoints/{endpoint_id}")

    def update_endpoint(self, endpoint_id: str, changes: JSON) -> JSON:
        return self._json("PATCH", f"/v1/endpoints/{endpoint_id}", json=changes)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self.request("DELETE", f"/v1/endpoints/{endpoint_id}").close()

    def disable_endpoint(self, endpoint_id: str) -> JSON:
        return self._json("POST", f"/v1/endpoints/{endpoint_id}/disable")

    def enable_endpoint(self, endpoint_id: str) -> JSON:
        return self._json("POST", f"/v1/endpoints/{endpoint_id}/enable")

    def verify_endpoint(self, endpoint_id: str) -> JSON:
        """Have the exchange call the endpoint once: ``{ok, reachable, checks, verified_at}``."""
        return self._json("POST", f"/v1/endpoints/{endpoint_id}/verify")

    def refresh_endpoint(self, endpoint_id: str) -> JSON:
        """Re-gather a PULL producer's audience metadata now: ``{found, new, gone, error}``."""
        return self._json("POST", f"/v1/endpoints/{endpoint_id}/refresh")

    # --- catalog and PUSH producer uploads -------------------------------------------------------
    def search_audiences(
        self,
        q: str | None = None,
        *,
        identifier: str | None = None,
        producer: str | None = None,
        tag: str | None = None,
        status: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page:
        return self._page(
            "/v1/audiences",
            {
                "q": q,
                "identifier": identifier,
                "producer": producer,
                "tag": tag,
                "status": status,
                "page": page,
                "page_size": page_size,
            },
        )

    def get_audience(self, audience_id: str) -> JSON:
        return self._json("GET", f"/v1/audiences/{audience_id}")

    def put_audience_metadata(self, endpoint_id: str, external_id: str, metadata: JSON) -> JSON:
        """PUSH producer: create or update an audience's metadata (name, identifiers, tags...)."""
        return self._json("PUT", f"/v1/endpoints/{endpoint_id}/audiences/{external_id}", json=metadata)

    def upload_audience_data(
        self,
        endpoint_id: str,
        external_id: str,
        source: str | os.PathLike | BinaryIO,
        *,
        gzip: bool = False,
        progress: Progress | None = None,
    ) -> JSON:
        """PUSH producer: stream a CSV file (a path or a binary file object) as the audience's data.

        With ``gzip=True`` the CSV is compressed while it is sent. A source ending in ``.gz`` is sent
        as it is, labelled ``Content-Encoding: gzip``. Returns ``{rows, bytes, sha256, version, ...}``.
        A path or a seekable file is re-read from the start when the upload is retried; another file
        object is sent once.
        """
        path = Path(source) if isinstance(source, (str, os.PathLike)) else None
        precompressed = path is not None and path.suffix == ".gz"
        fh: BinaryIO = path.open("rb") if path else source  # type: ignore[assignment]
        try:
            start = fh.tell() if fh.seekable() else None
            length = (os.fstat(fh.fileno()).st_size - start) if path and start is not None else None

            def body() -> Any:
                if start is not None:
                    fh.seek(start)
                if gzip and not precompressed:
                    return _gzip_chunks(fh, progress)
                if length is not None:
                    return _ReadProgress(fh, length, progress)
                return iter(lambda: _read_reporting(fh, progress), b"")

            headers = {"Content-Type": "text/csv"}
            if gzip or precompressed:
                headers["Content-Encoding"] = "gzip"
            return self._json(
                "PUT",
                f"/v1/endpoints/{endpoint_id}/audiences/{external_id}/data",
                body=body,
                headers=headers,
                retry=start is not None,
            )
        finally:
            if path:
                fh.close()

    # --- shares ----------------------------------------------------------------------------------
    def list_shares(
        self,
        *,
        audience_id: str | None = None,
        destination_id: str | None = None,
        status: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page:
        return self._page(
            "/v1/shares",
            {
                "audience_id": audience_id,
                "destination_id": destination_id,
                "status": status,
                "page": page,
                "page_size": page_size,
            },
        )

    def create_share(self, body: JSON) -> JSON:
        """Create a share (SPEC §4.1 shape); a ``now`` schedule starts its job (``last_job_id``)."""
        return self._json("POST", "/v1/shares", json=body)

    def get_share(self, share_id: str) -> JSON:
        return self._json("GET", f"/v1/shares/{share_id}")

    def update_share(self, share_id: str, changes: JSON) -> JSON:
        return self._json("PATCH", f"/v1/shares/{share_id}", json=changes)

    def delete_share(self, share_id: str) -> None:
        self.request("DELETE", f"/v1/shares/{share_id}").close()

    def run_share(self, share_id: str) -> JSON:
        """Run a share now; returns the queued job."""
        return self._json("POST", f"/v1/shares/{share_id}/run")

    def pause_share(self, share_id: str) -> JSON:
        return self._json("POST", f"/v1/shares/{share_id}/pause")

    def resume_share(self, share_id: str) -> JSON:
        return self._json("POST", f"/v1/shares/{share_id}/resume")

    # --- jobs ------------------------------------------------------------------------------------
    def list_jobs(
        self,
        *,
        share_id: str | None = None,
        state: str | None = None,
        since: str | None = None,
        until: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page:
        return self._page(
            "/v1/jobs",
            {
                "share_id": share_id,
                "state": state,
                "since": since,
                "until": until,
                "page": page,
                "page_size": page_size,
            },
        )

    def get_job(self, job_id: str) -> JSON:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def job_events(self, job_id: str) -> list[JSON]:
        return self._json("GET", f"/v1/jobs/{job_id}/events")["items"]

    def download_rejects(self, job_id: str, to: str | os.PathLike) -> Path:
        """Save the job's rejects CSV (original fields, ``_line``, ``_reason``) to ``to``."""
        target = Path(to)
        if target.is_dir():
            target = target / f"rejects-{job_id}.csv"
        with self.request("GET", f"/v1/jobs/{job_id}/rejects", stream=True) as response:
            _write_atomically(target, response.iter_content(CHUNK))
        return target

    def cancel_job(self, job_id: str) -> JSON:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def wait_job(
        self,
        job_id: str,
        timeout: float = 300.0,
        *,
        interval: float = 0.5,
        until: frozenset[str] | set[str] = TERMINAL_STATES,
        on_update: Callable[[JSON], None] | None = None,
    ) -> JSON:
        """Poll a job until its state is in ``until`` (terminal states by default).

        ``on_update`` sees every polled job. Raises :class:`WaitTimeout` (carrying the last job seen)
        when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_update:
                on_update(job)
            if job["state"] in until:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} still {job['state']} after {timeout:g} s", job=job)
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())) or interval)

    # --- deliveries (PULL consumer) --------------------------------------------------------------
    def list_deliveries(
        self, *, state: str | None = None, endpoint_id: str | None = None, page: int = 1, page_size: int = 50
    ) -> Page:
        return self._page(
            "/v1/deliveries",
            {"state": state, "endpoint_id": endpoint_id, "page": page, "page_size": page_size},
        )

    def get_delivery(self, delivery_id: str) -> JSON:
        return self._json("GET", f"/v1/deliveries/{delivery_id}")

    def download_delivery(
        self,
        delivery_id: str,
        to: str | os.PathLike,
        *,
        progress: Progress | None = None,
        max_resumes: int = 10,
    ) -> Path:
        """Download a delivery's CSV to ``to`` (a file, or a folder for ``delivery-<id>.csv``).

        Bytes go to ``<file>.part`` first; a dropped connection resumes with ``Range`` (guarded by
        ``If-Range`` on the ETag), and so does a later call after an interrupted one. The result is
        checked against the delivery's SHA-256 before it is renamed into place.
        """
        meta = self.get_delivery(delivery_id)
        target = Path(to)
        if target.is_dir():
            target = target / f"delivery-{delivery_id}.csv"
        part = target.with_name(target.name + ".part")
        etag, size = f'"{meta["sha256"]}"', meta.get("size")
        resumes = 0
        while True:
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-", "If-Range": etag} if offset else {}
            if size is not None and offset == size:
                break
            try:
                response = self.request(
                    "GET", f"/v1/deliveries/{delivery_id}/data", headers=headers, stream=True
                )
            except ApiError as exc:
                if exc.status == 416 and offset:
                    part.unlink()  # the partial file is longer than the data: start again
                    continue
                raise
            try:
                with response, part.open("ab" if response.status_code == 206 else "wb") as fh:
                    for chunk in _body_chunks(response):
                        fh.write(chunk)
                        if progress:
                            progress(len(chunk))
            except DROPPED as exc:
                resumes += 1
                if resumes > max_resumes:
                    raise NetworkError(f"download of {delivery_id} kept failing: {_reason(exc)}") from exc
                time.sleep(self._delay(resumes - 1))
                continue
            if size is None or part.stat().st_size >= size:
                break
            resumes += 1  # the server closed early without an error: resume from what arrived
            if resumes > max_resumes:
                raise NetworkError(f"download of delivery {delivery_id} stopped short {max_resumes} times")
        digest = _sha256_file(part)
        if digest != meta["sha256"]:
            part.unlink()
            raise ChecksumMismatch(f"delivery {delivery_id}: SHA-256 {digest}, expected {meta['sha256']}")
        part.replace(target)
        return target

    def ack_delivery(
        self, delivery_id: str, accepted: int, rejected: int = 0, message: str | None = None
    ) -> JSON:
        """Acknowledge a delivery with the consumer's counts; the last ack completes the job."""
        body = _clean({"accepted": accepted, "rejected": rejected, "message": message})
        return self._json("POST", f"/v1/deliveries/{delivery_id}/ack", json=body)

    # --- adapters --------------------------------------------------------------------------------
    def list_adapters(self) -> list[JSON]:
        return self._json("GET", "/v1/adapters")["items"]

    # --- applications (Click to Connect) ---------------------------------------------------------
    def list_applications(self, *, directory: bool = False, q: str | None = None, page: int = 1,
                          page_size: int = 50) -> Page:
        """The caller's own applications, or every approved one with ``directory=True``."""
        return self._page("/v1/applications", _clean({"directory": "true" if directory else None, "q": q,
                                                      "page": page, "page_size": page_size}))

    def connect_application(self, application_id: str, body: JSON) -> JSON:
        """``{"credential": ...}`` → the new endpoint; ``{"method": "oauth2"}`` → ``{"authorize_url"}``."""
        return self._json("POST", f"/v1/applications/{application_id}/connect", json=body)


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. ``read1`` hands over every byte received before a connection drops,
    where ``iter_content`` would discard the last partial chunk, so a resume loses nothing."""
    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(CHUNK)
        return
    while data := raw.read1(CHUNK, decode_content=True):
        yield data


def _read_reporting(fh: IO[bytes], progress: Progress | None) -> bytes:
    data = fh.read(CHUNK)
    if data and progress:
        progress(len(data))
    return data


def _reason(exc: BaseException) -> str:
    """The innermost useful message of a requests/urllib3 error (e.g. 'Connection refused')."""
    text = str(exc)
    if match := re.search(r"\[Errno -?\d+\] ([^'\")]+)", text):
        return match.group(1).strip()
    for marker in ("Read timed out", "Connection aborted", "IncompleteRead"):
        if marker in text:
            return text[text.index(marker) :].split("'))")[0].rstrip(")'\"")
    return text


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(target: Path, chunks: Iterator[bytes]) -> None:
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
    tmp.replace(target)
