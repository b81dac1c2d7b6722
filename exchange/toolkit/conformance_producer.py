"""PULL producer rules of the conformance checker (``docs/protocol.md`` § PULL producer). Read-only."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from exchange.toolkit.conformance_rules import (
    Result,
    _fail,
    _is_permanent,
    _ok,
    _peer_detail,
    _skip,
    _warn,
    check_csv,
    decode_body,
    read_sample,
    wait_ready,
)

if TYPE_CHECKING:
    from exchange.toolkit.conformance import Checker


def _listing(checker: Checker) -> tuple[list[dict] | None, list[Result]]:
    resp = checker.call("GET", "/audiences", headers=checker.headers())
    if resp.status_code != 200:
        return None, [_fail("producer.list.status", f"GET /audiences answered {resp.status_code}, expected 200"
                                                    + _peer_detail(resp))]
    out = [_ok("producer.list.status", "GET /audiences answered 200")]
    try:
        body = resp.json()
    except ValueError:
        return None, out + [_fail("producer.list.json", "GET /audiences did not answer JSON "
                                                        f"(Content-Type {resp.headers.get('Content-Type')!r})")]
    items = body.get("audiences") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return None, out + [_fail("producer.list.json", 'the body must be {"audiences": [...]}')]
    problems = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"audiences[{n}] has no string id")
            continue
        for key in ("identifiers", "attributes", "tags"):
            value = item.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                problems.append(f"audiences[{n}].{key} must be a list of strings")
        size = item.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            problems.append(f"audiences[{n}].size must be a non-negative integer")
        for key in ("name", "description", "version", "updated_at"):
            if item.get(key) is not None and not isinstance(item[key], str):
                problems.append(f"audiences[{n}].{key} must be a string")
    ids = [i.get("id") for i in items if isinstance(i, dict)]
    if len(set(ids)) != len(ids):
        problems.append("audience ids are not unique")
    if problems:
        return None, out + [_fail("producer.list.json", "; ".join(problems[:5]))]
    return items, out + [_ok("producer.list.json", f"{len(items)} audience(s), each with an id")]


def producer_checks(checker: Checker) -> Iterator[Result]:
    items, results = _listing(checker)
    yield from results
    if items is None:
        return
    if checker.audience:
        chosen = next((i for i in items if i["id"] == checker.audience), None)
        if chosen is None:
            yield _fail("producer.list.json", f"--audience {checker.audience!r} is not listed")
            return
    elif items:
        chosen = items[0]
    else:
        yield _skip("producer.data", "the producer lists no audience: the data rules were not checked")
        return
    path = f"/audiences/{quote(chosen['id'], safe='')}/data"
    yield from _data_checks(checker, chosen, path)

    unknown = f"/audiences/conformance-missing-{secrets.token_hex(4)}/data"
    resp = checker.call("GET", unknown, headers=checker.headers())
    if _is_permanent(resp.status_code):
        yield _ok("producer.data.unknown", f"an unknown audience answered {resp.status_code}")
    else:
        what = ("the exchange would deliver it as data" if resp.status_code < 300 else
                "the exchange would retry a call that can never succeed")
        yield _fail("producer.data.unknown", f"an unknown audience answered {resp.status_code}, expected 404: {what}")


def _data_checks(checker: Checker, audience: dict, path: str) -> Iterator[Result]:
    identity, notes = wait_ready(checker, path, checker.headers(Accept_Encoding="identity"))
    yield from notes
    with identity:
        if identity.status_code == 202:
            yield _fail("producer.data.status", f"still 202 after {checker.wait:g}s (raise --wait?)")
            return
        if identity.status_code != 200:
            yield _fail("producer.data.status", f"GET {path} answered {identity.status_code}, expected 200 (or "
                                                f"202 + Retry-After)" + _peer_detail(identity))
            return
        yield _ok("producer.data.status", f"GET {path} answered 200")
        raw, complete = read_sample(identity)
        etag = identity.headers.get("ETag")
        ranges = identity.headers.get("Accept-Ranges", "").strip().lower()
        data, why = decode_body(raw, identity.headers.get("Content-Encoding", ""), complete)
    if data is None:
        yield _fail("producer.data.encoding", why)
        return
    yield _ok("producer.data.encoding", f"Content-Encoding {identity.headers.get('Content-Encoding') or 'none'}")
    status, detail, rows = check_csv(data, complete, audience.get("identifiers"))
    yield Result("producer.data.csv", status, detail)
    if status != "fail" and complete and isinstance(audience.get("size"), int) and audience["size"] != rows:
        yield _warn("producer.data.size", f"the listing says size {audience['size']}, the data has {rows} rows")
    yield from _gzip_check(checker, path, data if complete else None)
    if not etag:
        yield _warn("producer.data.etag", "no ETag: the exchange cannot ask If-None-Match, every run re-reads "
                                          "the whole audience")
    else:
        yield _ok("producer.data.etag", f"ETag {etag}")
        resp = checker.call("GET", path, headers=checker.headers(If_None_Match=etag), stream=True)
        resp.close()
        if resp.status_code == 304:
            yield _ok("producer.data.if-none-match", "If-None-Match with the current ETag answered 304")
        elif resp.status_code == 200:
            yield _warn("producer.data.if-none-match", "If-None-Match with the current ETag answered 200, not 304")
        else:
            yield _fail("producer.data.if-none-match", f"If-None-Match with the current ETag answered "
                                                       f"{resp.status_code}, expected 304 (or 200)")
    if ranges != "bytes":
        yield _skip("producer.data.range", "Range support not claimed (no Accept-Ranges: bytes)")
    elif not complete or len(data) < 4:
        yield _skip("producer.data.range", "the audience is too large or too small to compare a range")
    else:
        yield _range_check(checker, path, data)


def _gzip_check(checker: Checker, path: str, identity: bytes | None) -> Iterator[Result]:
    resp = checker.call("GET", path, headers=checker.headers(Accept_Encoding="gzip"), stream=True)
    with resp:
        if resp.status_code != 200:
            yield _fail("producer.data.gzip", f"with Accept-Encoding: gzip it answered {resp.status_code}")
            return
        raw, complete = read_sample(resp)
        encoding = resp.headers.get("Content-Encoding", "")
    data, why = decode_body(raw, encoding, complete)
    if data is None:
        yield _fail("producer.data.gzip", why)
    elif identity is not None and complete and data != identity:
        yield _fail("producer.data.gzip", "the gzip answer does not inflate to the same bytes as the plain one")
    else:
        yield _ok("producer.data.gzip", "gzip answer inflates to the same CSV" if "gzip" in encoding.lower()
                  else "answers uncompressed (gzip is optional)")


def _range_check(checker: Checker, path: str, data: bytes) -> Result:
    start, end = 1, min(len(data) - 1, 64)
    resp = checker.call("GET", path, headers=checker.headers(Range=f"bytes={start}-{end}",
                                                            Accept_Encoding="identity"))
    want = data[start:end + 1]
    if resp.status_code != 206:
        return _fail("producer.data.range", f"Accept-Ranges: bytes is advertised but Range: bytes={start}-{end} "
                                            f"answered {resp.status_code}, expected 206")
    content_range = resp.headers.get("Content-Range", "")
    if not content_range.startswith(f"bytes {start}-{end}/"):
        return _fail("producer.data.range", f"206 with Content-Range {content_range!r}, expected "
                                            f"'bytes {start}-{end}/{len(data)}'")
    if resp.content != want:
        return _fail("producer.data.range", "206 body differs from those bytes of the full answer")
    return _ok("producer.data.range", f"Range: bytes={start}-{end} answered 206 with the right bytes")
