"""The compiled mapping applied a column at a time: one call per column per block, not per value.

:class:`ColumnMapper` maps a list of rows with the semantics of :func:`~.mapping.compile_mapping`'s
row mapper, but runs each rule over the whole column with C-level loops (``map(str.strip, …)``,
``hashlib`` over ``map``, one regular expression over the column's joined values) instead of a
Python statement per value. It does not re-implement the rules' edge cases: every row that is not
plainly regular for some rule — a value that fails a check, an existing or broken hash, a row
whose identifiers are all blank — is *set aside* and mapped by the row mapper itself, so a set-aside
row's output or reject reason is the row mapper's by construction. Setting a row aside is
always safe, so the bulk checks only need to be supersets of the irregular cases (e.g. "any
line of 64 characters" stands for "maybe a broken hash").

Preconditions (:class:`~.blocks.BlockTransformer` checks them): every row has the header's number
of fields, and no value contains a newline, a quote, a comma, a carriage return or an unpaired
surrogate (the block was split on commas and new lines, and decoded as strict UTF-8).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

try:  # CPython's own SHA-256 (HACL* or libtomcrypt) costs less per short value than OpenSSL's EVP
    from _sha2 import sha256 as _sha256_small  # type: ignore[import-not-found]
except ImportError:  # Python 3.11
    try:
        from _sha256 import sha256 as _sha256_small  # type: ignore[import-not-found,no-redef]
    except ImportError:
        from hashlib import sha256 as _sha256_small  # type: ignore[assignment]
from itertools import repeat
from operator import methodcaller

from exchange.transfer.mapping import (
    _E164,
    _EMAIL_OK,
    _HEX64,
    _HEX64_LOWER,
    _UUID,
    _ZERO_UUID,
    HASH_TARGETS,
    MappingRule,
    RowMapper,
)
from exchange.transfer.normalize import RowRejected, looks_like_broken_hash, normalize_email, normalize_phone

__all__ = ["ColumnMapper", "MappedColumns"]

_SPACE = re.compile(r"\s").search
_ASCII_SPACES = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"  # the ASCII characters str.isspace (and \s) accept
_DIGEST = methodcaller("digest")


@dataclass
class MappedColumns:
    """The output columns of the regular rows, and the rows the row mapper must map instead."""

    columns: list[list[str]]
    aside: list[int]  # indices, ascending
    hashed: int  # identifier values hashed, over the regular rows
    passed_through: int  # identifier values kept as existing hashes, over the regular rows


class _Rule:
    def __init__(self, rule: MappingRule, index: int, is_id: bool, default_country: str | None):
        chain = list(rule.transform)
        self.index, self.is_id, self.chain = index, is_id, chain
        self.light = not is_id and not any(t.startswith("normalize_") or t == "sha256" for t in chain)
        self.hashing = "sha256" in chain or rule.target in HASH_TARGETS
        self.normalizes = any(t.startswith("normalize_") for t in chain)
        self.check_broken = rule.target in HASH_TARGETS and not self.normalizes
        self.hashes_per_value = chain.count("sha256") if is_id else 0
        self.default_country = default_country
        self.final = _final_check(rule.target, chain) if is_id else None


def _final_check(target: str, chain: list[str]) -> Callable[[list[str]], tuple[list[str], list[int]]] | None:
    """The row mapper's last check for the target, as ``values -> (values, failing indices)``."""
    last = chain[-1] if chain else None
    if target in HASH_TARGETS and last != "sha256":
        return lambda v: (v, [i for i, x in enumerate(v) if not _HEX64_LOWER(x)])
    if target == "email" and last != "normalize_email":
        return lambda v: (v, [i for i, x in enumerate(v) if not _same_email(x)])
    if target == "phone_e164" and last != "normalize_phone":
        return lambda v: (v, [i for i, x in enumerate(v) if not _E164(x)])
    if target == "maid":
        def maid(v: list[str]) -> tuple[list[str], list[int]]:
            w = list(map(str.lower, map(str.strip, v)))
            return w, [i for i, x in enumerate(w) if not _UUID(x) or x == _ZERO_UUID]
        return maid
    return None


def _same_email(value: str) -> bool:
    try:
        return normalize_email(value) == value
    except RowRejected:
        return False


