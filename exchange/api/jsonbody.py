"""Strict reading of JSON request bodies, before any schema sees them.

Python's ``json`` module accepts things a public API should not, and some of them crash far from
the parser: nesting deep enough to raise ``RecursionError``, integers of thousands of digits
(``ValueError`` past ``sys.int_info.str_digits_check_threshold``, or overflow in the database),
``NaN``/``Infinity``, lone UTF-16 surrogates (``"\\ud800"`` decodes to a ``str`` no encoder accepts),
NUL characters (PostgreSQL refuses them in text) and duplicate object keys (two parsers may disagree
on which value wins). :func:`check_json_body` refuses all of these with a 400 problem naming the
cause, so every malformed body is a client error and never reaches the view. The body is then parsed
again by webargs as usual; a body that passed here parses to the same value there.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata

from ..errors import BadRequest, ValidationFailed

MAX_DEPTH = 32  # the deepest legitimate body (a share with a schedule and mapping) is 4 levels
MAX_NUMBER_CHARS = 40  # 64-bit integers have 20 digits; nothing in the API needs more
_SURROGATE = re.compile("[\ud800-\udfff]")
# keys whose string values are names shown to people: no control characters at all
NAME_KEYS = frozenset({"name"})


class _Refused(ValueError):
    """Raised from parse hooks; carries a message for the client."""


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the object has the key {key[:50]!r} twice")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number has {len(text)} digits; at most {MAX_NUMBER_CHARS} are accepted")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number has {len(text)} characters; at most {MAX_NUMBER_CHARS} are accepted")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number is too large to represent")
    return value


def _constant(text: str) -> float:
    raise _Refused(f"{text} is not valid JSON")


def has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def _check_value(value: object) -> None:
    """Walk the parsed value without recursion: depth, surrogates, NULs, control characters in names."""
    stack: list[tuple[object, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise BadRequest(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    _check_string(key, where, is_key=True)
                    if key in NAME_KEYS and isinstance(child, str) and has_control_chars(child):
                        raise ValidationFailed("Names may not contain control characters.",
                                               errors={where: ["Control characters (such as NUL, tab or "
                                                               "newline) are not allowed in names."]})
                stack.append((child, depth + 1, where))
        elif isinstance(item, str):
            _check_string(item, path, is_key=False)


def _check_string(text: str, where: str, *, is_key: bool) -> None:
    what = "a key" if is_key else "a string"
    if _SURROGATE.search(text):
        raise BadRequest(f"The JSON body holds {what} with a lone UTF-16 surrogate (at {where or 'the top'}); "
                         "send valid Unicode.")
    if "\x00" in text:
        raise ValidationFailed("Strings may not contain NUL characters.",
                               errors={where or "_schema": ["NUL characters are not allowed."]})


def check_json_body(data: bytes) -> object:
    """Parse ``data`` strictly and return the value, or raise a 400/422 ExchangeError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The body is not valid UTF-8 (byte {exc.start}); JSON must be UTF-8 (RFC 8259 §8.1).") \
            from None
    text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float,
                           parse_constant=_constant)
    except _Refused as exc:
        raise BadRequest(f"The JSON body was refused: {exc}.") from None
    except RecursionError:
        raise BadRequest(f"The JSON body is nested more than {MAX_DEPTH} levels deep.") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") \
            from None
    except ValueError as exc:  # anything else the decoder refuses
        raise BadRequest(f"The body is not valid JSON ({str(exc)[:100]}).") from None
    _check_value(value)
    return value
