"""Raw-bytes fuzzing of every JSON route: whatever the body, the answer is a 4xx problem document.

Each route that takes a body (every POST/PUT/PATCH/DELETE under /v1 except the two CSV data-plane
routes) receives, without credentials, with an account key and with an endpoint key: deeply nested
arrays and objects, lone surrogates (escaped and as raw bytes), numbers of thousands of digits,
NaN/Infinity, truncated and invalid UTF-8, duplicate keys, NUL and control characters, and things
that are not JSON at all. Path parameters are real ids, so a body that got past the checks would
reach the view. Never a 5xx; always ``application/problem+json`` with a matching ``status``.
"""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.app import create_app
from exchange.runtime import Runtime
from tests.conftest import make_config, new_account, prepare_db

DEEP = 20_000
HOSTILE: dict[str, bytes] = {
    "deep arrays": b"[" * DEEP + b"]" * DEEP,
    "deep arrays unclosed": b"[" * DEEP,
    "deep objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep in a field": b'{"name": "x", "mapping": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "lone surrogate in name": b'{"name": "\\ud800"}',
    "lone low surrogate": b'{"name": "a\\udfffb", "contact_url": "http://x.example"}',
    "lone surrogate in key": b'{"\\ud800": 1}',
    "surrogate as raw bytes": b'{"name": "\xed\xa0\x80"}',
    "5000-digit int": b'{"consumer": {"transport": "push", "max_rows_per_request": ' + b"9" * 5000 + b"}}",
    "5000-digit top-level int": b"1" * 5000,
    "huge exponent": b'{"accepted": 1e999999, "rejected": 0}',
    "long float": b'{"accepted": 0.' + b"1" * 5000 + b"}",
    "NaN": b'{"accepted": NaN}',
    "Infinity": b'{"accepted": -Infinity}',
    "truncated UTF-8": b'{"name": "caf\xc3',
    "truncated UTF-8 in string": b'{"name": "caf\xc3"}',
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "overlong UTF-8": b'{"name": "\xc0\xaf"}',
    "UTF-16": '{"name": "x"}'.encode("utf-16"),
    "duplicate keys": b'{"name": "a", "name": "b"}',
    "duplicate nested keys": b'{"consumer": {"transport": "push", "transport": "pull"}}',
    "NUL in name": b'{"name": "a\\u0000b"}',
    "NUL in another string": b'{"confirm": "a\\u0000"}',
    "newline in name": b'{"name": "a\\nb"}',
    "escape char in name": b'{"name": "\\u001b[31mred"}',
    "not JSON": b"hello",
    "truncated JSON": b'{"name": ',
    "XML": b"<endpoint><name>x</name></endpoint>",
    "binary": bytes(range(256)),
    "only a BOM": b"\xef\xbb\xbf",
    "empty object": b"{}",
    "array": b"[1, 2, 3]",
    "string": b'"x"',
    "null": b"null",
    "trailing garbage": b'{"name": "x"} {"name": "y"}',
}
STREAMING = {"audiences.AudienceData", "deliveries.DeliveryData"}