class ColumnMapper:
    """``map(rows)``: the row mapper's results for the regular rows, column by column."""

    def __init__(self, rules: Sequence[MappingRule], header: list[str], identifier_types: set[str],
                 default_country: str | None, row_mapper: RowMapper):
        self.rules = [_Rule(r, header.index(r.source), r.target in identifier_types, default_country)
                      for r in rules]
        self.row_mapper = row_mapper

    def map(self, source: list[list[str]], n: int) -> MappedColumns:
        """Map ``n`` rows given as the source's columns (``source[k]`` = column ``k``'s values)."""
        columns: list[list[str]] = []
        aside: set[int] = set()
        all_blank: set[int] | None = None  # rows whose identifiers are all blank (so far)
        blanks: list[set[int]] = []
        hexes: list[set[int]] = []
        for rule in self.rules:
            values = source[rule.index]
            if rule.light:
                values = list(values)  # each output column its own list (set-aside rows are written into it)
                for t in rule.chain:
                    values = list(map(str.strip if t == "trim" else str.lower, values))
                columns.append(values)
                blanks.append(set())
                hexes.append(set())
                continue
            blank: set[int] = set()
            if not all(values) or any(map(str.isspace, values)):
                blank = {i for i, v in enumerate(values) if not v or v.isspace()}
            out, odd, hexed = self._heavy(rule, values)
            if out is values:
                out = list(out)  # (an empty chain): never write into the source column
            for i in blank:
                out[i] = ""
            aside |= odd - blank
            columns.append(out)
            blanks.append(blank)
            hexes.append(hexed)
            if rule.is_id:
                all_blank = blank if all_blank is None else all_blank & blank
        if all_blank:
            aside |= all_blank
        hashed = passed = 0
        for rule, blank, hexed in zip(self.rules, blanks, hexes):
            if not rule.is_id:
                continue
            if rule.hashes_per_value:
                hashable = n - len(blank | hexed) - sum(1 for i in aside if i not in blank and i not in hexed)
                hashed += rule.hashes_per_value * hashable
            if rule.hashing and hexed:
                passed += len(hexed - blank - aside)
        return MappedColumns(columns, sorted(aside), hashed, passed)

    def _heavy(self, rule: _Rule, values: list[str]) -> tuple[list[str], set[int], set[int]]:
        """(output values, rows to set aside, rows kept as existing hashes) for one column."""
        odd: set[int] = set()
        hexed: set[int] = set()
        if rule.hashing:
            trimmed = list(map(str.strip, values))
            lengths = set(map(len, trimmed))
            if 64 in lengths:
                hexed = {i for i, t in enumerate(trimmed) if len(t) == 64 and _HEX64(t)}
            if rule.check_broken and max(lengths, default=0) >= 32:  # looks_like_broken_hash needs 32+
                odd |= {i for i, t in enumerate(trimmed) if i not in hexed and looks_like_broken_hash(t)}
            if len(hexed) == len(values):
                return list(map(str.lower, trimmed)), odd, hexed
            out, failed = self._steps(rule, values, trimmed)
            if out is values:
                out = list(out)  # (no steps): the existing hashes are written below, not into the source
            odd |= failed - hexed
            for i in hexed:
                out[i] = trimmed[i].lower()
        else:
            out, odd = self._steps(rule, values)
        if rule.final is not None:
            out, failing = rule.final(out)
            odd.update(i for i in failing if i not in hexed)
        return out, odd, hexed

    @staticmethod
    def _steps(rule: _Rule, values: list[str], trimmed: list[str] | None = None) -> tuple[list[str], set[int]]:
        odd: set[int] = set()
        for k, t in enumerate(rule.chain):
            if k == 0 and trimmed is not None and t in ("trim", "normalize_email"):
                values = trimmed  # the same strip, already done (normalize_email then lowercases)
            if t == "trim":
                values = values if values is trimmed else list(map(str.strip, values))
            elif t == "lowercase":
                values = list(map(str.lower, values))
            elif t == "normalize_email":
                values = list(map(str.lower, values if values is trimmed else map(str.strip, values)))
                odd.update(_not_emails(values))
            elif t == "normalize_phone":
                values, failed = _phones(values, rule.default_country)
                odd |= failed
            elif t == "sha256":
                values = _sha256_hex(values)
        return values, odd


def _sha256_hex(values: list[str]) -> list[str]:
    """Lowercase hex SHA-256 of each value's UTF-8 bytes: the binary digests, hex-encoded in one call
    and cut into 64-character strings (``hexdigest()`` per value costs twice as much)."""
    text = b"".join(map(_DIGEST, map(_sha256_small, map(str.encode, values)))).hex()
    return [text[i:i + 64] for i in range(0, len(text), 64)]


def _not_emails(values: list[str]) -> list[int]:
    """Indices of the values ``_EMAIL_OK`` refuses (``[^\\s@]+@[^\\s@]+``), found without running the
    expression per value: exactly one ``@``, not first or last, and no whitespace (``\\s`` is
    exactly ``str.isspace``). The values hold no comma (a plain block's)."""
    joined = ",".join(values)
    if joined.count(",") != len(values) - 1:
        return [i for i, v in enumerate(values) if not _EMAIL_OK(v)]
    ats = list(map(str.count, values, repeat("@")))
    bad = [] if ats.count(1) == len(ats) else [i for i, a in enumerate(ats) if a != 1]
    if joined.startswith("@") or joined.endswith("@") or ",@" in joined or "@," in joined:
        bad += [i for i, v in enumerate(values) if v[:1] == "@" or v[-1:] == "@"]
    if any(c in joined for c in _ASCII_SPACES) if joined.isascii() else _SPACE(joined):
        bad += [i for i, v in enumerate(values) if _SPACE(v)]
    return bad


def _phones(values: list[str], country: str | None) -> tuple[list[str], set[int]]:
    out: list[str] = []
    failed: set[int] = set()
    for i, v in enumerate(values):
        try:
            out.append(normalize_phone(v, country))
        except RowRejected:
            out.append(v)
            failed.add(i)
    return out, failed
