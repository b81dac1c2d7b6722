"""Normalization and hashing of identifier values (SPEC §6, vectors in ``shared/testdata``).

Every function takes one raw value and returns its normalized form or raises :class:`RowRejected`
with a short reason. Reasons never contain the value itself: the rejects file already carries the
row, and job events and logs must not leak personal data.

- ``normalize_email``: trim (all whitespace, tabs and newlines included), lowercase, exactly one
  ``@`` with a non-empty local part and domain, no inner whitespace. No provider-specific rewriting
  (dots and ``+tags`` are kept) and non-ASCII characters are kept; they are hashed as UTF-8.
- ``normalize_phone``: E.164 with a leading ``+``. Spaces, dots, dashes, slashes and parentheses
  are dropped, ``00`` becomes ``+``; letters are refused. A number without a country code needs
  ``default_country`` (ISO 3166 alpha-2), whose trunk prefix is dropped (FR ``06…`` → ``+336…``;
  Italy keeps its leading 0 as E.164 requires). 8 to 15 digits in total.
- ``sha256_hex``: lowercase hex SHA-256 of the UTF-8 bytes, except that a value which already is a
  64-hex hash (after trimming, any case) is returned lowercased instead of hashed a second time.
"""
from __future__ import annotations

import re
from hashlib import sha256 as _sha256

__all__ = [
    "COUNTRY_CALLING_CODES",
    "RowRejected",
    "is_sha256",
    "looks_like_broken_hash",
    "normalize_email",
    "normalize_phone",
    "sha256_hex",
]


class RowRejected(ValueError):
    """One row cannot be used; ``reason`` is a short message without the offending value."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# alpha-2 -> (calling code, national trunk prefix dropped before prefixing the code).
COUNTRY_CALLING_CODES: dict[str, tuple[str, str]] = {
    "US": ("1", "1"), "CA": ("1", "1"), "PR": ("1", "1"), "MX": ("52", "01"), "BR": ("55", "0"),
    "AR": ("54", "0"), "CL": ("56", ""), "CO": ("57", ""), "PE": ("51", "0"),
    "FR": ("33", "0"), "GB": ("44", "0"), "IE": ("353", "0"), "DE": ("49", "0"),
    "AT": ("43", "0"), "CH": ("41", "0"), "BE": ("32", "0"), "NL": ("31", "0"),
    "LU": ("352", ""), "ES": ("34", ""), "PT": ("351", ""), "IT": ("39", ""),
    "DK": ("45", ""), "NO": ("47", ""), "SE": ("46", "0"), "FI": ("358", "0"),
    "IS": ("354", ""), "PL": ("48", ""), "CZ": ("420", ""), "SK": ("421", "0"),
    "HU": ("36", "06"), "RO": ("40", "0"), "BG": ("359", "0"), "GR": ("30", ""),
    "HR": ("385", "0"), "SI": ("386", "0"), "RS": ("381", "0"), "UA": ("380", "0"),
    "RU": ("7", "8"), "KZ": ("7", "8"), "TR": ("90", "0"), "IL": ("972", "0"),
    "AE": ("971", "0"), "SA": ("966", "0"), "EG": ("20", "0"), "MA": ("212", "0"),
    "TN": ("216", ""), "DZ": ("213", "0"), "NG": ("234", "0"), "KE": ("254", "0"),
    "ZA": ("27", "0"), "IN": ("91", "0"), "PK": ("92", "0"), "BD": ("880", "0"),
    "CN": ("86", "0"), "HK": ("852", ""), "TW": ("886", "0"), "JP": ("81", "0"),
    "KR": ("82", "0"), "SG": ("65", ""), "MY": ("60", "0"), "TH": ("66", "0"),
    "VN": ("84", "0"), "PH": ("63", "0"), "ID": ("62", "0"), "AU": ("61", "0"),
    "NZ": ("64", "0"),
}

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_LONG_HEX = re.compile(r"[0-9a-fA-F]{32,}")
_PHONE_DROP = str.maketrans("", "", " .-()/\t\u00a0")


def is_sha256(value: str) -> bool:
    """True when ``value`` (already trimmed) is 64 hex characters, in any case."""
    return len(value) == 64 and _HEX64.fullmatch(value) is not None


def looks_like_broken_hash(value: str) -> bool:
    """A value that was meant to be a hash but is not one: a run of 32+ hex digits of the wrong
    length, or 64 characters that are almost all hex. Hashing it would give a useless identifier."""
    if _LONG_HEX.fullmatch(value):
        return len(value) != 64
    if len(value) == 64 and "@" not in value:
        return sum(c in "0123456789abcdefABCDEF" for c in value) >= 60
    return False


def sha256_hex(value: str) -> str:
    """SHA-256 of the UTF-8 bytes, lowercase hex; an existing 64-hex hash is kept (lowercased)."""
    trimmed = value.strip()
    if is_sha256(trimmed):
        return trimmed.lower()
    return _sha256(value.encode("utf-8")).hexdigest()


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if not email:
        raise RowRejected("empty email")
    ats = email.count("@")
    if ats == 0:
        raise RowRejected("no @ in email")
    if ats > 1:
        raise RowRejected("more than one @ in email")
    local, _, domain = email.partition("@")
    if not local:
        raise RowRejected("empty local part in email")
    if not domain:
        raise RowRejected("empty domain in email")
    if len(email.split()) != 1:
        raise RowRejected("whitespace inside email")
    return email


def normalize_phone(value: str, default_country: str | None = None) -> str:
    phone = value.strip().translate(_PHONE_DROP)
    if not phone:
        raise RowRejected("empty phone number")
    international = phone.startswith(("+", "00"))
    if international:
        digits = phone[1:] if phone.startswith("+") else phone[2:]
        _check_digits(digits)
        if digits.startswith("0"):
            raise RowRejected("phone country code cannot start with 0")
    else:
        _check_digits(phone)
        if default_country is None:
            raise RowRejected("phone number has no country code and no default country is set")
        code, trunk = country_calling_code(default_country)
        national = phone[len(trunk):] if trunk and phone.startswith(trunk) else phone
        digits = code + national
    if len(digits) < 8:
        raise RowRejected("phone number too short (E.164 needs 8 to 15 digits)")
    if len(digits) > 15:
        raise RowRejected("phone number too long (E.164 allows at most 15 digits)")
    return "+" + digits


def country_calling_code(country: str) -> tuple[str, str]:
    """(calling code, trunk prefix) for an ISO 3166 alpha-2 code; KeyError when unknown."""
    try:
        return COUNTRY_CALLING_CODES[country.upper()]
    except KeyError:
        raise KeyError(f"unknown country code {country!r}") from None


def _check_digits(digits: str) -> None:
    if digits.isdecimal() and digits.isascii():
        return
    if not digits:
        raise RowRejected("phone number has no digits")
    if any(c.isalpha() for c in digits):
        raise RowRejected("letters in phone number")
    raise RowRejected("invalid character in phone number")
