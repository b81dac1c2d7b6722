"""URL policy: syntax checks at registration, resolved-address checks, redaction."""
from __future__ import annotations

from contextlib import nullcontext

import pytest

from exchange.errors import UnsafeUrl
from exchange.net.urls import address_problem, check_url, check_url_syntax, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://crm.example/x", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("/relative/path", "Only http and https"),
        ("http://", "no host"),
        ("http://user:pass@crm.example/", "credentials"),
        ("http://token@crm.example/", "credentials"),
        ("http://crm.example:99999/", "malformed"),
        ("http://crm .example/", "whitespace"),
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:8080/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://169.254.1.1/", "link-local"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
    ],
)
def test_syntax_check_refuses(url: str, fragment: str) -> None:
    with pytest.raises(UnsafeUrl, match=fragment):
        check_url_syntax(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["https://crm.example/exchange", "http://crm.example:8080/a?b=c", "http://93.184.216.34/", "https://[2606:4700::1]/"]
)
def test_syntax_check_accepts_public(url: str) -> None:
    check_url_syntax(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "expectation"),
    [
        ("http://127.0.0.1:5000/", nullcontext()),
        ("http://[::1]/", nullcontext()),
        ("http://10.0.0.5/", nullcontext()),
        ("http://100.64.1.1/", nullcontext()),
        ("http://169.254.169.254/", pytest.raises(UnsafeUrl, match="metadata")),
        ("http://[fd00:ec2::254]/", pytest.raises(UnsafeUrl, match="metadata")),
        ("http://0.0.0.0/", pytest.raises(UnsafeUrl, match="unspecified")),
        ("http://224.0.0.1/", pytest.raises(UnsafeUrl, match="multicast")),
    ],
)
def test_allow_private_opens_private_ranges_but_not_metadata(url: str, expectation) -> None:
    with expectation:
        check_url_syntax(url, allow_private=True)


def test_check_url_resolves_and_refuses_any_private_answer(resolver_for) -> None:
    resolver = resolver_for(
        {
            "public.example": ["93.184.216.34", "2606:2800:220:1::1"],
            "mixed.example": ["93.184.216.34", "10.0.0.7"],
            "internal.example": ["192.168.0.10"],
            "mapped.example": ["::ffff:169.254.169.254"],
        }
    )
    check_url("https://public.example/x", allow_private=False, resolver=resolver)
    with pytest.raises(UnsafeUrl, match=r"mixed\.example resolves to a private network address \(10\.0\.0\.7\)"):
        check_url("https://mixed.example/x", allow_private=False, resolver=resolver)
    with pytest.raises(UnsafeUrl, match="private"):
        check_url("https://internal.example/x", allow_private=False, resolver=resolver)
    check_url("https://internal.example/x", allow_private=True, resolver=resolver)
    with pytest.raises(UnsafeUrl, match="metadata"):
        check_url("https://mapped.example/x", allow_private=True, resolver=resolver)
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        check_url("https://nowhere.example/x", allow_private=False, resolver=resolver)


def test_check_url_does_not_resolve_literals() -> None:
    def no_dns(*args, **kwargs):
        raise AssertionError("a literal address must not be resolved")

    check_url("http://93.184.216.34/", allow_private=False, resolver=no_dns)
    with pytest.raises(UnsafeUrl):
        check_url("http://127.0.0.1/", allow_private=False, resolver=no_dns)


def test_address_problem_reports_none_for_public() -> None:
    assert address_problem("8.8.8.8", allow_private=False) is None
    assert address_problem("::ffff:8.8.8.8", allow_private=False) is None
    assert address_problem("fe80::1%eth0", allow_private=False) == "a link-local address"


def test_redact_url_hides_userinfo_and_query_values() -> None:
    redacted = redact_url("https://bob:hunter2@api.partner.example/v1/upload?mode=add&api_key=s3cret#frag")
    assert redacted == "https://api.partner.example/v1/upload?mode=add&api_key=REDACTED"
    assert "hunter2" not in redacted and "s3cret" not in redacted


def test_redact_text_hides_queries_in_library_messages() -> None:
    text = (
        "HTTPConnectionPool(host='crm.example', port=80): Max retries exceeded with url: "
        "/audiences/1/data?token=s3cret (Caused by NewConnectionError) see http://u:pw@h.example/p?sig=abc"
    )
    redacted = redact_text(text)
    assert "s3cret" not in redacted and "abc" not in redacted and "pw" not in redacted
    assert "/audiences/1/data?REDACTED" in redacted
    assert "http://h.example/p?sig=REDACTED" in redacted
