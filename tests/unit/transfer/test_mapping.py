"""Mapping validation errors and the compiled row mapper's row semantics."""
from __future__ import annotations

import pytest

from exchange.errors import ValidationFailed
from exchange.transfer.mapping import RowRejected, compile_mapping, validate_mapping

EMAIL_RULE = {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}
ALICE_SHA = "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"


def test_valid_mapping_has_no_errors():
    rules = [EMAIL_RULE, {"source": "first_name", "target": "first_name", "transform": "none"}]
    assert validate_mapping(rules, ["email", "first_name"], ["email_sha256"], ["first_name"]) == {}


@pytest.mark.parametrize(("rules", "sources", "identifiers", "attributes", "expected"), [
    ([{"source": "emial", "target": "email_sha256", "transform": ["sha256"]}], ["email"], ["email_sha256"],
     None, {"mapping.0.source": ["unknown source column 'emial'; the source has: email"]}),
    ([EMAIL_RULE, {"source": "email", "target": "x", "transform": ["upper"]}], ["email"], ["email_sha256"],
     None, {"mapping.1.transform": [
         "unknown transform 'upper'; use one of: none, trim, lowercase, normalize_email, normalize_phone, sha256"]}),
    ([EMAIL_RULE, EMAIL_RULE], None, ["email_sha256"], None,
     {"mapping.1.target": ["target 'email_sha256' is already produced by mapping.0"]}),
    ([EMAIL_RULE, {"source": "c", "target": "colour"}], None, ["email_sha256"], ["country"],
     {"mapping.1.target": ["'colour' is neither an identifier nor an attribute the destination accepts"]}),
    ([{"source": "c", "target": "country"}], None, ["email_sha256", "maid"], None,
     {"mapping": ["mapping must produce at least one identifier the destination accepts: email_sha256, maid"]}),
    ([EMAIL_RULE], None, ["maid"], None,
     {"mapping.0.target": ["the destination does not accept the identifier 'email_sha256'"],
      "mapping": ["mapping must produce at least one identifier the destination accepts: maid"]}),
    ([{"source": "e", "target": "email_sha256", "transform": ["normalize_email"]}], None, ["email_sha256"],
     None, {"mapping.0.transform": [
         "email_sha256 expects a SHA-256 hash: add the sha256 transform after normalizing"]}),
    ([{"source": "p", "target": "phone_e164", "transform": ["normalize_phone", "sha256"]}], None,
     ["phone_e164"], None, {"mapping.0.transform": [
         "sha256 produces a hash, not a phone_e164 value; map it to a *_sha256 target"]}),
    ([{"source": "p", "target": "email", "transform": ["normalize_phone"]}], None, ["email"], None,
     {"mapping.0.transform": ["normalize_phone does not fit the email target"]}),
    ([{"source": "", "target": "email", "transform": 3}], None, ["email"], None,
     {"mapping.0.source": ["source must be a non-empty column name"],
      "mapping.0.transform": ["transform must be a list of transform names"]}),
    ([], None, ["email"], None,
     {"mapping": ["mapping must be a non-empty list of {source, target, transform} entries"]}),
])
def test_validation_errors(rules, sources, identifiers, attributes, expected):
    assert validate_mapping(rules, sources, identifiers, attributes) == expected


def test_compile_refuses_a_mapping_that_does_not_fit_the_header():
    with pytest.raises(ValidationFailed) as info:
        compile_mapping([EMAIL_RULE], ["mail"], identifier_types={"email_sha256"})
    assert "mapping.0.source" in info.value.errors
    with pytest.raises(ValidationFailed) as info:
        compile_mapping([EMAIL_RULE], ["email"], identifier_types={"email_sha256"}, default_country="XX")
    assert "default_country" in info.value.errors


