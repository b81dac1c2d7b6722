"""The DuckDB fast path gives the Python pipeline's exact result, or declines and the Python path runs."""
from __future__ import annotations

import csv
import gzip as gzip_module
import hashlib
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exchange.errors import ExchangeError
from exchange.transfer import columnar
from exchange.transfer.mapping import validate_mapping
from exchange.transfer.pipeline import TransformCancelled, run_transform
from tests.conftest import TESTDATA  # noqa: E402

ALICE_SHA = "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"
IDS = {"email", "email_sha256", "phone_e164", "phone_sha256", "maid", "cookie_id", "customer_id"}
RULES = [
    {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
    {"source": "first_name", "target": "first_name", "transform": []},
    {"source": "country", "target": "country", "transform": ["trim"]},
]


def _transform(tmp_path: Path, data: bytes, *, fast: bool, name: str, chunk: int = 7, **kw) -> dict:
    """Run run_transform with the fast path on or off; everything it produced, to compare."""
    folder = tmp_path / name
    folder.mkdir()
    out, rej = folder / "out.csv", folder / "rejects.csv"
    used = []
    real = columnar._transform

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        used.append(True)
        return result

    kw.setdefault("gzip", False)
    kw.setdefault("rules", RULES)
    kw.setdefault("identifier_types", IDS)
    with mock.patch.object(columnar, "ENABLED", fast), mock.patch.object(columnar, "_transform", spy):
        try:
            result = run_transform([data[i:i + chunk] for i in range(0, len(data), chunk)],
                                   out_path=str(out), rejects_path=str(rej), **kw)
        except ExchangeError as exc:
            return {"error": (type(exc), str(exc)), "files": sorted(p.name for p in folder.iterdir())}
    assert sorted(p.name for p in folder.iterdir()) == ["out.csv", "rejects.csv"]  # no work files left
    assert result.out_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    return {"result": result, "out": out.read_bytes(), "rejects": rej.read_bytes(), "fast": bool(used)}


def _both(tmp_path: Path, data: bytes, **kw) -> tuple[dict, dict]:
    fast = _transform(tmp_path, data, fast=True, name="fast", **kw)
    slow = _transform(tmp_path, data, fast=False, name="slow", **kw)
    assert {k: v for k, v in fast.items() if k != "fast"} == {k: v for k, v in slow.items() if k != "fast"}
    return fast, slow


def test_the_spec_mapping_takes_the_fast_path_with_rejects_and_duplicates(tmp_path):
    data = ("email,first_name,country\r\n"
            " Alice@Example.com,Alice, FR\r\n"
            "alice@example.com,Alice again,FR\r\n"
            f"{ALICE_SHA.upper()},hash of alice,FR\r\n"
            "not-an-email,=cmd,DE\r\n"
            "carol@example.com,Carol\r\n"
            ",nobody,FR\r\n"
            "josé@exämple.com,José,ES\r\n"
            "dan@x.org,Dan,US,extra").encode()
    fast, _ = _both(tmp_path, data)
    assert fast["fast"]
    assert fast["result"].counts == {"received": 8, "valid": 2, "rejected": 4, "duplicates": 2, "hashed": 3,
                                     "passed_through": 1}
    rejects = list(csv.reader(fast["rejects"].decode().splitlines()))
    assert [r[-2:] for r in rejects[1:]] == [["5", "email: no @ in email"], ["6", "expected 3 fields, found 2"],
                                             ["7", "no usable identifier"], ["9", "expected 3 fields, found 4"]]


@pytest.mark.parametrize(("data", "kw", "why"), [
    (b'email,first_name,country\na@b.co,"Smith, J",FR\n', {}, "quote"),
    (b"email,first_name,country\na@b.co,x,FR\n\nb@b.co,y,DE\n", {}, "blank line"),
    (b"email,first_name,country\na@b.co,x\ry,FR\n", {}, "lone carriage return"),
    (b"email,first_name,country\r\na@b.co,x,FR\nb@b.co,y,DE\n", {}, "mixed line endings"),
    (b"email,first_name,country\na@b.co,x\x0b,FR\n", {}, "whitespace control"),
    (b"email,first_name,country\na@b.co,\xff,FR\n", {}, "invalid UTF-8"),
    (b"\nemail,first_name,country\na@b.co,x,FR\n", {}, "blank line before the header"),
    (b"phone,first_name,country\n0612345678,x,FR\n+33 6 12 34 56 78,y,FR\n",
     {"rules": [{"source": "phone", "target": "phone_e164", "transform": ["normalize_phone"]}],
      "default_country": "FR"}, "phone with a default country"),
    (b"email,first_name,country\n" + b"a@b.co," + b"x" * 70_000 + b",FR\n", {}, "longer than a field"),
    (b"email,first_name,country\na@b.co,x,FR\n",
     {"rules": [{"source": "email", "target": "a,b", "transform": []}, *RULES]}, "target needs quoting"),
])
def test_ineligible_inputs_decline_and_still_match_python(tmp_path, data, kw, why):
    fast, _ = _both(tmp_path, data, **kw)
    assert not fast.get("fast"), why


@pytest.mark.parametrize(("data", "kw"), [
    (b"", {}),
    (b"mail,first_name,country\nx@y.z,a,b\n", {}),
    (b"email,first_name,country\na@b.c,x,y\n\x00\x01\x02\n", {}),
    (b"email,email,country\na@b.c,x,y\n", {}),
    (b"email,first_name,country\na@b.c,x,y\n", {"gzip": True}),
    (gzip_module.compress(b"email,first_name,country\na@b.c,x,y\n")[:-6], {"gzip": True}),
    (b"email,first_name,country\na@b.c,x,y\n", {"rules": [{"source": "email", "target": "email_sha256",
                                                           "transform": ["bogus"]}]}),
])
def test_fatal_errors_are_the_python_paths_own(tmp_path, data, kw):
    fast, slow = _both(tmp_path, data, **kw)
    assert "error" in fast and fast["files"] == []


def test_gzip_bom_and_header_only(tmp_path):
    fast, _ = _both(tmp_path, gzip_module.compress(b"\xef\xbb\xbfemail,first_name,country\r\nA@b.co,x,FR\r\n"),
                    gzip=True)
    assert fast["fast"] and fast["result"].counts["valid"] == 1
    for i, data in enumerate([b"email,first_name,country", b"email,first_name,country\n"]):
        (tmp_path / str(i)).mkdir()
        fast, _ = _both(tmp_path / str(i), data)
        assert fast["result"].counts["received"] == 0


def test_cancel_and_progress(tmp_path):
    data = ("email,first_name,country\n" + "".join(f"u{i}@x.com,n,FR\n" for i in range(5000))).encode()
    seen: list[int] = []
    fast = _transform(tmp_path, data, fast=True, name="a", chunk=1 << 12, progress=seen.append)
    assert fast["fast"] and seen and seen[-1] == 5000 and seen == sorted(seen)
    calls = iter([False] * 3 + [True] * 1000)
    cancelled = _transform(tmp_path, data, fast=True, name="b", chunk=1 << 8, cancel_check=lambda: next(calls))
    assert cancelled["error"][0] is TransformCancelled and cancelled["files"] == []


def _vectors(name: str) -> list[dict[str, str]]:
    with open(TESTDATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("target", ["email", "email_sha256", "phone_e164", "phone_sha256"])
def test_shared_vectors_through_the_fast_path(tmp_path, target):
    kind = target.split("_")[0]
    normalize = "normalize_" + kind
    inputs = [r["input"] for r in _vectors("normalization.csv") if r["kind"] == kind and "\n" not in r["input"]]
    if target.endswith("_sha256"):
        inputs += [r["input"] for r in _vectors("hashed_passthrough.csv")]
    chain = [normalize, "sha256"] if target.endswith("_sha256") else [normalize]
    rules = [{"source": "value", "target": target, "transform": chain},
             {"source": "n", "target": "n", "transform": []}]
    data = ("value,n\n" + "".join(f"{v},{i}\n" for i, v in enumerate(inputs))).encode()
    fast, _ = _both(tmp_path, data, rules=rules)
    assert fast["fast"]
    out = {int(row[1]): row[0] for row in csv.reader(fast["out"].decode().splitlines()[1:])}
    for vector in _vectors("normalization.csv"):
        if vector["kind"] == kind and vector["outcome"] == "ok" and vector["input"] in inputs:
            expected = vector["sha256"] if target.endswith("_sha256") else vector["normalized"]
            assert expected in out.values(), vector["note"]
    if target.endswith("_sha256"):
        for vector in _vectors("hashed_passthrough.csv"):
            assert (vector["output"] in out.values()) == (vector["outcome"] == "ok"), vector["note"]


# ---------------------------------------------------------------- differential property
VALUES = st.sampled_from([
    "alice@example.com", " Alice@Example.COM\t", ALICE_SHA, ALICE_SHA.upper(), f" {ALICE_SHA} ", ALICE_SHA[:-1],
    ALICE_SHA[:-1] + "g", "a" * 40, "bob@x.org", "josé@exämple.com", "İX@y.z", "a\u00a0@b.c", "\u00a0",
    "no-at", "a@@b", "@x.com", "a@", "a b@c.d", "", " ", "\t", "+33 6 12 34 56 78", "0033612345678",
    "+1-800-FLOWERS", "+12", "0612345678", "+442079460958", "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "00000000-0000-0000-0000-000000000000", "C-001", "c-001",
    "=SUM(A1)", "-x", "Zoë", "ß", "x" * 64 + "@", "'",
])
CHAINS = st.lists(st.sampled_from(["none", "trim", "lowercase", "normalize_email", "normalize_phone", "sha256"]),
                  max_size=3)
TARGETS = st.sampled_from([*sorted(IDS), "attr_a", "attr_b", "custom_id"])


@st.composite
def cases(draw):
    ncols = draw(st.integers(1, 4))
    header = [f"c{i}" for i in range(ncols)]
    rules = draw(st.lists(st.fixed_dictionaries({"source": st.sampled_from(header), "target": TARGETS,
                                                 "transform": CHAINS}), min_size=1, max_size=4,
                          unique_by=lambda r: r["target"]))
    ids = IDS | {"custom_id"}
    assume(not validate_mapping(rules, header, sorted(ids), None))
    rows = draw(st.lists(st.lists(VALUES, min_size=max(ncols - 1, 1), max_size=ncols + 1), max_size=30))
    rows = [r if r != [""] else ["x"] for r in rows]  # a lone empty field would be a blank line
    crlf, last_newline = draw(st.booleans()), draw(st.booleans())
    newline = "\r\n" if crlf else "\n"
    text = newline.join([",".join(header), *(",".join(r) for r in rows)]) + (newline if last_newline else "")
    return text.encode(), rules, ids


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(case=cases(), chunk=st.integers(1, 50), gz=st.booleans())
def test_fast_path_matches_python(tmp_path_factory, case, chunk, gz):
    data, rules, ids = case
    tmp = tmp_path_factory.mktemp("diff")
    body = gzip_module.compress(data) if gz else data
    fast, _ = _both(tmp, body, rules=rules, identifier_types=ids, chunk=chunk, gzip=gz)
    # the generator only makes eligible files (no quotes, blank lines or stray CRs)
    assert fast.get("fast") or "error" in fast
