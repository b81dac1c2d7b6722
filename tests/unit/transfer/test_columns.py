"""The column mapper against the row mapper it must agree with, rule by rule and row by row.

Every rule shape the mapping validator accepts is drawn (identifiers of every type, hash
pass-through, near-hashes, phones with and without a default country, mobile ad ids, custom
identifiers, light and heavy attributes) over values that are valid, invalid, blank, already
hashed, almost hashed, non-ASCII or padded with Unicode whitespace. For each batch: a row the
column mapper keeps must have exactly the row mapper's output; every row the row mapper rejects
must be set aside; the hashed / passed-through counts must be the row mapper's over the kept rows.
Then whole plain blocks (unquoted, or quoted throughout) go through the engine and are compared with
the plain reference.
"""
from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.transfer.columns import ColumnMapper, _not_emails
from exchange.transfer.mapping import MappingRule, RowRejected, compile_mapping
from exchange.transfer.pipeline import run_transform

from .reference import read_csv, reference_transform

ALICE = "alice@example.com"
ALICE_SHA = hashlib.sha256(ALICE.encode()).hexdigest()
VALUES = [
    ALICE, " Alice@Example.COM\t", "bob@x.org", "josé@exämple.com", "ÉLODIE@EXAMPLE.FR", "a@b", "@x.org", "x.org@",
    "a@@b", "no-at", "a b@c.d", "b\u00a0@x.org", "c@x.io\u2003", "\u2003d@x.io", "İstanbul@x.tr", "",
    " ", "\t", "\u00a0", ALICE_SHA, ALICE_SHA.upper(), f" {ALICE_SHA} ", ALICE_SHA[:-1], ALICE_SHA + "0",
    ALICE_SHA[:40], ALICE_SHA[:63] + "g", "0" * 32, "+33 6 12 34 56 78", "06.12.34.56.78", "0033612345678",
    "+1 (415) 555-0100", "0612", "+0612345678", "06-12-AB-56-78", "+447911123456",
    "6d1b0f2c-8a8e-4a6c-9d5e-2f8f2c7b9a10", "6D1B0F2C-8A8E-4A6C-9D5E-2F8F2C7B9A10 ",
    "00000000-0000-0000-0000-000000000000", "not-a-uuid", "=SUM(A1)", "-1", "Zoë", "x" * 64, "X" * 70,
]
RULES = [
    ("email_sha256", ["normalize_email", "sha256"]), ("email_sha256", []), ("email_sha256", ["trim"]),
    ("email_sha256", ["trim", "lowercase", "sha256"]), ("email", ["normalize_email"]), ("email", []),
    ("email", ["trim", "lowercase"]), ("phone_e164", ["normalize_phone"]), ("phone_e164", []),
    ("phone_sha256", ["normalize_phone", "sha256"]), ("phone_sha256", []), ("maid", []), ("maid", ["trim"]),
    ("customer_id", ["trim"]), ("customer_id", []), ("customer_id", ["sha256"]),
    ("customer_id", ["trim", "lowercase", "sha256", "sha256"]), ("name", []), ("name", ["trim", "lowercase"]),
    ("name", ["sha256"]), ("name", ["normalize_phone"]), ("name", ["normalize_email", "sha256"]),
]
IDS = {"email_sha256", "email", "phone_e164", "phone_sha256", "maid", "customer_id"}


@st.composite
def mappings(draw):
    width = draw(st.integers(1, 4))
    header = [f"c{i}" for i in range(width)]
    picked = draw(st.lists(st.sampled_from(RULES), min_size=1, max_size=4, unique_by=lambda r: r[0]))
    if not any(target in IDS for target, _ in picked):
        picked.append(draw(st.sampled_from([r for r in RULES if r[0] in IDS])))
        picked = list({t: (t, c) for t, c in picked}.values())
    rules = [{"source": draw(st.sampled_from(header)), "target": target, "transform": chain}
             for target, chain in picked]
    country = draw(st.sampled_from([None, "FR", "US"]))
    rows = draw(st.lists(st.lists(st.sampled_from(VALUES), min_size=width, max_size=width), max_size=40))
    return header, rules, country, rows


def _row_results(mapper, rows):
    """(output or reject reason, hashed, passed) per row, from the row mapper."""
    results = []
    for row in rows:
        h0, p0 = mapper.hashed, mapper.passed_through
        try:
            out = mapper(list(row))
        except RowRejected as exc:
            results.append((exc.reason, 0, 0))
            continue
        results.append((out, mapper.hashed - h0, mapper.passed_through - p0))
    return results


