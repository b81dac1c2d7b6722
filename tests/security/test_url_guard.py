"""The URL guard refuses every spelling of a forbidden address at registration, and judges IPv6
addresses that carry an IPv4 address (mapped, compatible, 6to4, NAT64, Teredo) by that address.

Numeric forms follow ``inet_aton`` (which getaddrinfo uses, so they reach the address they spell)
and the WHATWG URL standard's IPv4 parser ("a host whose last label is a number is an IPv4 address").
Embedded IPv4: RFC 4291 §2.5.5 (mapped/compatible), RFC 3056 (6to4), RFC 6052 and RFC 8215 (NAT64),
RFC 4380 (Teredo, client address obfuscated by XOR).
"""
from __future__ import annotations

import pytest

from exchange.errors import UnsafeUrl
from exchange.net.urls import check_url_syntax, resolve_checked
from tests.conftest import new_account

FORBIDDEN = [
    "http://2130706433/", "http://0x7f000001/", "http://017700000001/", "http://127.1/", "http://127.0.1/",
    "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://127.0.0.1./", "http://0X7F000001:8080/x",
    "http://2852039166/",  # 169.254.169.254, the metadata service, as one number
    "http://10.1/", "http://3232235777/",  # 10.0.0.1 and 192.168.1.1
    "http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::1]/", "http://[2002:c0a8:101::]/",
    "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::10.0.0.1]/", "http://[64:ff9b:1::a00:1]/",
    "http://[::127.0.0.1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
]
MALFORMED = ["http://1.2.3.256/", "http://a.b.c.1/", "http://x.0x/", "http://0x100000000/"]
ALLOWED = ["http://8.8.8.8/", "http://134744072/", "http://[2002:808:808::]/", "http://[64:ff9b::808:808]/",
           "https://partner.example/path", "http://1e100.net/"]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_numeric_and_embedded_forms_refused(url):
    with pytest.raises(UnsafeUrl):
        check_url_syntax(url, allow_private=False)


@pytest.mark.parametrize("url", MALFORMED)
def test_invalid_numeric_hosts_refused(url):
    with pytest.raises(UnsafeUrl, match="neither a valid IPv4"):
        check_url_syntax(url, allow_private=False)


@pytest.mark.parametrize("url", ALLOWED)
def test_public_forms_allowed(url):
    check_url_syntax(url, allow_private=False)


def test_metadata_stays_forbidden_even_with_private_allowed():
    for url in ("http://2852039166/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:a9fe:a9fe::]/"):
        with pytest.raises(UnsafeUrl, match="metadata"):
            check_url_syntax(url, allow_private=True)


def test_connect_time_check_judges_embedded_ipv4():
    """A name resolving to a 6to4 or NAT64 address of loopback is refused when connecting too."""
    for addr in ("2002:7f00:1::", "64:ff9b::7f00:1"):
        def resolver(host, port, *args, _addr=addr):
            return [(10, 1, 6, "", (_addr, port, 0, 0))]
        with pytest.raises(UnsafeUrl, match="loopback"):
            resolve_checked("sneaky.example", 80, allow_private=False, resolver=resolver)


def test_registration_refuses_numeric_forms(make_exchange):
    rt, app = make_exchange(allow_private_urls=False)
    api = new_account(rt, app.test_client(), "A")
    for url in ("http://2130706433/", "http://0x7f000001/", "http://017700000001/", "http://127.1/",
                "http://[2002:7f00:1::]/"):
        r = api.post("/v1/endpoints", json={"name": "P", "contact_url": url, "producer": {"transport": "pull"},
                                            "identifiers": ["email"]})
        assert r.status_code == 422 and "contact_url" in r.json["errors"], (url, r.json)


def test_adapter_url_settings_are_guarded(make_exchange):
    """The Equals URL (an adapter setting) passes the same guard as contact URLs."""
    rt, app = make_exchange(allow_private_urls=False)
    api = new_account(rt, app.test_client(), "A")
    for url in ("http://127.0.0.1/segment/x", "http://2130706433/segment/x", "http://169.254.169.254/latest"):
        r = api.post("/v1/endpoints", json={"name": "E", "adapter": {"type": "equals", "settings": {"url": url}}})
        assert r.status_code == 422, (url, r.json)
        assert "adapter.settings.url" in r.json["errors"], r.json
    r = api.post("/v1/endpoints", json={"name": "E", "adapter": {"type": "equals",
                                                                 "settings": {"url": "https://in.equals.example/s/t"}}})
    assert r.status_code == 201, r.json


def test_equals_verify_really_calls(make_exchange):
    """verify calls the Equals URL (GET, which records nothing): a wrong URL is reported as such."""
    from tests.fakes.partners.equals import FakeEquals

    rt, app = make_exchange()
    api = new_account(rt, app.test_client(), "A")
    fake = FakeEquals()
    fake.start()
    try:
        def equals(name, url):
            return api.post("/v1/endpoints", json={"name": name, "adapter": {"type": "equals",
                                                                             "settings": {"url": url}}}).json
        good, bad = equals("E", fake.ingest_url), equals("F", fake.url + "/segment/no")
        r = api.post(f"/v1/endpoints/{good['id']}/verify")
        assert r.status_code == 200 and r.json["ok"] is True, r.json
        r = api.post(f"/v1/endpoints/{bad['id']}/verify")
        assert r.json["ok"] is False and "url" in r.json["checks"][0]["detail"], r.json
        assert [rec.method for rec in fake.requests] == ["GET", "GET"]  # nothing was recorded as data
        assert fake.users == {}
    finally:
        fake.stop()
