"""A scriptable endpoint for end-to-end tests: the reference endpoint plus recording and faults.

:class:`ProtocolEndpoint` is a real HTTP server on loopback that behaves like the reference endpoint
(PULL producer over ``producer_dir``, PUSH consumer into ``consumer_dir``) and in addition

- records every request (method, path, query, headers, body decompressed) in a thread-safe list;
- follows a fault script per (method, path pattern): each call takes the next entry, a
  :class:`Fault` to answer with or ``None`` to answer normally; a ``Fault(forever=True)`` entry is
  never used up;
- can serve custom raw bytes as an audience's data (non-CSV, truncated gzip, invalid UTF-8...);
- can act as a consumer that answers ``202`` and acknowledges later (``push_202=True``).

Usage::

    with ProtocolEndpoint(producer_dir=tmp_path / "p", consumer_dir=tmp_path / "c",
                          credential="s3cret") as ep:
        ep.write_audience("loyal", "email,country\\na@example.com,FR\\n", name="Loyal")
        ep.script("POST", "/audiences/*/data", [Fault(status=500), None])
        ...  # point the exchange at ep.url
        assert [r.status for r in ep.requests_to("POST")] == [500, 200]

On leaving the ``with`` block without an exception, script entries never used fail the test.
"""

from __future__ import annotations

import fnmatch
import io
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.wrappers import Request, Response

from exchange.toolkit.reference_endpoint import ReferenceEndpoint

_DEFAULT_RETRY_AFTER = {202, 429, 503}


@dataclass(frozen=True)
class Fault:
    """How to misbehave on one call.

    - ``status``: answer this status instead of handling the call (problem JSON body for errors,
      ``Retry-After: 1`` by default on 202/429/503);
    - ``headers`` / ``body`` / ``content_type``: override the fault answer's parts (a dict body is
      sent as JSON);
    - ``delay``: sleep this long first (then answer ``status``, or handle normally when it is None);
    - ``drop_connection``: read part of the request, then close the socket without any answer;
    - ``drop_after_bytes``: answer normally but close the socket after this many body bytes;
    - ``stall_after_bytes`` / ``stall``: answer normally, but pause ``stall`` seconds once this many
      body bytes are sent (a slow producer: the reader has part of the body and waits for the rest);
    - ``forever``: the entry stays at the head of the script and answers every later call.
    """

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | dict | None = None
    content_type: str | None = None
    delay: float = 0.0
    drop_connection: bool = False
    drop_after_bytes: int | None = None
    stall_after_bytes: int | None = None
    stall: float = 0.0
    forever: bool = False

    def response(self) -> Response:
        assert self.status is not None
        headers = dict(self.headers)
        if self.status in _DEFAULT_RETRY_AFTER:
            headers.setdefault("Retry-After", "1")
        body, content_type = self.body, self.content_type
        if body is None and self.status >= 400:
            body = {
                "type": "about:blank",
                "title": "Scripted fault",
                "status": self.status,
                "detail": f"fault script answered {self.status}",
            }
            content_type = content_type or "application/problem+json"
        elif body is None and self.status == 202:
            body = {"status": "pending"}
        if isinstance(body, dict):
            body, content_type = json.dumps(body), content_type or "application/json"
        return Response(
            body or b"", status=self.status, headers=headers, content_type=content_type or "text/plain"
        )


@dataclass
class RecordedRequest:
    """One call the endpoint received; ``status`` is what it answered (None: connection dropped)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_body: bytes
    fault: Fault | None = None
    status: int | None = None
    received_at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        """A request header, looked up case-insensitively."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass(frozen=True)
class _RawData:
    body: bytes
    status: int
    content_type: str
    headers: Mapping[str, str]


