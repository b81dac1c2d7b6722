"""Mapping rules: validation at share creation and a compiled row mapper for the transform stage.

A rule ``{source, target, transform}`` reads one source column, applies the transforms in order
(``none``, ``trim``, ``lowercase``, ``normalize_email``, ``normalize_phone``, ``sha256``) and writes
the target column. The target's type decides the final validation (:data:`IDENTIFIER_TYPES`;
custom identifiers a destination declares are only required to be non-empty).

Row semantics of :func:`compile_mapping`:

- A blank identifier value (empty or whitespace) becomes ``""`` and is allowed as long as another
  identifier of the row is usable; a row without any usable identifier is rejected with
  ``"no usable identifier"``.
- A non-blank identifier value that fails its transforms or its target's validation rejects that
  row (never the batch) with ``"<source column>: <reason>"``.
- For targets that are hashes (``email_sha256``, ``phone_sha256``) and for any chain containing
  ``sha256``, a value that already is a 64-hex hash is kept, lowercased, instead of being
  normalized and hashed again; a near-hash (wrong length, stray non-hex character) on a hash target
  is rejected rather than hashed into an identifier that can never match.
- Attributes pass through; their transforms apply, a blank value stays as it is for trim/lowercase
  chains and becomes ``""`` for normalize/hash chains, whose failures reject the row like an
  identifier's.
- ``RowMapper.hashed`` / ``passed_through`` count identifier values hashed from raw values versus
  kept as existing hashes, over the rows the mapper accepted (SPEC §15.5).

The mapper is generated Python source (one straight-line function per mapping) because a call per
transform per value would cost more than the hashing itself at a million rows a second.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256 as _sha256

from exchange import identifiers
from exchange.errors import ValidationFailed
from exchange.transfer.normalize import (
    COUNTRY_CALLING_CODES,
    RowRejected,
    looks_like_broken_hash,
    normalize_email,
    normalize_phone,
)

__all__ = [
    "HASH_TARGETS",
    "IDENTIFIER_TYPES",
    "TRANSFORMS",
    "MappingRule",
    "RowMapper",
    "RowRejected",
    "compile_mapping",
    "validate_mapping",
]

IDENTIFIER_TYPES = identifiers.IDENTIFIER_TYPES  # defined once, in exchange/identifiers.py
TRANSFORMS = ("none", "trim", "lowercase", "normalize_email", "normalize_phone", "sha256")
HASH_TARGETS = frozenset({"email_sha256", "phone_sha256"})
_EMAIL_TARGETS = frozenset({"email", "email_sha256"})
_PHONE_TARGETS = frozenset({"phone_e164", "phone_sha256"})
_PLAIN_TARGETS = frozenset({"email", "phone_e164", "maid"})

_HEX64 = re.compile(r"[0-9a-fA-F]{64}").fullmatch
_HEX64_LOWER = re.compile(r"[0-9a-f]{64}").fullmatch
_E164 = re.compile(r"\+[1-9][0-9]{7,14}").fullmatch
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_EMAIL_OK = re.compile(r"[^\s@]+@[^\s@]+").fullmatch
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class MappingRule:
    source: str
    target: str
    transform: tuple[str, ...] = ()

    @classmethod
    def coerce(cls, rule: MappingRule | Mapping) -> MappingRule:
        if isinstance(rule, MappingRule):
            return rule
        transform = rule.get("transform") or ()
        if isinstance(transform, str):
            transform = (transform,)
        return cls(rule["source"], rule["target"], tuple(t for t in transform if t != "none"))


def _rule_errors(rule: object, source_columns: list[str] | None) -> dict[str, list[str]]:
    if not isinstance(rule, Mapping):
        return {"": ["each mapping entry must be an object with source, target and transform"]}
    errors: dict[str, list[str]] = {}
    source, target, transform = rule.get("source"), rule.get("target"), rule.get("transform", [])
    if not isinstance(source, str) or not source.strip():
        errors["source"] = ["source must be a non-empty column name"]
    elif source_columns is not None and source not in source_columns:
        errors["source"] = [f"unknown source column {source!r}; the source has: {', '.join(source_columns)}"]
    if not isinstance(target, str) or not target.strip():
        errors["target"] = ["target must be a non-empty name"]
    if isinstance(transform, str):
        transform = [transform]
    if transform is None:
        transform = []
    if not isinstance(transform, list) or not all(isinstance(t, str) for t in transform):
        errors["transform"] = ["transform must be a list of transform names"]
        return errors
    unknown = [t for t in transform if t not in TRANSFORMS]
    if unknown:
        errors["transform"] = [f"unknown transform {t!r}; use one of: {', '.join(TRANSFORMS)}" for t in unknown]
    elif isinstance(target, str):
        problem = _chain_problem(target, [t for t in transform if t != "none"])
        if problem:
            errors["transform"] = [problem]
    return errors


def _chain_problem(target: str, chain: list[str]) -> str | None:
    """Chains that could never produce a valid value for the target (every row would be rejected)."""
    if "sha256" in chain and any(t.startswith("normalize_") for t in chain[chain.index("sha256"):]):
        return "sha256 must come after the normalize transforms"
    if target in _PLAIN_TARGETS and "sha256" in chain:
        return f"sha256 produces a hash, not a {target} value; map it to a *_sha256 target"
    if target in _EMAIL_TARGETS and "normalize_phone" in chain:
        return f"normalize_phone does not fit the {target} target"
    if target in _PHONE_TARGETS and "normalize_email" in chain:
        return f"normalize_email does not fit the {target} target"
    if target in HASH_TARGETS and any(t.startswith("normalize_") for t in chain) and "sha256" not in chain:
        return f"{target} expects a SHA-256 hash: add the sha256 transform after normalizing"
    return None


def validate_mapping(
    rules: list[dict],
    source_columns: list[str] | None,
    destination_identifiers: list[str],
    destination_attributes: list[str] | None,
) -> dict[str, list[str]]:
    """Field errors (marshmallow style, keyed ``mapping.<i>.<field>`` or ``mapping``); empty if valid."""
    if not isinstance(rules, list) or not rules:
        return {"mapping": ["mapping must be a non-empty list of {source, target, transform} entries"]}
    errors: dict[str, list[str]] = {}
    seen_targets: dict[str, int] = {}
    accepted_identifiers = set(destination_identifiers)
    produced: list[str] = []
    for i, rule in enumerate(rules):
        for field, messages in _rule_errors(rule, source_columns).items():
            errors.setdefault(f"mapping.{i}.{field}" if field else f"mapping.{i}", []).extend(messages)
        target = rule.get("target") if isinstance(rule, Mapping) else None
        if not isinstance(target, str) or not target.strip():
            continue
        if target in seen_targets:
            errors.setdefault(f"mapping.{i}.target", []).append(
                f"target {target!r} is already produced by mapping.{seen_targets[target]}")
            continue
        seen_targets[target] = i
        if target in accepted_identifiers:
            produced.append(target)
        elif target in IDENTIFIER_TYPES:
            errors.setdefault(f"mapping.{i}.target", []).append(
                f"the destination does not accept the identifier {target!r}")
        elif destination_attributes is not None and target not in destination_attributes:
            errors.setdefault(f"mapping.{i}.target", []).append(
                f"{target!r} is neither an identifier nor an attribute the destination accepts")
    if not produced:
        accepted = ", ".join(destination_identifiers) or "(none declared)"
        errors.setdefault("mapping", []).append(
            f"mapping must produce at least one identifier the destination accepts: {accepted}")
    return errors


class RowMapper:
    """Compiled mapping: ``mapper(fields) -> output fields`` or :class:`RowRejected`."""

    def __init__(self, fn: Callable[[list[str]], list[str]], columns: list[str],
                 identifier_positions: tuple[int, ...], counters: list[int], source: str):
        self.fn = fn
        self.columns = columns
        self.identifier_positions = identifier_positions
        self._counters = counters
        self.source = source
        self.map_rows: Callable[..., tuple[int, int, int]] | None = None  # see _loop_source
        if len(identifier_positions) == 1:
            self.key: Callable[[list[str]], str] = operator.itemgetter(identifier_positions[0])
        else:
            getter = operator.itemgetter(*identifier_positions)
            # NUL cannot occur in accepted input, so it separates key parts without ambiguity.
            self.key = lambda out: "\x00".join(getter(out))

    def __call__(self, fields: list[str]) -> list[str]:
        return self.fn(fields)

    @property
    def hashed(self) -> int:
        return self._counters[0]

    @property
    def passed_through(self) -> int:
        return self._counters[1]


def compile_mapping(
    rules: Iterable[MappingRule | Mapping],
    header: list[str],
    *,
    identifier_types: set[str],
    default_country: str | None = None,
) -> RowMapper:
    """Compile rules against a CSV header; ValidationFailed when they cannot apply to it."""
    raw = [r if isinstance(r, Mapping) else {"source": r.source, "target": r.target,
                                             "transform": list(r.transform)} for r in rules]
    errors = validate_mapping(raw, header, sorted(identifier_types), None)
    if default_country is not None and default_country.upper() not in COUNTRY_CALLING_CODES:
        errors["default_country"] = [f"unknown or unsupported country code {default_country!r}"]
    if errors:
        raise ValidationFailed("the mapping does not fit this data", errors=errors)
    parsed = [MappingRule.coerce(r) for r in raw]
    lines = ["def row_mapper(f):", "    n = h = p = 0"]
    for k, rule in enumerate(parsed):
        is_id = rule.target in identifier_types
        lines += _rule_source(k, rule, header.index(rule.source), is_id)
    lines += [
        "    if not n:",
        "        raise RowRejected('no usable identifier')",
        "    if h: _c[0] += h",
        "    if p: _c[1] += p",
        f"    return [{', '.join(f'o{k}' for k in range(len(parsed)))}]",
    ]
    source = "\n".join(lines) + "\n"
    counters = [0, 0]
    namespace = {
        "RowRejected": RowRejected, "_c": counters, "_sha": _sha256, "_email": normalize_email,
        "_phone": normalize_phone, "_dc": default_country, "_hex64": _HEX64,
        "_hexlow": _HEX64_LOWER, "_e164": _E164, "_uuid": _UUID, "_broken": looks_like_broken_hash,
        "_zero": _ZERO_UUID, "_email_ok": _EMAIL_OK,
    }
    positions = tuple(k for k, r in enumerate(parsed) if r.target in identifier_types)
    source += "\n" + "\n".join(_loop_source(parsed, header, identifier_types, positions)) + "\n"
    exec(compile(source, "<mapping>", "exec"), namespace)  # noqa: S102 - source built from a fixed vocabulary
    mapper = RowMapper(namespace["row_mapper"], [r.target for r in parsed], positions, counters, source)
    mapper.map_rows = namespace["map_rows"]
    return mapper


def _loop_source(parsed: list[MappingRule], header: list[str], identifier_types: set[str],
                 positions: tuple[int, ...]) -> list[str]:
    """``map_rows(rows, seen, keys, out, bad, slow) -> (duplicates, hashed, passed_through)``: the
    row mapper's rules inlined in a loop over a batch, with the in-batch dedupe and the output
    formatting, because a function call per row costs as much as a transform. Rows are mapped
    exactly like ``row_mapper`` (same generated rule code); a rejected row becomes ``(index,
    reason)`` in ``bad``; a new key is appended to ``seen`` and ``keys`` and its record to ``out``,
    as a finished line, or as the list of values (its index in ``slow``) when it needs quoting."""
    outs = [f"o{k}" for k in range(len(parsed))]
    key = outs[positions[0]]
    if len(positions) > 1:
        key = "'\\x00'.join((" + ", ".join(outs[k] for k in positions) + ",))"
    special = "'\"' in line or '\\r' in line or line.count('\\n') != 1"
    special += f" or line.count(',') != {len(parsed) - 1}" + (" or line == '\\n'" if len(parsed) == 1 else "")
    lines = ["def map_rows(rows, seen, keys, out, bad, slow):", "    H = P = d = 0", "    for i, f in enumerate(rows):",
             "        n = h = p = 0"]
    for k, rule in enumerate(parsed):
        lines += ["    " + x for x in _rule_source(k, rule, header.index(rule.source), rule.target in identifier_types,
                                                    loop=True)]
    lines += [
        "        if not n:",
        "            bad.append((i, 'no usable identifier'))",
        "            continue",
        "        H += h",
        "        P += p",
        f"        k = {key}",
        "        if k in seen:",
        "            d += 1",
        "            continue",
        "        seen.add(k)",
        "        keys.append(k)",
        "        line = f\"" + ",".join("{" + o + "}" for o in outs) + "\\n\"",
        f"        if {special}:",
        "            slow.append(len(out))",
        f"            out.append([{', '.join(outs)}])",
        "            continue",
        "        out.append(line)",
        "    return d, H, P",
    ]
    return lines


_STEP = {
    "trim": ["v = v.strip()"],
    "lowercase": ["v = v.lower()"],
    # The regex accepts exactly what normalize_email accepts; the call then only explains rejects.
    "normalize_email": ["w = v.strip().lower()", "v = w if _email_ok(w) else _email(v)"],
    "normalize_phone": ["v = _phone(v, _dc)"],
}


def _rule_source(k: int, rule: MappingRule, index: int, is_id: bool, *, loop: bool = False) -> list[str]:
    chain = list(rule.transform)
    heavy = any(t.startswith("normalize_") or t == "sha256" for t in chain)
    if not is_id and not heavy:
        expr = f"f[{index}]" + "".join(".strip()" if t == "trim" else ".lower()" for t in chain)
        return [f"    o{k} = {expr}"]
    prefix = repr(rule.source + ": ")
    hashing = "sha256" in chain or rule.target in HASH_TARGETS
    normalizes = any(t.startswith("normalize_") for t in chain)
    body: list[str] = []
    steps: list[str] = []
    for t in chain:
        if t == "sha256":
            steps += ["v = _sha(v.encode()).hexdigest()"] + (["h += 1"] if is_id else [])
        else:
            steps += _STEP[t]
    if hashing:
        body += ["t = v.strip()", "if len(t) == 64 and _hex64(t):",
                 "    v = t.lower()"] + (["    p += 1"] if is_id else []) + ["else:"]
        if rule.target in HASH_TARGETS and not normalizes:
            body += ["    if _broken(t): raise RowRejected('malformed SHA-256 hash')"]
        body += ["    " + s for s in steps] or ["    pass"]
    else:
        body += steps
    if is_id:
        body += _final_check(rule.target, chain)
    def reject(reason: str) -> list[str]:
        if loop:  # inside map_rows: record the row as rejected and go on with the next one
            return [f"bad.append((i, {reason}))", "continue"]
        return [f"raise RowRejected({reason}) from None"]

    except_lines = ["except RowRejected as e:"]
    if rule.target in HASH_TARGETS and normalizes:
        except_lines += ["    if _broken(t):"]
        except_lines += ["        " + x for x in reject(f"{prefix} + 'malformed SHA-256 hash'")]
    except_lines += ["    " + x for x in reject(f"{prefix} + e.reason")]
    out = [f"    v = f[{index}]", "    if v and not v.isspace():", "        try:"]
    out += ["            " + s for s in body or ["pass"]]
    out += ["        " + s for s in except_lines]
    if is_id:
        out += ["        n += 1"]
    out += ["    else:", "        v = ''", f"    o{k} = v"]
    return out


def _final_check(target: str, chain: list[str]) -> list[str]:
    last = chain[-1] if chain else None
    if target in HASH_TARGETS:
        if last == "sha256":
            return []
        return ["if not _hexlow(v): raise RowRejected('not a SHA-256 hash (64 lowercase hex characters)')"]
    if target == "email":
        if last == "normalize_email":
            return []
        return ["if _email(v) != v: raise RowRejected('email not normalized (add normalize_email)')"]
    if target == "phone_e164":
        if last == "normalize_phone":
            return []
        return ["if not _e164(v): raise RowRejected('not an E.164 phone number (add normalize_phone)')"]
    if target == "maid":
        return ["v = v.strip().lower()",
                "if not _uuid(v): raise RowRejected('not a mobile ad id (IDFA/GAID UUID expected)')",
                "if v == _zero: raise RowRejected('all-zero mobile ad id (tracking limited)')"]
    return []