def _mapper(**kw):
    rules = [
        EMAIL_RULE,
        {"source": "phone", "target": "phone_e164", "transform": ["normalize_phone"]},
        {"source": "maid", "target": "maid", "transform": []},
        {"source": "loyalty", "target": "loyalty_id", "transform": ["trim"]},
        {"source": "name", "target": "first_name", "transform": ["trim", "lowercase"]},
        {"source": "name", "target": "raw_name", "transform": []},
    ]
    header = ["email", "phone", "maid", "loyalty", "name"]
    return compile_mapping(rules, header, identifier_types={"email_sha256", "phone_e164", "maid", "loyalty_id"},
                           **kw)


def test_row_with_every_identifier():
    mapper = _mapper(default_country="FR")
    out = mapper([" Alice@Example.COM", "06 12 34 56 78", "6D92078A-8246-4BA4-AE5B-76104861E7DC", " L1 ",
                  " Zoé "])
    assert out == [ALICE_SHA, "+33612345678", "6d92078a-8246-4ba4-ae5b-76104861e7dc", "L1", "zoé", " Zoé "]
    assert mapper.columns == ["email_sha256", "phone_e164", "maid", "loyalty_id", "first_name", "raw_name"]
    assert mapper.identifier_positions == (0, 1, 2, 3)
    assert (mapper.hashed, mapper.passed_through) == (1, 0)


def test_blank_identifiers_are_allowed_while_one_is_usable():
    assert _mapper()(["", "  ", "", "L1", ""]) == ["", "", "", "L1", "", ""]


def test_row_without_usable_identifier_is_rejected():
    with pytest.raises(RowRejected, match="^no usable identifier$"):
        _mapper()(["", " ", "\t", "", "Zoé"])


@pytest.mark.parametrize(("fields", "reason"), [
    (["not-an-email", "", "", "L1", ""], "email: no @ in email"),
    (["a@b.c", "0612345678", "", "", ""], "phone: phone number has no country code and no default country is set"),
    (["a@b.c", "", "not-a-uuid", "", ""], "maid: not a mobile ad id (IDFA/GAID UUID expected)"),
    (["a@b.c", "", "00000000-0000-0000-0000-000000000000", "", ""], "maid: all-zero mobile ad id"),
])
def test_one_bad_identifier_rejects_the_row_naming_the_column(fields, reason):
    mapper = _mapper()
    with pytest.raises(RowRejected) as info:
        mapper(fields)
    assert info.value.reason.startswith(reason)
    assert (mapper.hashed, mapper.passed_through) == (0, 0)  # counts only accepted rows


def test_counts_hashed_versus_passed_through():
    mapper = compile_mapping([EMAIL_RULE], ["email"], identifier_types={"email_sha256"})
    for value in ["a@b.c", ALICE_SHA.upper(), f" {ALICE_SHA} ", "c@d.e", "x@y.z"]:
        mapper([value])
    assert (mapper.hashed, mapper.passed_through) == (3, 2)


@pytest.mark.parametrize(("target", "value", "ok"), [
    ("email", "alice@example.com", True),
    ("email", "Alice@example.com", False),  # not normalized and no transform asked for it
    ("email_sha256", "alice@example.com", False),
    ("phone_e164", "+33612345678", True),
    ("phone_e164", "0612345678", False),
    ("phone_sha256", ALICE_SHA, True),
    ("cookie_id", "anything at all", True),
])
def test_target_type_decides_final_validation(target, value, ok):
    mapper = compile_mapping([{"source": "v", "target": target}], ["v"], identifier_types={target})
    if ok:
        assert mapper([value]) == [value]
    else:
        with pytest.raises(RowRejected, match="^v: "):
            mapper([value])


def test_multi_identifier_key_separates_parts():
    mapper = _mapper()
    a = mapper(["a@b.c", "", "", "L1", ""])
    b = mapper(["a@b.c", "", "", "", ""])
    assert mapper.key(a) != mapper.key(b)
    assert mapper.key(a) == mapper.key(mapper(["A@B.C ", "", "", " L1", "x"]))