def _routes(app, ids):
    """(method, path) of every /v1 route that takes a body, path parameters filled with real ids."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/") or rule.endpoint in STREAMING:
            continue
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids.get(m.group(1), "nope"), rule.rule)
            yield method, path


def _world(live_api):
    """An endpoint, an audience, a share, a job, a key: real ids for every path parameter."""
    api = live_api
    prod = api.post("/v1/endpoints", json={"name": "P", "contact_url": "http://p.example",
                                           "producer": {"transport": "push"}, "identifiers": ["email"]})
    assert prod.status_code == 201, prod.json
    cons = api.post("/v1/endpoints", json={"name": "C", "contact_url": "http://c.example",
                                           "consumer": {"transport": "pull"}, "identifiers": ["email"]})
    assert cons.status_code == 201, cons.json
    put = api.put(f"/v1/endpoints/{prod.json['id']}/audiences/a1", json={"name": "A1", "identifiers": ["email"]})
    assert put.status_code == 200, put.json
    key = api.post("/v1/keys", json={"name": "k"})
    assert key.status_code == 201, key.json
    return {"endpoint_id": prod.json["id"], "external_id": "a1", "audience_id": put.json["id"],
            "key_id": key.json["id"], "share_id": "nope", "job_id": "nope", "delivery_id": "nope"}, prod.json


def _assert_problem(resp, what):
    assert 400 <= resp.status_code < 500, (what, resp.status_code, resp.get_data()[:300])
    assert resp.content_type == "application/problem+json", (what, resp.content_type)
    doc = json.loads(resp.get_data())
    assert doc["status"] == resp.status_code and doc["title"], (what, doc)


def test_hostile_bodies_never_5xx(make_exchange):
    rt, app = make_exchange(rate_limit_per_minute=0, failed_auth_limit=100_000)
    client = app.test_client()
    api = new_account(rt, client, "A")
    ids, producer = _world(api)
    credentials = {"none": {}, "account key": {"Authorization": f"Bearer {api.token}"},
                   "endpoint key": {"Authorization": f"Bearer {producer['endpoint_key']}"},
                   "wrong key": {"Authorization": "Bearer aex_0123456789ab_wrong"}}
    routes = list(_routes(app, ids))
    assert len(routes) >= 15, routes
    tried = 0
    for method, path in routes:
        for cred_name, headers in credentials.items():
            for name, body in HOSTILE.items():
                if method == "DELETE" and name in ("empty object", "null", "array", "string"):
                    continue  # well-formed: it would really delete the endpoint the other cases use
                resp = client.open(path, method=method, data=body, headers={**headers, "Content-Type":
                                                                            "application/json"})
                what = (method, path, cred_name, name)
                if resp.status_code < 400 and name in ("empty object", "null", "array", "string"):
                    continue  # a well-formed (if empty) body may be accepted by a route without fields
                _assert_problem(resp, what)
                if cred_name in ("none", "wrong key"):
                    assert resp.status_code in (401, 429), what
                elif name not in ("empty object", "null", "array", "string"):
                    # authenticated and malformed: refused as a client error before any view ran
                    assert resp.status_code in (400, 403, 404, 405, 413, 422), (what, resp.status_code)
                tried += 1
    assert tried > 2000


def test_issue_reproductions(make_exchange):
    """The exact requests from the issue: each is a 4xx problem now."""
    rt, app = make_exchange()
    client = app.test_client()
    api = new_account(rt, client, "A")
    ids, producer = _world(api)
    r = client.post("/v1/endpoints", data=b"[" * 20_000, content_type="application/json")
    assert r.status_code == 401 and r.content_type == "application/problem+json"
    r = api.post("/v1/endpoints", data=b"[" * 20_000, content_type="application/json")
    assert r.status_code == 400 and "nested" in r.json["detail"]
    for method, path in (("POST", "/v1/endpoints"), ("POST", "/v1/keys"),
                         ("PUT", f"/v1/endpoints/{ids['endpoint_id']}/audiences/x"), ("PATCH", "/v1/shares/nope")):
        r = client.open(path, method=method, data=b'{"name": "\\ud800"}', content_type="application/json",
                        headers={"Authorization": f"Bearer {api.token}"})
        assert r.status_code == 400 and "surrogate" in r.json["detail"], (path, r.json)
    r = api.post("/v1/endpoints", data=b'{"name": "C", "contact_url": "http://c.example", "consumer": '
                 b'{"transport": "push", "max_rows_per_request": ' + b"7" * 5000 + b"}}",
                 content_type="application/json")
    assert r.status_code == 400 and "digits" in r.json["detail"]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, migrated_template):
    cfg = make_config(tmp_path_factory.mktemp("fuzz"), rate_limit_per_minute=0)
    prepare_db(cfg, migrated_template)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    client = app.test_client()
    api = new_account(rt, client, "F")
    yield client, api.token
    rt.shutdown()


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(st.binary(max_size=300),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                   lambda kids: st.lists(kids, max_size=4)
                                   | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                                   max_leaves=20).map(lambda v: json.dumps(v).encode())),
       route=st.sampled_from([("POST", "/v1/endpoints"), ("POST", "/v1/keys"), ("POST", "/v1/shares"),
                              ("POST", "/v1/account/erase")]))
def test_random_bodies_never_5xx(fuzz_app, body, route):
    client, token = fuzz_app
    method, path = route
    resp = client.open(path, method=method, data=body, content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code < 500, (body, resp.get_data()[:300])
    if resp.status_code >= 400:
        _assert_problem(resp, body)


def test_authenticate_and_authorise_before_validating(make_exchange):
    rt, app = make_exchange()
    client = app.test_client()
    api = new_account(rt, client, "A")
    _ids, producer = _world(api)
    r = client.post("/v1/shares", json={})
    assert r.status_code == 401 and "errors" not in r.json
    r = client.post("/v1/account/erase", json={}, headers={"Authorization": f"Bearer {producer['endpoint_key']}"})
    assert r.status_code == 403 and "errors" not in r.json
    r = client.post("/v1/shares", json={"bogus": 1}, headers={"Authorization": f"Bearer {producer['endpoint_key']}"})
    assert r.status_code == 403
    # an endpoint key on another endpoint's data plane: 403 before its body is looked at
    other = api.post("/v1/endpoints", json={"name": "P2", "contact_url": "http://p2.example",
                                            "producer": {"transport": "push"}, "identifiers": ["email"]}).json
    r = client.put(f"/v1/endpoints/{other['id']}/audiences/a", json={"bogus": 1},
                   headers={"Authorization": f"Bearer {producer['endpoint_key']}"})
    assert r.status_code == 403
    # with the right credentials the same bodies are validated (422 with field errors)
    r = api.post("/v1/shares", json={})
    assert r.status_code == 422 and r.json["errors"]


def test_unknown_query_parameters_refused(make_exchange):
    rt, app = make_exchange()
    api = new_account(rt, app.test_client(), "A")
    lists = ["/v1/endpoints", "/v1/shares", "/v1/jobs", "/v1/audiences", "/v1/deliveries", "/v1/keys", "/v1/audit"]
    for path in lists:
        assert api.get(path, query_string={"page": 1}).status_code == 200, path
        r = api.get(path, query_string={"stauts": "failed"})
        assert r.status_code == 422, (path, r.status_code)
        assert r.content_type == "application/problem+json" and "stauts" in r.json["errors"], path


def test_control_characters_refused_in_names_and_paths(make_exchange):
    rt, app = make_exchange()
    api = new_account(rt, app.test_client(), "A")
    for name in ("a\x00b", "tab\there", "line\nbreak", "\x1b[31mred", "del\x7f", "c1\x85"):
        r = api.post("/v1/endpoints", json={"name": name, "contact_url": "http://p.example",
                                            "producer": {"transport": "push"}, "identifiers": ["email"]})
        assert r.status_code == 422 and "name" in r.json["errors"], (name, r.json)
        r = api.post("/v1/keys", json={"name": name})
        assert r.status_code == 422, name
    ok = api.post("/v1/endpoints", json={"name": "Café – Zürich 東京", "contact_url": "http://p.example",
                                         "producer": {"transport": "push"}, "identifiers": ["email"]})
    assert ok.status_code == 201, ok.json
    # the service refuses them too (the web forms call it directly)
    from exchange.auth.keys import create_key
    from exchange.catalog.endpoints import register_endpoint
    from exchange.errors import ValidationFailed

    with rt.db.session() as s:
        with pytest.raises(ValidationFailed):
            create_key(s, api.account_id, scope="account", name="web\x00form")
        with pytest.raises(ValidationFailed):
            register_endpoint(rt, s, api.account_id, {"name": "a\nb", "contact_url": "http://p.example",
                                                      "producer": {"transport": "push"}, "identifiers": ["email"]})
    r = api.get("/v1/endpoints/abc%00def")
    assert r.status_code == 404 and r.content_type == "application/problem+json"
    r = api.put(f"/v1/endpoints/{ok.json['id']}/audiences/x%00y", json={"name": "x"})
    assert r.status_code == 404
