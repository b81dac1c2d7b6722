"""SQL for the columnar fast path: a compiled mapping as DuckDB expressions, run over a spooled file.

:func:`compile_rules` turns the rules of :mod:`exchange.transfer.mapping` into SQL that handles only
the values whose outcome it can prove identical to the Python mapper: the accepted, "plain" cases
(ASCII values; space and tab are the only whitespace, because the caller declines files holding any
other ASCII whitespace). Every other row that has the right number of fields is handed, whole, to a
Python UDF running the compiled Python mapper itself, so rejects and their reasons, non-ASCII
case folding and Unicode whitespace come from the very code the Python path runs. Rows with a wrong
field count are rejected in SQL with the Python path's reason.

:func:`run_sql` reads the file as one column per line (no quotes exist, so a line is a record and
``split(line, ',')`` its fields), numbers lines ``WITH ORDINALITY`` (file order), materialises the
mapped rows once, then finds the later copies of duplicated keys, copies the first occurrences in
line order to the output and streams the rejects back in line order.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from exchange.transfer.mapping import HASH_TARGETS, MappingRule, RowMapper, RowRejected

__all__ = ["SqlMapping", "SqlStats", "compile_rules", "run_sql"]

_EMAIL = r"'[^ \t@]+@[^ \t@]+'"
_HEX64 = "'[0-9a-fA-F]{64}'"
_LONG_HEX = "'[0-9a-fA-F]{32,}'"
_E164 = r"'\+[1-9][0-9]{7,14}'"
_UUID = "'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'"
_ZERO_UUID = "'00000000-0000-0000-0000-000000000000'"


def _q(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _trim(x: str) -> str:
    return f"trim({x}, ' ' || chr(9))"


def _full(x: str, pattern: str) -> str:
    return f"regexp_full_match({x}, {pattern})"


@dataclass(frozen=True)
class SqlMapping:
    lets: list[list[tuple[str, str]]]  # layers of (name, expression) over ``f`` and earlier layers
    outputs: list[str]  # one SQL expression per output column, valid where ``native`` holds
    native: str  # SQL: the row is fully handled in SQL (accepted, not rejected)
    hashed: str  # SQL integer: identifier values hashed in this row (native rows)
    passed: str  # SQL integer: identifier values kept as existing hashes (native rows)
    key_positions: tuple[int, ...]


class _Lets:
    """Named subexpressions, each computed once per row in the first layer its inputs allow."""

    _NAME = re.compile(r"\b_x[0-9]+\b")

    def __init__(self) -> None:
        self.layer: dict[str, int] = {}
        self.layers: list[list[tuple[str, str]]] = []

    def __call__(self, expr: str) -> str:
        depth = max((self.layer[n] + 1 for n in self._NAME.findall(expr)), default=0)
        name = f"_x{len(self.layer)}"
        self.layer[name] = depth
        while len(self.layers) <= depth:
            self.layers.append([])
        self.layers[depth].append((name, expr))
        return name


def _steps(let: _Lets, x: str, chain: list[str], conds: list[str]) -> str:
    for t in chain:
        if t == "trim":
            x = let(_trim(x))
        elif t == "lowercase":
            x = let(f"lower({x})")
        elif t == "normalize_email":
            x = let(f"lower({_trim(x)})")
            conds.append(let(_full(x, _EMAIL)))
        elif t == "normalize_phone":
            p = let(f"regexp_replace({_trim(x)}, '[ .()/\\t-]', '', 'g')")
            conds.append(let(_full(p, r"'(\+|00)[1-9][0-9]{7,14}'")))
            x = let(f"('+' || regexp_replace({p}, '^(\\+|00)', ''))")
        elif t == "sha256":
            x = let(f"sha256({x})")
    return x


def _final(let: _Lets, x: str, target: str, chain: list[str], conds: list[str]) -> str:
    last = chain[-1] if chain else None
    if target in HASH_TARGETS and last != "sha256":
        conds.append(let(_full(x, "'[0-9a-f]{64}'")))
    elif target == "email" and last != "normalize_email":
        conds.append(let(f"({_full(x, _EMAIL)} AND {x} = lower({x}))"))
    elif target == "phone_e164" and last != "normalize_phone":
        conds.append(let(_full(x, _E164)))
    elif target == "maid":
        x = let(f"lower({_trim(x)})")
        conds.append(let(f"({_full(x, _UUID)} AND {x} <> {_ZERO_UUID})"))
    return x


def _rule_sql(let: _Lets, rule: MappingRule, v: str, is_id: bool) -> tuple[str, str, str | None, str, str]:
    """(output, ok condition, usable-identifier condition, hashed, passed) for one rule."""
    chain = list(rule.transform)
    heavy = any(t.startswith("normalize_") or t == "sha256" for t in chain)
    ascii_ = f"(strlen({v}) = length({v}))"
    if not is_id and not heavy:
        out = v
        for t in chain:
            out = _trim(out) if t == "trim" else f"lower({out})"
        return out, ascii_ if chain else "true", None, "0", "0"
    blank = let(_full(v, "'[ \\t]*'"))
    hashing = "sha256" in chain or rule.target in HASH_TARGETS
    normalizes = any(t.startswith("normalize_") for t in chain)
    conds: list[str] = []
    hashed = passed = "0"
    if hashing:
        t = let(_trim(v))
        is_hash = let(f"(strlen({t}) = 64 AND {_full(t, _HEX64)})")
        step_conds: list[str] = []
        if rule.target in HASH_TARGETS and not normalizes:
            # near-hashes are rejected by the Python mapper: let it explain them
            step_conds.append(let(f"NOT ({_full(t, _LONG_HEX)} OR (strlen({t}) = 64 AND NOT contains({t}, '@')))"))
        stepped = _steps(let, v, chain, step_conds)
        x = let(f"(CASE WHEN {is_hash} THEN lower({t}) ELSE {stepped} END)")
        if step_conds:
            conds.append(f"({is_hash} OR ({' AND '.join(step_conds)}))")
        if is_id:
            passed = f"(CASE WHEN {is_hash} THEN 1 ELSE 0 END)"
            if "sha256" in chain:
                hashed = f"(CASE WHEN {is_hash} THEN 0 ELSE {chain.count('sha256')} END)"
    else:
        x = _steps(let, v, chain, conds)
    if is_id:
        x = _final(let, x, rule.target, chain, conds)
    body_ok = " AND ".join(conds) if conds else "true"
    ok = f"({ascii_} AND ({blank} OR ({body_ok})))"
    if is_id and not chain and not conds:
        # a non-blank character settles it for any content; only blank-looking values need Python
        ok = f"({ok} OR regexp_matches({v}, '[!-~]'))"
    out = f"(CASE WHEN {blank} THEN '' ELSE {x} END)"
    if is_id:
        hashed = f"(CASE WHEN {blank} THEN 0 ELSE {hashed} END)"
        passed = f"(CASE WHEN {blank} THEN 0 ELSE {passed} END)"
    return out, ok, (f"(NOT {blank})" if is_id else None), hashed, passed


def compile_rules(rules: list[MappingRule], header: list[str], identifier_types: set[str]) -> SqlMapping:
    let = _Lets()
    outputs, oks, used, hashed, passed = [], [], [], [], []
    for rule in rules:
        v = f"f[{header.index(rule.source) + 1}]"
        out, ok, usable, h, p = _rule_sql(let, rule, v, rule.target in identifier_types)
        outputs.append(out)
        oks.append(ok)
        hashed.append(h)
        passed.append(p)
        if usable is not None:
            used.append(usable)
    native = " AND ".join([*oks, "(" + " OR ".join(used) + ")"])
    keys = tuple(k for k, r in enumerate(rules) if r.target in identifier_types)
    return SqlMapping(let.layers, outputs, native, " + ".join(hashed), " + ".join(passed), keys)


@dataclass
class SqlStats:
    received: int
    rejected: int
    accepted: int
    valid: int
    hashed: int
    passed_through: int
    longest_line: int


_READ_OPTIONS = "delim=chr(1), quote='', escape='', header=false, auto_detect=false, comment=''"


def run_sql(con: duckdb.DuckDBPyConnection, data_path: str, workdir: str, out_path: str,
            header_line: str, ncols: int, sql: SqlMapping, mapper: RowMapper) -> SqlStats:
    """Map, dedupe and write ``out_path``; the rejects stay in table ``m`` for :func:`iter_rejects`."""
    width = len(sql.outputs)
    outs = ", ".join(f"CASE WHEN native THEN {o} END AS o{k}" for k, o in enumerate(sql.outputs))
    layers, last = "", "lines"
    for depth, lets in enumerate(sql.lets):
        exprs = ", ".join(f"{e} AS {n}" for n, e in lets)
        layers += f"layer{depth} AS (SELECT *, {exprs} FROM {last}), "
        last = f"layer{depth}"
    con.execute(f"""
        CREATE TABLE m AS
        WITH lines AS (
            SELECT ordinality AS ord, l, string_split(l, ',') AS f
            FROM read_csv({_q(data_path)}, columns={{'l': 'VARCHAR'}}, {_READ_OPTIONS}, skip=1)
                 WITH ORDINALITY
        ), {layers}judged AS (
            SELECT *, len(f) AS nf, len(f) = {ncols} AND ({sql.native}) AS native FROM {last}
        )
        SELECT ord, strlen(l) AS len, {outs},
               CASE WHEN nf <> {ncols} THEN 'expected {ncols} fields, found ' || nf END AS reason,
               CASE WHEN NOT native THEN l END AS raw,
               CASE WHEN native THEN {sql.hashed} ELSE 0 END AS h,
               CASE WHEN native THEN {sql.passed} ELSE 0 END AS p,
               nf = {ncols} AND NOT native AS py, false AS dup
        FROM judged
    """)
    if _map_in_python(con, workdir, width, mapper):
        sets = ", ".join(f"o{k} = pyres.o{k}" for k in range(width))
        con.execute(f"""
            UPDATE m SET {sets}, reason = pyres.reason, raw = pyres.raw, h = pyres.h, p = pyres.p
            FROM pyres WHERE m.ord = pyres.ord
        """)
    keys = ", ".join(f"o{k}" for k in sql.key_positions)
    # Group on a 64-bit hash of the key (cheap), then compare the few candidate keys exactly.
    con.execute(f"""
        CREATE TABLE cand AS
        SELECT hash({keys}) AS hk FROM m WHERE reason IS NULL GROUP BY hk HAVING count(*) > 1
    """)
    con.execute(f"""
        UPDATE m SET dup = true FROM (
            SELECT ord FROM (
                SELECT ord, min(ord) OVER (PARTITION BY {keys}) AS first
                FROM m SEMI JOIN cand ON hash({keys}) = cand.hk WHERE m.reason IS NULL
            ) WHERE ord <> first
        ) later WHERE m.ord = later.ord
    """)
    line = " || ',' || ".join(f"o{k}" for k in range(width))
    # a single table, WHERE and UNION ALL keep the row order (DuckDB's order preservation rules)
    con.execute(f"""
        COPY (
            SELECT {_q(header_line)} AS line
            UNION ALL
            SELECT {line} FROM m WHERE reason IS NULL AND NOT dup
        ) TO {_q(out_path)} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '')
    """)
    received, rejected, hashed, passed, longest, later = con.execute(
        "SELECT count(*), count(reason), coalesce(sum(h) FILTER (WHERE reason IS NULL), 0),"
        " coalesce(sum(p) FILTER (WHERE reason IS NULL), 0), coalesce(max(len), 0), count(*) FILTER (dup)"
        " FROM m").fetchone()
    accepted = received - rejected
    return SqlStats(received, rejected, accepted, accepted - later, int(hashed), int(passed), longest)


def _map_in_python(con: duckdb.DuckDBPyConnection, workdir: str, width: int, mapper: RowMapper,
                   batch: int = 8192) -> bool:
    """Rows SQL left to the Python mapper, mapped in line order into table ``pyres``.

    Fields hold no comma, quote, newline or ``\\x01`` (the scan declined those files), and
    neither do the mapper's outputs or reasons, so ``\\x01``-separated lines carry them exactly."""
    path = os.path.join(workdir, "pyres.txt")
    fn = mapper.fn
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        cur = con.execute("SELECT ord, raw FROM m WHERE py ORDER BY ord")
        while rows := cur.fetchmany(batch):
            out: list[str] = []
            for ord_, raw in rows:
                h0, p0 = mapper.hashed, mapper.passed_through
                try:
                    values = fn(raw.split(","))
                except RowRejected as exc:
                    out.append(f"{ord_}\x01{exc.reason}\x01{raw}\x010\x010" + "\x01" * width + "\n")
                    continue
                h, p = mapper.hashed - h0, mapper.passed_through - p0
                out.append(f"{ord_}\x01\x01\x01{h}\x01{p}\x01" + "\x01".join(values) + "\n")
            f.write("".join(out))
    columns = ["'ord': 'BIGINT'", "'reason': 'VARCHAR'", "'raw': 'VARCHAR'", "'h': 'INTEGER'",
               "'p': 'INTEGER'", *(f"'o{k}': 'VARCHAR'" for k in range(width))]
    outs = ", ".join(f"CASE WHEN reason = '' THEN o{k} END AS o{k}" for k in range(width))
    if not os.path.getsize(path):
        return False
    source = f"read_csv({_q(path)}, columns={{{', '.join(columns)}}}, {_READ_OPTIONS}, nullstr=chr(2))"
    con.execute(f"""
        CREATE TABLE pyres AS
        SELECT ord, nullif(reason, '') AS reason, CASE WHEN reason <> '' THEN raw END AS raw,
               h, p, {outs}
        FROM {source}
    """)
    return True


def iter_rejects(con: duckdb.DuckDBPyConnection, batch: int = 8192) -> Iterator[tuple[int, str, str]]:
    """(ordinal, raw line, reason) of the rejected rows, in line order."""
    cur = con.execute("SELECT ord, raw, reason FROM m WHERE reason IS NOT NULL ORDER BY ord")
    while rows := cur.fetchmany(batch):
        yield from rows
