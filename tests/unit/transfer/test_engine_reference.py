"""Differential tests: the block engine (run_transform) against the plain reference in reference.py.

Inputs are generated, hostile ones included: quoted fields with commas, quotes and newlines
(which often straddle block boundaries, so the carried-over records are exercised), stray quotes,
unterminated quotes, bare carriage returns, CRLF, a BOM, blank lines, invalid UTF-8, wrong field
counts, formula-looking values, duplicates (across blocks too), existing hashes, NUL bytes (fatal).
Blocks are made tiny so that a few rows make many blocks; chunks are cut at random places.
"""
from __future__ import annotations

import gzip as gzip_module
import hashlib
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.errors import CsvDataError
from exchange.transfer.csvio import format_row
from exchange.transfer.pipeline import run_transform

from .reference import read_csv, reference_transform

ALICE_SHA = "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"
RULES = [
    {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
    {"source": "name", "target": "name", "transform": []},
    {"source": "country", "target": "country", "transform": ["trim", "lowercase"]},
]
RULES_TWO_IDS = [
    {"source": "email", "target": "email", "transform": ["normalize_email"]},
    {"source": "name", "target": "customer_id", "transform": ["trim"]},
    {"source": "country", "target": "country", "transform": []},
]
IDS = {"email_sha256", "email", "customer_id"}

HEADERS = [b"email,name,country", b'"email","name","country"', b"\xef\xbb\xbfemail,name,country",
           b"\n\r\nemail , name,country", b'email,"name",country']
EMAILS = ["alice@example.com", " Alice@Example.COM\t", ALICE_SHA, ALICE_SHA.upper(), ALICE_SHA[:-1],
          "bob@x.org", "josé@exämple.com", "no-at", "a@@b", "", "  ", "a b@c.d", "b\u00a0@x.org", "c@x.io"]
TEXTS = ["", "a", "Zoë", "x,y", 'say "hi"', "two\nlines", "cr\r\nlf", "=SUM(A1)", "-1", "@me", " ", "\t",
         "end\n", '"', "é" * 3]


@st.composite
def bodies(draw):
    parts = [draw(st.sampled_from(HEADERS))]
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.integers(0, 14))
        email, name, country = draw(st.sampled_from(EMAILS)), draw(st.sampled_from(TEXTS)), draw(
            st.sampled_from(["FR", " de ", "", "Us"]))
        if kind <= 7:  # a well-formed record, quoted where needed
            parts.append(format_row([email, name, country]).encode().rstrip(b"\n"))
        elif kind == 8:
            parts.append(b"")  # a blank line
        elif kind == 9:
            parts.append(format_row([email, name]).encode().rstrip(b"\n"))  # a field missing
        elif kind == 10:
            parts.append(format_row([email, name, country, "extra"]).encode().rstrip(b"\n"))
        elif kind == 11:
            parts.append(email.encode() + b',na"me' + draw(st.sampled_from([b'",x', b'"', b",x"])))  # stray quotes
        elif kind == 12:
            parts.append(b"bad\xff@x.org," + name.encode() + b",FR")  # invalid UTF-8
        elif kind == 13:
            parts.append(email.encode() + b",a\rb,FR")  # a bare carriage return
        else:
            parts.append(email.encode() + b',"open quote,FR')  # runs on over the next lines
    body = newline.join(parts) + (newline if draw(st.booleans()) else b"")
    if draw(st.integers(0, 20)) == 0:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + b"\x00" + body[at:]
    return body


def _engine(tmp_path, body: bytes, rules, *, gz: bool, chunk: int, **kw):
    out, rej = tmp_path / "out.csv", tmp_path / "rej.csv"
    data = gzip_module.compress(body) if gz else body
    try:
        result = run_transform([data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""], gzip=gz,
                               rules=rules, identifier_types=IDS, out_path=str(out), rejects_path=str(rej), **kw)
    except CsvDataError:
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind
        return None
    out_bytes = out.read_bytes()
    assert result.out_sha256 == hashlib.sha256(out_bytes).hexdigest()
    assert result.out_bytes == len(out_bytes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "rej.csv"]
    got = {"out": read_csv(out_bytes), "rejects": read_csv(rej.read_bytes()), "counts": result.counts}
    out.unlink()
    rej.unlink()
    return got


def _compare(got, body: bytes, rules) -> None:
    try:
        want = reference_transform(body, rules, IDS)
    except CsvDataError:
        assert got is None, "the reference finds this input fatal, the engine did not"
        return
    assert got is not None, "the engine found this input fatal, the reference did not"
    assert got["out"] == [want["header"], *want["out"]]
    assert got["rejects"][1:] == want["rejects"]
    counts = got["counts"]
    assert {k: counts[k] for k in want["counts"]} == want["counts"]
    assert counts["received"] == counts["valid"] + counts["rejected"] + counts["duplicates"]