class ProtocolEndpoint(ReferenceEndpoint):
    """Reference endpoint with request recording, a fault script, raw data and a 202 consumer mode."""

    def __init__(
        self,
        producer_dir: Path | str | None = None,
        consumer_dir: Path | str | None = None,
        credential: str | None = None,
        *,
        push_202: bool = False,
        verify: bool = True,
        **kwargs,
    ):
        super().__init__(producer_dir, consumer_dir, credential, **kwargs)
        self.producer_dir = Path(producer_dir) if producer_dir else None
        self.consumer_dir = Path(consumer_dir) if consumer_dir else None
        self.push_202 = push_202
        self.verify = verify
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._scripts: list[tuple[str, str, list[Fault | None]]] = []
        self._raw: dict[str, _RawData] = {}
        self._acks: list[dict] = []

    # -- test-facing API ---------------------------------------------------------------------------

    def script(self, method: str, path: str, faults: Iterable[Fault | None]) -> None:
        """Queue answers for calls matching ``method`` (or ``*``) and ``path`` (fnmatch pattern)."""
        with self._lock:
            self._scripts.append((method.upper(), path, list(faults)))

    def serve_raw(
        self,
        audience_id: str,
        body: bytes | None,
        *,
        status: int = 200,
        content_type: str = "text/csv",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``GET /audiences/{audience_id}/data`` with exactly these bytes (None: stop doing so).

        Headers are sent as given, e.g. ``{"Content-Encoding": "gzip"}`` with a truncated gzip body.
        The audience still has to exist in the producer folder to appear in the listing.
        """
        with self._lock:
            if body is None:
                self._raw.pop(audience_id, None)
            else:
                self._raw[audience_id] = _RawData(body, status, content_type, dict(headers or {}))

    def write_audience(
        self,
        audience_id: str,
        csv_text: str | bytes,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] = (),
    ) -> Path:
        """Create or overwrite a producer audience file (and its sidecar when metadata is given)."""
        if self.producer_dir is None:
            raise RuntimeError("this endpoint has no producer folder")
        self.producer_dir.mkdir(parents=True, exist_ok=True)
        path = self.producer_dir / f"{audience_id}.csv"
        path.write_bytes(csv_text.encode("utf-8") if isinstance(csv_text, str) else csv_text)
        if name is not None or description is not None or tags:
            sidecar = {"name": name or audience_id, "description": description or "", "tags": list(tags)}
            path.with_suffix(".json").write_text(json.dumps(sidecar), encoding="utf-8")
        return path

    def consumer_file(self, audience_id: str) -> Path:
        """Where the consumer keeps the members of destination audience ``audience_id``."""
        if self.app.consumer is None:
            raise RuntimeError("this endpoint has no consumer folder")
        return self.app.consumer.path_for(audience_id)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests filtered by method and path pattern (fnmatch)."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path is None or fnmatch.fnmatchcase(r.path, path))
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    @property
    def pending_acks(self) -> list[dict]:
        """In ``push_202`` mode: what each data POST would have answered, for the later ack."""
        with self._lock:
            return list(self._acks)

    def unused_script(self) -> list[tuple[str, str, Fault | None]]:
        """Script entries not used yet (entries marked ``forever`` do not count)."""
        with self._lock:
            return [
                (method, path, entry)
                for method, path, entries in self._scripts
                for entry in entries
                if not (isinstance(entry, Fault) and entry.forever)
            ]

    def __exit__(self, exc_type, *exc_info) -> None:
        self.stop()
        if exc_type is None and self.verify:
            unused = self.unused_script()
            assert not unused, f"scripted answers never used (an expected call did not come): {unused}"

    # -- WSGI --------------------------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        request = Request(environ)
        fault = self._next_fault(request.method, request.path)
        if fault is not None and fault.drop_connection:
            raw = self._read_some(environ)
            self._record(request, raw, fault)
            _drop(environ)
        raw = request.get_data(cache=False)
        record = self._record(request, raw, fault)
        # The inner app reads the body again, so it gets a fresh, plain (de-chunked) stream.
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        response = self._answer(Request(environ), fault)
        record.status = response.status_code
        if fault is not None and fault.drop_after_bytes is not None:
            return _cut_after(response(environ, start_response), fault.drop_after_bytes, environ)
        if fault is not None and fault.stall_after_bytes is not None:
            return _stall_after(response(environ, start_response), fault.stall_after_bytes, fault.stall)
        return response(environ, start_response)

    def _answer(self, request: Request, fault: Fault | None) -> Response:
        if fault is not None and fault.status is not None:
            return fault.response()
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and len(parts) == 3 and parts[0] == "audiences" and parts[2] == "data":
            with self._lock:
                raw = self._raw.get(parts[1])
            # Unauthorized calls fall through to the app, which answers 401 as usual.
            if raw is not None and _authorized(request, self.app.credential):
                return Response(
                    raw.body, status=raw.status, headers=dict(raw.headers), content_type=raw.content_type
                )
        response = self.app.dispatch(request)
        if self.push_202 and request.method == "POST" and response.status_code == 200:
            result = json.loads(response.get_data())
            with self._lock:
                self._acks.append(
                    {
                        "audience_id": parts[1] if len(parts) > 1 else "",
                        "mode": request.args.get("mode"),
                        "part": request.headers.get("X-Exchange-Part"),
                        "job_id": request.headers.get("X-Exchange-Job-Id"),
                        "idempotency_key": request.headers.get("Idempotency-Key"),
                        **result,
                    }
                )
            return Response(
                json.dumps({"status": "accepted, acknowledgement follows"}),
                status=202,
                mimetype="application/json",
            )
        return response

    def _next_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for wanted_method, pattern, entries in self._scripts:
                if entries and wanted_method in ("*", method) and fnmatch.fnmatchcase(path, pattern):
                    entry = entries[0]
                    if not (isinstance(entry, Fault) and entry.forever):
                        entries.pop(0)
                    return entry
        return None

    def _record(self, request: Request, raw: bytes, fault: Fault | None) -> RecordedRequest:
        encoding = request.headers.get("Content-Encoding", "").lower()
        body = raw
        if encoding in ("gzip", "x-gzip") and raw:
            try:
                body = zlib.decompress(raw, wbits=16 + zlib.MAX_WBITS)
            except zlib.error:
                body = raw  # the test wanted bad gzip; keep what came
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.args.items()),
            headers=dict(request.headers.items()),
            body=body,
            raw_body=raw,
            fault=fault,
        )
        with self._lock:
            self._records.append(record)
        return record

    @staticmethod
    def _read_some(environ) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            return stream.read(1024)
        return stream.read(min(max(length // 2, 1), 65536)) if length else b""


def _authorized(request: Request, credential: str | None) -> bool:
    return credential is None or request.headers.get("Authorization", "") == f"Bearer {credential}"


def _drop(environ) -> None:
    """Close the client's connection without an answer; werkzeug treats the error as a hang-up."""
    connection: socket.socket = environ["werkzeug.socket"]
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    raise ConnectionAbortedError("fault script dropped the connection")


def _stall_after(body: Iterable[bytes], limit: int, pause: float) -> Iterator[bytes]:
    sent, stalled = 0, False
    for chunk in body:
        if not stalled and sent + len(chunk) >= limit:
            yield chunk[: limit - sent]
            time.sleep(pause)
            stalled, chunk = True, chunk[limit - sent:]
        sent += len(chunk)
        if chunk:
            yield chunk


def _cut_after(body: Iterable[bytes], limit: int, environ) -> Iterator[bytes]:
    sent = 0
    for chunk in body:
        if sent + len(chunk) >= limit:
            yield chunk[: limit - sent]
            _drop(environ)
        sent += len(chunk)
        yield chunk
