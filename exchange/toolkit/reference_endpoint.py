"""Reference endpoint: the endpoint protocol (SPEC §5) served over a folder of CSV files.

As a PULL producer it serves ``producer_dir``'s CSV files as audiences (``GET /audiences``,
``GET /audiences/{id}/data`` with ETag/If-None-Match and gzip); as a PUSH consumer it applies
``POST /audiences/{id}/data?mode=add|replace|remove`` to member files in ``consumer_dir``. This
module is only the HTTP transport; the folder logic lives in ``ref_producer`` and ``ref_consumer``.

Use :class:`ReferenceEndpoint` in tests and demos (``port=0`` picks a free port), or
:func:`serve_endpoint` to block serving, as ``exchange-toolkit serve-endpoint`` does.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from exchange.errors import BadRequest, ConfigError, Conflict, ExchangeError, NotFound, Unauthorized
from exchange.toolkit.ref_consumer import MODES, ConsumerFolder, PartOrderError
from exchange.toolkit.ref_csv import CsvFormatError, iter_body_chunks
from exchange.toolkit.ref_producer import ProducerFolder, iter_file

log = logging.getLogger("exchange.toolkit.endpoint")

#: Content types a sender may label CSV with; clients often fall back to the generic ones.
CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/octet-stream", ""}


def problem_response(error: ExchangeError, headers: dict[str, str] | None = None) -> Response:
    """An RFC 9457 problem document built from the exchange's own error tree."""
    return Response(
        json.dumps(error.problem()), status=error.status, mimetype="application/problem+json", headers=headers
    )


