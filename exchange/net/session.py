"""The one HTTP session for every call the exchange makes (endpoints, webhooks, partner APIs).

Safety is enforced where the socket is opened, not only when a URL is registered: each new
connection resolves the host once, refuses it if any address is forbidden
(:func:`exchange.net.urls.resolve_checked`) and connects to exactly those checked addresses. The
``Host`` header, TLS SNI and certificate checks still use the host name, so HTTPS works unchanged,
and a DNS answer that changes between a check and the connection (rebinding) cannot reach a private
address.

Redirect policy: GET/HEAD/OPTIONS follow at most ``max_redirects`` (default 3) redirects, each hop
re-checked (scheme, userinfo, literal IPs here; resolved addresses at connect time) and never from
https down to http; requests drops the ``Authorization`` header when the host changes. Other methods
never follow redirects: their streamed bodies cannot be replayed, and a 3xx answer is classified as
a permanent failure by :mod:`exchange.net.outcomes`.

Environment proxies are ignored (``trust_env = False``) because a proxy would make the exchange
connect to the proxy's address instead of the checked one.
"""
from __future__ import annotations

import socket
import sys
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as u3_connection

from exchange.errors import UnsafeUrl
from exchange.net.deadline import CallDeadlineExceeded, deadline, register_socket
from exchange.net.urls import Resolver, check_url_syntax, resolve_checked

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_REDIRECTS = 3
DEFAULT_TOTAL_TIMEOUT = 300.0
_REDIRECTABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@lru_cache(maxsize=1)
def default_user_agent() -> str:
    try:
        ver = version("audience-exchange")
    except PackageNotFoundError:
        ver = "dev"
    return f"audience-exchange/{ver}"


class _GuardedConnectionMixin:
    """Replaces urllib3's socket creation with resolve-check-connect on the checked address."""

    allow_private: bool = False
    resolver: Resolver = staticmethod(socket.getaddrinfo)

    # Attributes provided by urllib3's HTTPConnection.
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    _dns_host: str

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        register_socket(self.sock)  # type: ignore[attr-defined]

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "sock", None) is not None:  # a kept-alive connection from the pool
            register_socket(self.sock)  # type: ignore[attr-defined]
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _new_conn(self) -> socket.socket:
        try:
            infos = resolve_checked(
                self._dns_host, self.port, allow_private=self.allow_private, resolver=type(self).resolver
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        last_error: OSError | None = None
        for info in infos:
            # A literal address: create_connection's own getaddrinfo does no DNS lookup here.
            address = info[4][0]
            try:
                sock = u3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                last_error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")  # type: ignore[arg-type]


def _guarded_pool_classes(allow_private: bool, resolver: Resolver) -> dict[str, type]:
    # Settings travel as class attributes: urllib3's pool keys reject unknown connection kwargs.
    attrs = {"allow_private": allow_private, "resolver": staticmethod(resolver)}
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), attrs)
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), attrs)
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections only reach addresses allowed by the URL policy."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo, **kwargs: Any):
        self._pool_classes = _guarded_pool_classes(allow_private, resolver)
        kwargs.setdefault("max_retries", 0)  # retries belong to call_with_retries, which sees outcomes
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise UnsafeUrl("Outbound calls do not go through proxies; the proxy address cannot be checked.")


class OutboundSession(requests.Session):
    """requests.Session with the exchange's User-Agent, default timeouts, address guard and redirects."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolver: Resolver = socket.getaddrinfo,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        user_agent: str | None = None,
        pool_maxsize: int = 10,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
    ):
        """``timeout`` (a number or a (connect, read) pair) overrides the two separate timeouts;
        ``total_timeout`` bounds each whole call (:mod:`exchange.net.deadline`; None: no bound)."""
        super().__init__()
        self.trust_env = False
        self.allow_private = allow_private
        if timeout is not None:
            connect_timeout, read_timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.timeout: tuple[float, float] = (connect_timeout, read_timeout)
        self.max_redirects = max_redirects
        self.total_timeout = total_timeout
        self.headers["User-Agent"] = user_agent or default_user_agent()
        if headers:
            self.headers.update(headers)
        adapter = GuardedAdapter(allow_private=allow_private, resolver=resolver, pool_maxsize=pool_maxsize)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        # Fail fast with a clear message before any I/O; connect time re-checks resolved addresses.
        check_url_syntax(str(url), allow_private=self.allow_private)
        name = method.decode() if isinstance(method, bytes) else method
        if name.upper() not in _REDIRECTABLE_METHODS:
            kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        with deadline(self.total_timeout) as call:
            try:
                response = super().send(request, **kwargs)
            except requests.RequestException:
                if call is not None and call.fired:
                    raise self._deadline_error(request) from None
                raise
            if call is not None and call.fired:  # the cut may also look like a short, complete body
                response.close()
                raise self._deadline_error(request)
            return response

    def _deadline_error(self, request: requests.PreparedRequest) -> CallDeadlineExceeded:
        return CallDeadlineExceeded(
            f"Read timed out: no complete answer within the total deadline of {self.total_timeout:g}s "
            "(the peer kept the call open).", request=request)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        # Called for every redirect hop with the absolute target URL: the place to vet it.
        target = prepared_request.url or ""
        check_url_syntax(target, allow_private=self.allow_private)
        previous = urlsplit(response.request.url or "")
        if previous.scheme == "https" and urlsplit(target).scheme != "https":
            raise UnsafeUrl("Refusing to follow a redirect from https to http.")
        super().rebuild_auth(prepared_request, response)