@settings(max_examples=int(os.environ.get("COLUMN_EXAMPLES", "400")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=mappings())
def test_column_mapper_agrees_with_the_row_mapper(case):
    header, rules, country, rows = case
    mapper = compile_mapping(rules, header, identifier_types=IDS, default_country=country)
    want = _row_results(mapper, rows)
    columns = ColumnMapper([MappingRule.coerce(r) for r in rules], header, IDS, country, mapper)
    source = [[row[k] for row in rows] for k in range(len(header))]
    got = columns.map(source, len(rows))
    aside = set(got.aside)
    assert got.aside == sorted(aside)
    hashed = passed = 0
    for i, (expected, h, p) in enumerate(want):
        if isinstance(expected, str):
            assert i in aside, (rows[i], expected)  # a reject is always the row mapper's to make
            continue
        if i in aside:
            continue
        assert [c[i] for c in got.columns] == expected, rows[i]
        hashed, passed = hashed + h, passed + p
    assert (got.hashed, got.passed_through) == (hashed, passed)


def test_regular_rows_are_not_set_aside():
    """The point of the column mapper: ordinary rows take no per-row path."""
    rules = [{"source": "e", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
             {"source": "p", "target": "phone_e164", "transform": ["normalize_phone"]},
             {"source": "n", "target": "name", "transform": ["trim"]}]
    header = ["e", "p", "n"]
    mapper = compile_mapping(rules, header, identifier_types=IDS, default_country="FR")
    rows = [[f" User{i}@Example.com", "" if i % 2 else "06 12 34 56 78", "x"] for i in range(1000)]
    rows[10][0] = "broken.example.com"
    rows[20][0] = ALICE_SHA.upper()
    got = ColumnMapper([MappingRule.coerce(r) for r in rules], header, IDS, "FR", mapper).map(
        [[r[k] for r in rows] for k in range(3)], len(rows))
    assert got.aside == [10]  # the one bad email; the existing hash is kept by the column path too
    assert got.columns[0][0] == hashlib.sha256(b"user0@example.com").hexdigest()
    assert got.columns[0][20] == ALICE_SHA
    assert got.columns[1][:2] == ["+33612345678", ""]
    assert got.hashed == 998 and got.passed_through == 1


@pytest.mark.parametrize("value", [ALICE, "a@b", "@a", "a@", "a@@b", "a b@c", "a@b\u2003c", "a\u0085@b", "ab", "",
                                   "a\x1f@b", "é@ü"])
def test_email_check_without_the_expression_matches_it(value):
    import re

    ok = re.compile(r"[^\s@]+@[^\s@]+").fullmatch
    values = [ALICE, value, "z@z"]
    assert _not_emails(values) == ([] if ok(value) else [1])


@st.composite
def plain_bodies(draw):
    """Unquoted bodies, or bodies quoted throughout ("a","b"; values may then hold commas)."""
    header, rules, _, rows = draw(mappings())
    quoted = draw(st.booleans())
    if quoted:
        rows = [[draw(st.sampled_from(["x,y", "a,b@c.d", v])) if draw(st.integers(0, 9)) == 0 else v for v in row]
                for row in rows]

    def line(values):
        return '"' + '","'.join(values) + '"' if quoted else ",".join(values)

    lines = [line(header)]
    for row in rows:
        kind = draw(st.integers(0, 12))
        if kind == 0:
            lines.append("")  # a blank line
        elif kind == 1:
            lines.append(line([*row, "extra"]))  # a field too many
        elif kind == 2 and len(row) > 1:
            lines.append(line(row[1:]))  # a field missing
        lines.append(line(row))
    body = "\n".join(lines) + ("\n" if draw(st.booleans()) else "")
    return body.encode(), rules


@settings(max_examples=int(os.environ.get("ENGINE_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=plain_bodies(), block_bytes=st.integers(1, 400), partitions=st.sampled_from([1, 7]))
def test_plain_blocks_match_the_reference(tmp_path, case, block_bytes, partitions):
    body, rules = case  # (the reference maps without a default country)
    out, rej = tmp_path / "o.csv", tmp_path / "r.csv"
    result = run_transform([body], gzip=False, rules=rules, identifier_types=IDS, out_path=str(out),
                           rejects_path=str(rej), block_bytes=block_bytes, workers=0, dedupe_partitions=partitions)
    want = reference_transform(body, rules, IDS)
    assert read_csv(out.read_bytes()) == [want["header"], *want["out"]]
    assert read_csv(rej.read_bytes())[1:] == want["rejects"]
    assert {k: result.counts[k] for k in want["counts"]} == want["counts"]


@pytest.mark.parametrize("value", ["0" * 32, ALICE_SHA[:40], ALICE_SHA[:63] + "g", ALICE_SHA + "0"])
def test_near_hashes_are_left_to_the_row_mapper(value):
    """Whatever else is in the column (here: nothing longer than the near-hash itself)."""
    rules = [{"source": "e", "target": "email_sha256", "transform": ["trim", "sha256"]}]
    mapper = compile_mapping(rules, ["e"], identifier_types=IDS)
    got = ColumnMapper([MappingRule.coerce(r) for r in rules], ["e"], IDS, None, mapper).map([[value, "ab"]], 2)
    assert got.aside == [0]  # "ab" is hashed (a hash of anything is a valid hash); the near-hash is not
    with pytest.raises(RowRejected, match="malformed SHA-256 hash"):
        mapper([value])


@pytest.mark.parametrize(("body", "plain"), [
    (b"a@x.org,Bob,FR\nb@x.org,Eve,DE\n", True),
    (b'"a@x.org","Bob","FR"\n"b@x.org","Eve","DE"\n', True),  # quoted throughout
    (b'"a@x.org","Bob, Jr","FR"\n"b@x.org","Eve","DE"\n', False),  # a comma in a value: read as CSV
    (b'"a@x.org","Bob ""B""","FR"\n', False),  # a quote inside a field
    (b'a@x.org,"Bob",FR\n', False),  # quoted here and there
    (b"a@x.org,Bob,FR\r\n", False),
    (b"a@x.org,B\xffob,FR\n", False),
])
def test_which_blocks_take_the_plain_path(body, plain):
    from exchange.transfer.blocks import BlockSpec, BlockTransformer
    from exchange.transfer.csvio import CsvLimits

    rules = [{"source": "e", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
             {"source": "n", "target": "name", "transform": []}, {"source": "c", "target": "country"}]
    t = BlockTransformer(BlockSpec(rules, ["e", "n", "c"], IDS, None, CsvLimits(), 4))
    fast, slow = t._run_plain(0, 2, body, True), t._run_rows(0, 2, body, True, True)
    assert (fast is not None) == plain
    if fast is not None:
        assert vars(fast) == vars(slow)
