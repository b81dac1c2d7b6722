"""openapi/endpoint.json is a valid OpenAPI 3.1 document and the reference endpoint conforms to it:
every operation is called for each status it can produce, and the real answer's status, content
type, headers and JSON body are checked against the document."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from exchange.endpoint_client import headers as exchange_headers
from exchange.toolkit.reference_endpoint import ReferenceEndpoint

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "endpoint.json"
SPEC = json.loads(SPEC_PATH.read_text())
TOKEN = "s3cret"
REGISTRY = Registry().with_resource("endpoint.json", Resource.from_contents(SPEC, default_specification=DRAFT202012))


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


class Conformance:
    def __init__(self):
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, resp: requests.Response, path: str, method: str) -> None:
        """The answer is one the document describes for this operation."""
        operation = SPEC["paths"][path][method.lower()]
        status = str(resp.status_code)
        assert status in operation["responses"], f"{method} {path} answered undocumented {status}"
        doc = _resolve(operation["responses"][status])
        self.seen.add((path, method.lower(), status))
        for name, header in doc.get("headers", {}).items():
            header = _resolve(header)
            if header.get("required") or name in ("ETag", "Content-Range", "Retry-After"):
                assert resp.headers.get(name), f"{method} {path} {status} lacks header {name}"
        content = doc.get("content")
        if not content:
            assert not resp.content, f"{status} must have no body"
            return
        mimetype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        assert mimetype in content, f"{method} {path} {status}: {mimetype} not in {list(content)}"
        schema = content[mimetype].get("schema")
        if schema and "json" in mimetype:
            pointer = schema.get("$ref", "").removeprefix("#")
            wrapped = {"$ref": f"endpoint.json#{pointer}"} if pointer else schema
            Draft202012Validator(wrapped, registry=REGISTRY).validate(resp.json())


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    base = tmp_path_factory.mktemp("endpoint")
    producer = base / "producer"
    producer.mkdir()
    (producer / "loyal.csv").write_text("email,country\n" + "".join(f"u{i}@example.com,FR\n" for i in range(20)))
    (producer / "loyal.json").write_text(json.dumps({"name": "Loyal", "tags": ["crm"]}))
    with ReferenceEndpoint(producer, base / "consumer", credential=TOKEN) as ep:
        yield ep


def test_document_is_valid_openapi_31():
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")
    assert set(SPEC["paths"]) == {"/audiences", "/audiences/{audience_id}/data"}


def test_reference_endpoint_conforms(endpoint):
    c = Conformance()
    url, auth = endpoint.url, exchange_headers(TOKEN, job_id="j1", idempotency_key="j1:fetch")

    c.check(requests.get(url + "/audiences", headers=auth), "/audiences", "GET")
    c.check(requests.get(url + "/audiences"), "/audiences", "GET")  # 401
    data = "/audiences/{audience_id}/data"
    plain = requests.get(url + "/audiences/loyal/data", headers={**auth, "Accept-Encoding": "identity"})
    c.check(plain, data, "GET")
    zipped = requests.get(url + "/audiences/loyal/data", headers=auth, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.raw.read()) == plain.content
    c.check(requests.get(url + "/audiences/loyal/data", headers={**auth, "Range": "bytes=0-9"}), data, "GET")
    c.check(requests.get(url + "/audiences/loyal/data", headers={**auth, "If-None-Match": plain.headers["ETag"]}),
            data, "GET")
    c.check(requests.get(url + "/audiences/nope/data", headers=auth), data, "GET")  # 404

    push = {**exchange_headers(TOKEN, job_id="j1", idempotency_key="j1:0:1"),
            "Content-Type": "text/csv; charset=utf-8", "X-Exchange-Part": "1/1"}
    body = b"email_sha256\n" + b"a" * 64 + b"\n"
    c.check(requests.post(url + "/audiences/Loyal%20customers/data", params={"mode": "add"}, data=body,
                          headers=push), data, "POST")
    c.check(requests.post(url + "/audiences/x/data", params={"mode": "bogus"}, data=body, headers=push),
            data, "POST")  # 400
    c.check(requests.post(url + "/audiences/y/data", params={"mode": "replace"}, data=body,
                          headers={**push, "X-Exchange-Part": "2/2", "Idempotency-Key": "k2"}), data, "POST")  # 409
    c.check(requests.post(url + "/audiences/x/data", params={"mode": "add"}, data=body,
                          headers={"Content-Type": "text/csv"}), data, "POST")  # 401
    assert {s for p, m, s in c.seen if m == "get" and p == data} == {"200", "206", "304", "404"}
    assert {s for p, m, s in c.seen if m == "post"} == {"200", "400", "401", "409"}


def test_documented_problem_schema_matches_reference_errors(endpoint):
    resp = requests.get(endpoint.url + "/audiences", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    Draft202012Validator({"$ref": "endpoint.json#/components/schemas/Problem"}, registry=REGISTRY).validate(resp.json())
