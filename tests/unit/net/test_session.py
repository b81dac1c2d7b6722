"""OutboundSession against real loopback servers: address guard at connect time, redirects, timeouts."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from exchange.errors import UnsafeUrl
from exchange.net import OutboundSession, Resolution, classify, default_user_agent


def test_sets_user_agent_and_keeps_host_name_when_pinning(httpserver: HTTPServer, resolver_for) -> None:
    calls: list[str] = []
    session = OutboundSession(allow_private=True, resolver=resolver_for({"crm.test": ["127.0.0.1"]}, calls))
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response("ok")

    httpserver.expect_request("/audiences").respond_with_handler(handler)
    resp = session.get(f"http://crm.test:{httpserver.port}/audiences")
    assert resp.status_code == 200
    assert seen[0].headers["User-Agent"] == default_user_agent()
    assert default_user_agent().startswith("audience-exchange/")
    assert seen[0].headers["Host"] == f"crm.test:{httpserver.port}"
    assert calls == ["crm.test"]


def test_refuses_loopback_at_connect_time(httpserver: HTTPServer, resolver_for) -> None:
    # The name passes the syntax check; only the resolved address reveals loopback.
    session = OutboundSession(allow_private=False, resolver=resolver_for({"crm.test": ["127.0.0.1"]}))
    httpserver.expect_request("/audiences").respond_with_data("should not be reached")
    with pytest.raises(UnsafeUrl, match=r"crm\.test resolves to a loopback address"):
        session.get(f"http://crm.test:{httpserver.port}/audiences")
    assert httpserver.log == []


def test_dns_rebinding_cannot_reach_private_address(httpserver: HTTPServer, resolver_for) -> None:
    from exchange.net import check_url

    # First lookup (registration check) answers public, the next (connection) answers loopback.
    resolver = resolver_for({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    check_url(f"http://rebind.test:{httpserver.port}/", allow_private=False, resolver=resolver)
    session = OutboundSession(allow_private=False, resolver=resolver)
    httpserver.expect_request("/").respond_with_data("private data")
    with pytest.raises(UnsafeUrl, match="loopback"):
        session.get(f"http://rebind.test:{httpserver.port}/")
    assert httpserver.log == []


def test_refuses_literal_private_url_before_any_io() -> None:
    session = OutboundSession(allow_private=False)
    with pytest.raises(UnsafeUrl, match="loopback"):
        session.get("http://127.0.0.1:9/")
    with pytest.raises(UnsafeUrl, match="credentials"):
        session.get("http://user:pw@crm.example/")


def test_connects_over_ipv6_literal() -> None:
    try:
        srv = socket.socket(socket.AF_INET6)
        srv.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv.listen(1)
    port = srv.getsockname()[1]

    def answer() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nv6")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(UnsafeUrl, match="loopback"):
            OutboundSession(allow_private=False).get(f"http://[::1]:{port}/")
        assert OutboundSession(allow_private=True).get(f"http://[::1]:{port}/").text == "v6"
    finally:
        thread.join(timeout=5)
        srv.close()


def test_follows_get_redirects_and_drops_authorization_on_host_change(httpserver: HTTPServer, resolver_for) -> None:
    session = OutboundSession(allow_private=True, resolver=resolver_for({"other.test": ["127.0.0.1"]}))
    port = httpserver.port
    httpserver.expect_request("/old").respond_with_data("", status=302, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data(
        "", status=307, headers={"Location": f"http://other.test:{port}/final"}
    )
    seen: list[Request] = []
    httpserver.expect_request("/final").respond_with_handler(lambda r: seen.append(r) or Response("done"))
    resp = session.get(f"http://127.0.0.1:{port}/old", headers={"Authorization": "Bearer s3cret"})
    assert resp.text == "done"
    assert [r.status_code for r in resp.history] == [302, 307]
    assert "Authorization" not in seen[0].headers
    assert seen[0].headers["Host"] == f"other.test:{port}"


def test_redirect_to_forbidden_address_is_refused(httpserver: HTTPServer, resolver_for) -> None:
    resolver = resolver_for({"metadata.test": ["169.254.169.254"]})
    session = OutboundSession(allow_private=True, resolver=resolver)
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "http://169.254.169.254/"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "http://metadata.test/x"})
    with pytest.raises(UnsafeUrl, match="metadata"):
        session.get(f"http://127.0.0.1:{httpserver.port}/a")
    with pytest.raises(UnsafeUrl, match="metadata"):
        session.get(f"http://127.0.0.1:{httpserver.port}/b")


def test_redirect_loop_stops_after_max_redirects(httpserver: HTTPServer) -> None:
    session = OutboundSession(allow_private=True, max_redirects=2)
    httpserver.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})
    with pytest.raises(requests.TooManyRedirects) as info:
        session.get(f"http://127.0.0.1:{httpserver.port}/loop")
    assert classify(info.value).resolution is Resolution.FAIL
    assert len(httpserver.log) == 3


def test_post_does_not_follow_redirects(httpserver: HTTPServer) -> None:
    session = OutboundSession(allow_private=True)
    httpserver.expect_request("/data", method="POST").respond_with_data("", status=307, headers={"Location": "/x"})
    resp = session.post(f"http://127.0.0.1:{httpserver.port}/data", data=iter([b"a,b\n", b"1,2\n"]))
    assert resp.status_code == 307
    assert len(httpserver.log) == 1
    outcome = classify(resp)
    assert outcome.resolution is Resolution.FAIL
    assert "redirects are not followed" in outcome.message


def test_https_to_http_redirect_is_refused() -> None:
    session = OutboundSession(allow_private=False)
    previous = requests.Response()
    previous.request = requests.Request("GET", "https://crm.example/a").prepare()
    target = requests.Request("GET", "http://crm.example/b").prepare()
    with pytest.raises(UnsafeUrl, match="https to http"):
        session.rebuild_auth(target, previous)


def test_default_read_timeout_applies(raw_server) -> None:
    # Accept the connection, read the request, never answer.
    port = raw_server(lambda conn: (conn.recv(65536), time.sleep(0.8)))
    session = OutboundSession(allow_private=True, read_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout) as info:
        session.get(f"http://127.0.0.1:{port}/slow")
    assert time.monotonic() - started < 0.7
    assert classify(info.value).resolution is Resolution.RETRY


def test_timeout_pair_overrides_defaults() -> None:
    assert OutboundSession().timeout == (5.0, 30.0)
    assert OutboundSession(timeout=(2, 9)).timeout == (2, 9)
    assert OutboundSession(timeout=4).timeout == (4, 4)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    session = OutboundSession(allow_private=True)
    with pytest.raises(requests.ConnectionError) as info:
        session.get(f"http://127.0.0.1:{port}/x?token=s3cret")
    outcome = classify(info.value)
    assert outcome.resolution is Resolution.RETRY
    assert "s3cret" not in outcome.message


def test_environment_proxies_are_ignored(httpserver: HTTPServer, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    httpserver.expect_request("/x").respond_with_data("direct")
    assert OutboundSession(allow_private=True).get(f"http://127.0.0.1:{httpserver.port}/x").text == "direct"


def test_explicit_proxy_is_refused() -> None:
    session = OutboundSession(allow_private=False)
    with pytest.raises(UnsafeUrl, match="prox"):
        session.get("http://crm.example/x", proxies={"http": "http://proxy.example:3128"})