@settings(max_examples=int(os.environ.get("ENGINE_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies(), block_bytes=st.integers(1, 160), chunk=st.integers(1, 64), gz=st.booleans(),
       two_ids=st.booleans(), partitions=st.sampled_from([1, 3, 64]))
def test_engine_matches_the_reference(tmp_path, body, block_bytes, chunk, gz, two_ids, partitions):
    rules = RULES_TWO_IDS if two_ids else RULES
    got = _engine(tmp_path, body, rules, gz=gz, chunk=chunk, block_bytes=block_bytes, workers=0,
                  dedupe_partitions=partitions)
    _compare(got, body, rules)


def _hostile_file(rows: int, seed: int) -> bytes:
    rng = random.Random(seed)
    parts = [b"email,name,country"]
    for _ in range(rows):
        r = rng.random()
        email = f"user{rng.randrange(rows // 3)}@example.com" if r < 0.5 else rng.choice(EMAILS)
        if r < 0.05:  # a long quoted multi-line field: records that straddle blocks
            name = "\n".join(f"line {j}, \"quoted\"" for j in range(rng.randrange(1, 400)))
            parts.append(format_row([email, name, "FR"]).encode().rstrip(b"\n"))
        elif r < 0.07:
            parts.append(email.encode() + b',"open quote,FR')
        elif r < 0.09:
            parts.append(b"")
        elif r < 0.1:
            parts.append(b"x\xfe@y.z,n,FR")
        else:
            parts.append(format_row([email, rng.choice(TEXTS), rng.choice(["FR", " de "])]).encode().rstrip(b"\n"))
    return b"\r\n".join(parts) + b"\r\n"


@pytest.mark.parametrize("block_bytes", [997, 1 << 14])
def test_worker_processes_match_the_reference(tmp_path, block_bytes):
    body = _hostile_file(4000, seed=block_bytes)
    got = _engine(tmp_path, body, RULES, gz=False, chunk=1 << 13, block_bytes=block_bytes, workers=2)
    _compare(got, body, RULES)
    assert got["counts"]["duplicates"] > 100 and got["counts"]["rejected"] > 100


def test_shared_vectors_through_the_engine(tmp_path):
    """Every normalization vector, each in its own block, through worker processes."""
    import csv

    from tests.conftest import SHARED

    testdata = SHARED / "testdata"
    with open(testdata / "normalization.csv", encoding="utf-8", newline="") as f:
        vectors = [v for v in csv.DictReader(f) if v["kind"] == "email"]
    rules = [{"source": "value", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
             {"source": "n", "target": "n", "transform": []}]
    body = ("value,n\n" + "".join(format_row([v["input"], str(i)]) for i, v in enumerate(vectors))).encode()
    out, rej = tmp_path / "o.csv", tmp_path / "r.csv"
    run_transform([body], gzip=False, rules=rules, identifier_types={"email_sha256"}, out_path=str(out),
                  rejects_path=str(rej), block_bytes=16, workers=2)
    hashes = {row[1]: row[0] for row in read_csv(out.read_bytes())[1:]}
    rejected = {row[1] for row in read_csv(rej.read_bytes())[1:]}
    for i, v in enumerate(vectors):
        if v["outcome"] == "ok":
            assert hashes.get(str(i)) == v["sha256"] or str(i) not in hashes and v["sha256"] in hashes.values(), v
        else:
            assert str(i) in rejected, v


def test_a_dead_worker_fails_the_transform_and_leaves_nothing(tmp_path, monkeypatch):
    from exchange.transfer import blocks

    started = []
    real = blocks.ProcessRunner.__init__

    def init(self, *args, **kw):
        real(self, *args, **kw)
        started.append(self)
        self._procs[0].kill()  # as if the OOM killer took a worker

    monkeypatch.setattr(blocks.ProcessRunner, "__init__", init)
    body = _hostile_file(3000, seed=1)
    (tmp_path / "out.csv").write_text("previous\n")
    with pytest.raises(blocks.WorkerDied):
        run_transform([body], gzip=False, rules=RULES, identifier_types=IDS, out_path=str(tmp_path / "out.csv"),
                      rejects_path=str(tmp_path / "rej.csv"), block_bytes=4096, workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    assert (tmp_path / "out.csv").read_text() == "previous\n"
    assert all(p.poll() is not None for p in started[0]._procs or [])


def test_workers_are_reused_between_transforms_and_never_after_a_failure(tmp_path):
    from exchange.transfer import blocks

    body = _hostile_file(3000, seed=3)
    seen = []
    real = blocks.ProcessRunner.__init__

    def init(self, *args, **kw):
        real(self, *args, **kw)
        seen.append(list(self._workers))

    blocks.POOL.clear()
    mp = pytest.MonkeyPatch()
    mp.setattr(blocks.ProcessRunner, "__init__", init)
    mp.setattr(blocks.POOL, "enabled", True)  # as in exchange serve's job processes
    try:
        first = _engine(tmp_path, body, RULES, gz=False, chunk=1 << 13, block_bytes=4096, workers=2)
        second = _engine(tmp_path, body, RULES, gz=False, chunk=1 << 13, block_bytes=4096, workers=2)
        assert first == second
        assert {id(w) for w in seen[0]} == {id(w) for w in seen[1]}  # the same two processes, warm
        idle = list(blocks.POOL._idle)
        idle[0].proc.kill()  # an idle worker dies (OOM killer): the next transform starts a new one
        idle[0].proc.wait()
        third = _engine(tmp_path, body, RULES, gz=False, chunk=1 << 13, block_bytes=4096, workers=2)
        assert third == first and idle[0] not in seen[2] and idle[1] in seen[2]
        cut = len(body) * 3 // 4
        with pytest.raises(CsvDataError):  # a failed transform: its workers are stopped, not pooled
            bad = body[:cut] + b"\x00" + body[cut:]
            run_transform([bad[i:i + 8192] for i in range(0, len(bad), 8192)], gzip=False, rules=RULES,
                          identifier_types=IDS, out_path=str(tmp_path / "o.csv"), rejects_path=str(tmp_path / "r.csv"),
                          block_bytes=4096, workers=2)
    finally:
        mp.undo()
    assert len(seen) == 4 and all(w.proc.poll() is not None for w in seen[3])
    assert blocks.POOL._idle == []
    run_transform([body], gzip=False, rules=RULES, identifier_types=IDS, out_path=str(tmp_path / "o.csv"),
                  rejects_path=str(tmp_path / "r.csv"), block_bytes=4096, workers=2)
    assert blocks.POOL._idle == []  # a process that did not enable the pool keeps no idle workers
