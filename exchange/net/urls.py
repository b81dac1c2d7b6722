"""Which URLs and addresses the exchange may call, and how URLs appear in messages.

Two checks share one address policy:

* :func:`check_url_syntax` runs at registration time (API validation). It never touches DNS, so a
  registration is fast and deterministic; it refuses bad schemes, missing hosts, userinfo and
  *literal* IP addresses that are forbidden.
* :func:`check_url` additionally resolves the host and refuses it if *any* address is forbidden.
  It is useful for an explicit "verify" call, but the authoritative check is made again at connect
  time by :mod:`exchange.net.session`, which connects only to the address it checked (DNS rebinding
  between a check and the connection cannot slip through).

``allow_private`` (``EXCHANGE_ALLOW_PRIVATE_URLS``) opens loopback, RFC 1918, ULA, CGNAT and
link-local ranges for demos and tests. Cloud metadata services, the unspecified address and
multicast stay forbidden whatever the setting: no legitimate endpoint lives there.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from exchange.errors import UnsafeUrl

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")

# Instance metadata services hand out cloud credentials; never reachable, even with allow_private.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
# Python's ``is_private`` does not cover CGNAT, and ``is_global`` is the precise test for "public";
# the explicit list keeps the refusal message specific.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

# Query parameters whose values are never secret and help a reader of an error message.
_SAFE_QUERY_PARAMS = frozenset({"mode", "page", "page_size", "state", "part"})


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052 well-known
# prefix, RFC 8215 local-use prefix). A gateway translates them to the IPv4 address they embed.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (RFC 4291 §2.5.5.1)


def _unwrap(addr: IPAddress) -> IPAddress:
    """An IPv6 address that carries an IPv4 address is judged as the IPv4 address it carries:
    IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4 (2002:aabb:ccdd::/48, RFC 3056),
    NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and Teredo (2001::/32, the client address)."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return addr
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in _NAT64) or (addr in _IPV4_COMPATIBLE and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def address_problem(addr: IPAddress | str, *, allow_private: bool) -> str | None:
    """Why ``addr`` may not be called, or ``None`` when it may."""
    ip = _unwrap(ipaddress.ip_address(addr.split("%", 1)[0]) if isinstance(addr, str) else addr)
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.version == 4 and ip in _CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_reserved:  # before is_private, which also covers 240.0.0.0/4
        return "a reserved address"
    if ip.is_private:
        return "a private network address"
    if not ip.is_global:  # documentation, benchmarking and other special-purpose ranges
        return "a reserved address"
    return None


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("The URL is empty.")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise UnsafeUrl("The URL contains whitespace or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise UnsafeUrl(f"The URL is malformed: {exc}.") from exc
    return parts


def check_url_syntax(url: str, *, allow_private: bool = False) -> str:
    """Validate ``url`` without DNS: scheme, host, no userinfo, no forbidden literal IP.

    Returns the host name (lower case, IPv6 without brackets) so callers can log or compare it.
    """
    parts = _split(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeUrl(f"Only http and https URLs are allowed, not {parts.scheme or 'a relative URL'!r}.")
    if "@" in parts.netloc:
        raise UnsafeUrl("The URL must not contain credentials (user:password@); register a credential instead.")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrl("The URL has no host.")
    literal = _literal_ip(host) or _numeric_ipv4(host)
    if literal is not None:
        problem = address_problem(literal, allow_private=allow_private)
        if problem:
            raise UnsafeUrl(f"The URL points at {problem} ({literal}), which the exchange does not call.")
    elif not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?", host, re.ASCII) and not _is_idna(host):
        raise UnsafeUrl(f"The URL host {host!r} is not a valid host name.")
    elif not allow_private and (host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost")):
        # RFC 6761: these names always resolve to loopback, so refuse them without asking DNS
        raise UnsafeUrl("The URL points at localhost, which the exchange does not call.")
    return host


_NUMERIC_LABEL = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)")


def _numeric_ipv4(host: str) -> IPAddress | None:
    """Every other spelling of an IPv4 address that resolvers and browsers accept.

    ``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1``, ``0177.0.0.1`` and ``127.0.0.1.``
    all mean 127.0.0.1 to ``inet_aton`` (which ``getaddrinfo`` uses) and to the WHATWG URL parser.
    As in WHATWG, a host whose last label is a number is an IPv4 address or invalid, never a name.
    """
    labels = host.rstrip(".").split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    try:
        packed = socket.inet_aton(host.rstrip("."))
    except OSError:
        raise UnsafeUrl(f"The URL host {host!r} is neither a valid IPv4 address nor a host name.") from None
    return ipaddress.IPv4Address(packed)


def _is_idna(host: str) -> bool:
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def resolve_checked(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> list[tuple[Any, ...]]:
    """Resolve ``host`` once and return its address infos, refusing if any address is forbidden.

    Refusing on *any* forbidden address (rather than skipping it) means a name that mixes public and
    private answers is rejected outright; otherwise retries could reach the private one.
    """
    # socket.gaierror propagates: an unresolvable name is not a safety problem and may come back.
    if _literal_ip(host) is not None:
        # A literal needs no DNS; AI_NUMERICHOST guarantees none happens.
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    else:
        infos = list(resolver(host, port, 0, socket.SOCK_STREAM))
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} did not resolve to any address")
    for info in infos:
        addr = info[4][0]
        problem = address_problem(addr, allow_private=allow_private)
        if problem:
            raise UnsafeUrl(f"The host {host} resolves to {problem} ({addr}), which the exchange does not call.")
    return infos


def check_url(url: str, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> None:
    """Validate ``url`` fully: :func:`check_url_syntax`, then every resolved address.

    A name that does not resolve raises :class:`UnsafeUrl` too, since the URL cannot be verified.
    """
    host = check_url_syntax(url, allow_private=allow_private)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        resolve_checked(host, port, allow_private=allow_private, resolver=resolver)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"The host {host} does not resolve ({exc.strerror or exc}).") from exc


def redact_url(url: str) -> str:
    """``url`` fit for messages and logs: no userinfo, query values hidden unless known harmless."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, v if k in _SAFE_QUERY_PARAMS else "REDACTED") for k, v in pairs], safe="REDACTED"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# Full URLs, or bare paths with a query as urllib3 reports them ("with url: /x?token=...").
_URL_OR_PATH_IN_TEXT = re.compile(
    r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+)|(?P<path>/[^\s'\"?<>]*)\?[^\s'\")<>]*"
)


def redact_text(text: str) -> str:
    """Hide URL credentials and query strings inside free text such as library exception messages."""

    def _sub(m: re.Match[str]) -> str:
        if m.group("url"):
            return redact_url(m.group("url"))
        return f"{m.group('path')}?REDACTED"

    return _URL_OR_PATH_IN_TEXT.sub(_sub, text)
