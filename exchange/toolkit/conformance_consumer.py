"""PUSH consumer rules of the conformance checker (``docs/protocol.md`` § PUSH consumer).

Writes only to the checker's scratch destination audience and empties it at the end.
"""
from __future__ import annotations

import gzip as gzip_mod
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests

from exchange.toolkit.conformance_rules import (
    Result,
    _fail,
    _is_permanent,
    _ok,
    _peer_detail,
    _skip,
    _warn,
    csv_body,
    member_rows,
)

if TYPE_CHECKING:
    from exchange.toolkit.conformance import Checker


def _push(checker: Checker, mode: str, body: bytes, *, part: str = "1/1", key: str | None = None,
          gzip: bool = False, audience: str | None = None, **extra: str) -> requests.Response:
    headers = checker.headers(Content_Type="text/csv; charset=utf-8", X_Exchange_Part=part,
                              X_Exchange_Job_Id="conformance", **extra)
    headers["Idempotency-Key"] = key or f"conformance-{secrets.token_hex(8)}"
    if gzip:
        body = gzip_mod.compress(body)
        headers["Content-Encoding"] = "gzip"
    path = f"/audiences/{quote(audience or checker.destination, safe='')}/data"
    return checker.call("POST", path, params={"mode": mode}, data=body, headers=headers)


def _answer(resp: requests.Response) -> tuple[int, int] | None:
    """(accepted, rejected) from a 200/201 body, or None when it is not that shape."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    accepted, rejected = body.get("accepted"), body.get("rejected", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (accepted, rejected)):
        return None
    return accepted, rejected


def _applied(rule: str, resp: requests.Response, rows: int, what: str) -> tuple[Result, tuple[int, int] | None]:
    """The rule for an answer to a valid push of ``rows`` rows."""
    if resp.status_code == 202:
        return _ok(rule, f"{what}: 202 (the endpoint acknowledges later)"), None
    if resp.status_code not in (200, 201):
        return _fail(rule, f"{what}: answered {resp.status_code}, expected 200/201/202" + _peer_detail(resp)), None
    counts = _answer(resp)
    if counts is None:
        return _fail(rule, f'{what}: 200 but the body is not {{"accepted": int, "rejected": int}}'), None
    if sum(counts) > rows:
        return _fail(rule, f"{what}: answered accepted+rejected={sum(counts)} for {rows} rows sent"), counts
    return _ok(rule, f"{what}: {counts[0]} accepted, {counts[1]} rejected"), counts


def consumer_checks(checker: Checker) -> Iterator[Result]:
    ident, salt = checker.identifier, secrets.token_hex(4)
    members = member_rows(ident, 4, salt)
    yield _skip("consumer.scratch", f"writing to the scratch destination audience {checker.destination!r}")

    key = f"conformance-{salt}-add"
    resp = _push(checker, "add", csv_body(ident, members[:3]), key=key, gzip=checker.gzip)
    result, first = _applied("consumer.push.add", resp, 3, "add of 3 rows" + (" (gzip)" if checker.gzip else ""))
    yield result
    if result.status == "fail":
        return

    # The same Idempotency-Key again, with a different body: honouring the key means answering the
    # first result (or refusing the reuse with 409/422), never applying the new body.
    again = _push(checker, "add", csv_body(ident, members[3:]), key=key, gzip=checker.gzip)
    counts = _answer(again) if again.status_code in (200, 201) else None
    if again.status_code in (409, 422) or (first is not None and counts == first) or (
            first is None and again.status_code == 202):
        yield _ok("consumer.idempotency", f"a repeated Idempotency-Key was not applied again "
                                          f"(answered {again.status_code}{'' if counts is None else f' {counts}'})")
    elif counts == (1, 0) or again.status_code in (200, 201):
        yield _fail("consumer.idempotency", "a repeated Idempotency-Key was applied again (it answered the new "
                                            f"body's counts {counts}): retries of a part would apply twice")
    else:
        yield _fail("consumer.idempotency", f"a repeated Idempotency-Key answered {again.status_code}"
                                            + _peer_detail(again))

    if not checker.gzip:
        resp = _push(checker, "add", csv_body(ident, members[:2]), gzip=True)
        if resp.status_code in (200, 201, 202):
            yield _ok("consumer.push.gzip", "a gzip body (Content-Encoding: gzip) is accepted")
        else:
            yield _warn("consumer.push.gzip", f"a gzip body answered {resp.status_code}: register the endpoint "
                                              "without gzip")
    yield _applied("consumer.push.remove", _push(checker, "remove", csv_body(ident, members[:1])), 1,
                   "remove of 1 row")[0]

    one = _push(checker, "replace", csv_body(ident, members[:2]), part="1/2")
    two = _push(checker, "replace", csv_body(ident, members[2:3]), part="2/2")
    r1, r2 = _applied("consumer.parts.replace", one, 2, "replace part 1/2")[0], \
        _applied("consumer.parts.replace", two, 1, "replace part 2/2")[0]
    yield r1 if r1.status == "fail" else r2

    fresh = f"{checker.destination}-order"
    resp = _push(checker, "replace", csv_body(ident, members[:1]), part="2/2", audience=fresh)
    if resp.status_code in (400, 409, 422):
        yield _ok("consumer.parts.order", f"part 2/2 of a replace without part 1 answered {resp.status_code}")
    else:
        yield _fail("consumer.parts.order", f"part 2/2 of a replace without part 1 answered {resp.status_code}: "
                                            "X-Exchange-Part is ignored, a replace in parts would keep only the "
                                            "last part's rows")
        if resp.status_code < 300:
            _push(checker, "replace", (ident + "\n").encode(), audience=fresh)

    for rule, what, call in (
        ("consumer.reject.mode", "mode=bogus", lambda: _push(checker, "bogus", csv_body(ident, members[:1]))),
        ("consumer.reject.csv", "a body that is not CSV",
         lambda: _push(checker, "add", b"\x00\x01\x02 this is not CSV \xff\xfe\n\x00")),
        ("consumer.reject.header", "a CSV without any identifier column",
         lambda: _push(checker, "add", b"conformance_unknown_column\nvalue\n")),
        ("consumer.reject.part", "X-Exchange-Part: 3/2", lambda: _push(checker, "add", csv_body(
            ident, members[:1]), part="3/2")),
    ):
        resp = call()
        if _is_permanent(resp.status_code):
            yield _ok(rule, f"{what} answered {resp.status_code}")
        elif resp.status_code < 300:
            yield _fail(rule, f"{what} answered {resp.status_code}: bad input was accepted instead of a 4xx")
        else:
            yield _fail(rule, f"{what} answered {resp.status_code}: the exchange retries "
                              f"{'5xx' if resp.status_code >= 500 else 'it'} and can never succeed; answer 400")

    resp = _push(checker, "replace", (ident + "\n").encode())
    if resp.status_code >= 300:
        yield _warn("consumer.cleanup", f"emptying {checker.destination!r} answered {resp.status_code}")