def json_response(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def parse_part(value: str | None) -> tuple[int, int] | None:
    """``X-Exchange-Part: n/N`` as (n, N); None when absent; BadRequest when malformed."""
    if not value:
        return None
    number, _, total = value.partition("/")
    try:
        part = int(number), int(total)
    except ValueError:
        raise BadRequest(f"X-Exchange-Part must look like n/N, got {value[:40]!r}") from None
    if not 1 <= part[0] <= part[1]:
        raise BadRequest("X-Exchange-Part must satisfy 1 <= n <= N")
    return part


class ReferenceApp:
    """The WSGI application of the reference endpoint (producer and/or consumer)."""

    def __init__(
        self,
        producer_dir: Path | str | None = None,
        consumer_dir: Path | str | None = None,
        credential: str | None = None,
        *,
        extra_identifiers: Iterable[str] = (),
        oauth=None,
    ):
        """``oauth`` (an :class:`~exchange.toolkit.ref_oauth.OAuthSettings`) also makes the endpoint its own
        OAuth 2.0 authorization server under ``/oauth``; the access tokens it issues are accepted as credentials."""
        extra = tuple(extra_identifiers)
        self.oauth_app = self.oauth_store = None
        if oauth is not None:
            from exchange.toolkit.ref_oauth import create_oauth_app

            self.oauth_app, self.oauth_store = create_oauth_app(oauth)
        self.producer = ProducerFolder(producer_dir, extra_identifiers=extra) if producer_dir else None
        self.consumer = ConsumerFolder(consumer_dir, extra_identifiers=extra) if consumer_dir else None
        self.credential = credential
        self.url_map = Map(
            [
                Rule("/healthz", endpoint="healthz", methods=["GET"]),
                Rule("/audiences", endpoint="audiences", methods=["GET"]),
                Rule("/audiences/<audience_id>/data", endpoint="get_data", methods=["GET"]),
                Rule("/audiences/<audience_id>/data", endpoint="post_data", methods=["POST"]),
            ]
        )

    def __call__(self, environ, start_response):
        return self.dispatch(Request(environ))(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route a request; every failure becomes a problem document, never a bare 500 page."""
        if self.oauth_app is not None and request.path.startswith("/oauth/"):
            return Response.from_app(self.oauth_app, request.environ, buffered=True)
        try:
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            if endpoint != "healthz":
                self._authorize(request)
            return getattr(self, f"on_{endpoint}")(request, **args)
        except ExchangeError as error:
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
            return problem_response(error, headers)
        except HTTPException as exc:
            error = ExchangeError(exc.description or "", status=exc.code)
            error.title = exc.name
            error.type_slug = exc.name.lower().replace(" ", "-")
            allow = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
            return problem_response(error, allow)

    def _authorize(self, request: Request) -> None:
        if self.credential is None and self.oauth_store is None:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # Constant-time comparison: the credential is a shared secret.
        accepted = scheme.lower() == "bearer" and (
            (self.credential is not None and hmac.compare_digest(token.strip().encode(), self.credential.encode()))
            or (self.oauth_store is not None and self.oauth_store.valid(token.strip()))
        )
        if not accepted:
            raise Unauthorized("a valid 'Authorization: Bearer <credential>' header is required")

    def on_healthz(self, request: Request) -> Response:
        """Process is up (no credential needed, so that probes can call it)."""
        return json_response({"status": "ok"})

    def on_audiences(self, request: Request) -> Response:
        """List the producer's audiences."""
        if self.producer is None:
            raise NotFound("this endpoint is not a producer")
        return json_response({"audiences": [audience.to_json() for audience in self.producer.list()]})

    def on_get_data(self, request: Request, audience_id: str) -> Response:
        """Stream an audience's CSV; 304 when ``If-None-Match`` names the current version."""
        audience = self.producer.get(audience_id) if self.producer else None
        if audience is None:
            raise NotFound(f"no audience with id {audience_id[:100]!r}")
        if request.if_none_match.contains_weak(audience.version):
            response = Response(status=304)
            response.set_etag(audience.version)
            return response
        gzip = request.accept_encodings["gzip"] > 0 and "Range" not in request.headers
        if not gzip:
            # Plain bytes: ``Range`` (guarded by ``If-Range``) is honoured, as ``Accept-Ranges`` promises.
            response = send_file(audience.path, request.environ, mimetype="text/csv", etag=audience.version,
                                 conditional=True, max_age=None)
            response.headers["Vary"] = "Accept-Encoding"
            for duplicate in ("Date", "Content-Disposition"):  # the server adds Date; no attachment
                response.headers.pop(duplicate, None)
            return response
        response = Response(iter_file(audience.path, gzip=gzip), mimetype="text/csv", direct_passthrough=True)
        response.set_etag(audience.version)
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Content-Encoding"] = "gzip"
        return response

    def on_post_data(self, request: Request, audience_id: str) -> Response:
        """Apply pushed members (add / replace / remove) to the destination audience's file."""
        if self.consumer is None:
            raise NotFound("this endpoint is not a consumer")
        mode = request.args.get("mode", "")
        if mode not in MODES:
            raise BadRequest(
                f"query parameter mode must be one of {', '.join(MODES)}",
                errors={"mode": [f"must be one of {', '.join(MODES)}"]},
            )
        if request.mimetype not in CSV_TYPES:
            raise BadRequest(f"the body must be text/csv, not {request.mimetype}")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip"):
            raise BadRequest(f"unsupported Content-Encoding {encoding[:40]!r}; use gzip or none")
        part = parse_part(request.headers.get("X-Exchange-Part"))
        try:
            result = self.consumer.receive(
                audience_id,
                mode,
                iter_body_chunks(request.stream),
                gzip=encoding != "identity",
                part=part,
                idempotency_key=request.headers.get("Idempotency-Key") or None,
            )
        except CsvFormatError as exc:
            raise BadRequest(str(exc)) from exc
        except PartOrderError as exc:
            raise Conflict(str(exc)) from exc
        return json_response(result.to_json())


class _LoggingHandler(WSGIRequestHandler):
    """Request log lines go to the ``exchange.toolkit.endpoint`` logger instead of stderr."""

    def log(self, type: str, message: str, *args) -> None:
        level = logging.ERROR if type == "error" else logging.DEBUG
        log.log(level, "%s " + message, self.address_string(), *args)


class ReferenceEndpoint:
    """A reference endpoint running in a background thread; ``port=0`` binds a free port.

    ``with ReferenceEndpoint(producer_dir=..., consumer_dir=..., credential="s3cret") as ep:``
    starts it and exposes ``ep.url``; ``start()``/``stop()`` do the same by hand.
    """

    def __init__(
        self,
        producer_dir: Path | str | None = None,
        consumer_dir: Path | str | None = None,
        credential: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        extra_identifiers: Iterable[str] = (),
        oauth=None,
    ):
        self.app = ReferenceApp(producer_dir, consumer_dir, credential, extra_identifiers=extra_identifiers,
                                oauth=oauth)
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to register as the endpoint's contact URL."""
        if self._server is None:
            raise RuntimeError("the endpoint is not started")
        return f"http://{self.host}:{self.port}"

    def wsgi(self, environ, start_response):
        """The WSGI entry point of the server; subclasses wrap it (see tests/fakes)."""
        return self.app(environ, start_response)

    def start(self) -> Self:
        if self._server is not None:
            return self  # already running (e.g. started by hand, then used as a context manager)
        self._server = build_server(self.host, self.port, self.wsgi)
        self.port = self._server.port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"reference-endpoint-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def build_server(host: str, port: int, app) -> BaseWSGIServer:
    """A threaded werkzeug server: one thread per connection, so a slow call blocks no other."""
    return make_server(host, port, app, threaded=True, request_handler=_LoggingHandler)


def serve_endpoint(
    host: str,
    port: int,
    *,
    producer_dir: Path | str | None = None,
    consumer_dir: Path | str | None = None,
    credential: str | None = None,
) -> None:
    """Serve the reference endpoint until interrupted (Ctrl-C); the CLI's ``serve-endpoint``."""
    if producer_dir is None and consumer_dir is None:
        raise ConfigError("give a producer folder, a consumer folder, or both")
    if producer_dir is not None and not Path(producer_dir).is_dir():
        raise ConfigError(f"producer folder {producer_dir} does not exist")
    app = ReferenceApp(producer_dir, consumer_dir, credential)
    server = build_server(host, port, app)
    roles = [name for name, folder in (("producer", producer_dir), ("consumer", consumer_dir)) if folder]
    log.info("reference endpoint (%s) listening on http://%s:%s", " + ".join(roles), host, server.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
