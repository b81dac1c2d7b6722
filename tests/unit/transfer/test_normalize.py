"""Normalization and hashing against every row of the shared test vectors (SPEC §6)."""
from __future__ import annotations

import csv
import hashlib

import pytest

from exchange.transfer.mapping import compile_mapping
from exchange.transfer.normalize import (
    RowRejected,
    normalize_email,
    normalize_phone,
    sha256_hex,
)
from tests.conftest import TESTDATA  # noqa: E402


def _vectors(name: str) -> list[dict[str, str]]:
    with open(TESTDATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


NORMALIZATION = _vectors("normalization.csv")
PASSTHROUGH = _vectors("hashed_passthrough.csv")


def test_vector_files_are_complete():
    # Guards against a silently truncated vector file making the parametrized tests vacuous.
    assert len(NORMALIZATION) == 18
    assert len(PASSTHROUGH) == 5
    assert {r["outcome"] for r in NORMALIZATION} == {"ok", "reject"}


@pytest.mark.parametrize("row", NORMALIZATION, ids=[f"{r['kind']}:{r['note']}" for r in NORMALIZATION])
def test_normalization_vector(row):
    normalize = normalize_email if row["kind"] == "email" else normalize_phone
    if row["outcome"] == "reject":
        with pytest.raises(RowRejected) as info:
            normalize(row["input"])
        assert row["input"].strip() == "" or row["input"].strip() not in info.value.reason
        return
    normalized = normalize(row["input"])
    assert normalized == row["normalized"]
    assert sha256_hex(normalized) == row["sha256"]


@pytest.mark.parametrize("row", NORMALIZATION, ids=[f"{r['kind']}:{r['note']}" for r in NORMALIZATION])
def test_normalization_vector_through_a_compiled_mapping(row):
    kind = row["kind"]
    mapper = compile_mapping(
        [{"source": "v", "target": f"{kind}_sha256", "transform": [f"normalize_{kind}", "sha256"]},
         {"source": "other", "target": "customer_id"}],
        ["v", "other"], identifier_types={f"{kind}_sha256", "customer_id"})
    if row["outcome"] == "reject":
        if row["input"].strip():
            with pytest.raises(RowRejected, match=r"^v: "):
                mapper([row["input"], "c1"])
        else:  # blank identifiers are allowed while another identifier is present
            assert mapper([row["input"], "c1"]) == ["", "c1"]
    else:
        assert mapper([row["input"], "c1"]) == [row["sha256"], "c1"]


@pytest.mark.parametrize("row", PASSTHROUGH, ids=[r["note"] for r in PASSTHROUGH])
@pytest.mark.parametrize("transform", [["normalize_email", "sha256"], ["sha256"], []])
def test_hashed_passthrough_vector(row, transform):
    mapper = compile_mapping([{"source": "e", "target": "email_sha256", "transform": transform}], ["e"],
                             identifier_types={"email_sha256"})
    if row["outcome"] == "ok":
        assert mapper([row["input"]]) == [row["output"]]
        assert (mapper.passed_through, mapper.hashed) == (1, 0)
    else:
        with pytest.raises(RowRejected, match="^e: "):
            mapper([row["input"]])
        assert (mapper.passed_through, mapper.hashed) == (0, 0)


@pytest.mark.parametrize("row", PASSTHROUGH, ids=[r["note"] for r in PASSTHROUGH])
def test_sha256_hex_never_hashes_a_hash_twice(row):
    if row["outcome"] == "ok":
        assert sha256_hex(row["input"]) == row["output"]


@pytest.mark.parametrize(("value", "country", "expected"), [
    ("0612345678", "FR", "+33612345678"),
    ("06 12 34 56 78", "fr", "+33612345678"),
    ("+33 6 12 34 56 78", "DE", "+33612345678"),  # an explicit country code wins over the default
    ("(415) 555-0132", "US", "+14155550132"),
    ("1-415-555-0132", "US", "+14155550132"),  # NANP trunk prefix 1
    ("06 1234 5678", "IT", "+390612345678"),  # Italy keeps its leading 0
    ("8 912 345 67 89", "RU", "+79123456789"),
    ("030 1234567", "DE", "+49301234567"),
    ("020 7946 0958", "GB", "+442079460958"),
])
def test_phone_default_country(value, country, expected):
    assert normalize_phone(value, country) == expected


@pytest.mark.parametrize(("value", "reason"), [
    ("+0612345678", "cannot start with 0"),
    ("+33 6 12 34 56 7x", "letters"),
    ("+33#612345678", "invalid character"),
    ("()", "empty phone"),
    ("+", "no digits"),
])
def test_phone_rejects(value, reason):
    with pytest.raises(RowRejected, match=reason):
        normalize_phone(value, "FR")


def test_unknown_default_country_is_a_key_error():
    with pytest.raises(KeyError):
        normalize_phone("0612345678", "ZZ")


@pytest.mark.parametrize("value", ["a b@example.com", "a@exa mple.com"])
def test_email_with_inner_whitespace_is_rejected(value):
    with pytest.raises(RowRejected, match="whitespace"):
        normalize_email(value)


def test_sha256_hashes_utf8_bytes():
    assert sha256_hex("josé@exämple.com") == hashlib.sha256("josé@exämple.com".encode()).hexdigest()
