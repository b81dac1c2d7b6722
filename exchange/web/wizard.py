"""The share wizard's logic, apart from Flask: suggested mappings, form → share body, schedule previews.

:func:`suggest_mapping` pre-fills the mapping by matching source column names to what the
destination accepts (``email`` → ``email_sha256`` with ``[normalize_email, sha256]`` when the
destination only takes hashes). :func:`schedule_from_form` turns the "when" section (now, later at a
local time in a time zone, every N units, cron + time zone, on new data) into a schedule object.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werkzeug.datastructures import MultiDict

from ..shares import schedules
from ..transfer.mapping import IDENTIFIER_TYPES
from .forms import Errors, words

TRANSFORM_HELP = {
    "trim": "remove surrounding spaces",
    "lowercase": "lower-case the value",
    "normalize_email": "trim and lower-case an email address",
    "normalize_phone": "rewrite a phone number as E.164 (+33612345678)",
    "sha256": "hash with SHA-256 (values that already are hashes are kept)",
}
# source column name → (identifier it is, transforms to send it raw, hashed target, transforms to hash it)
_IDENTITY = {
    "email": ("email", ["normalize_email"], "email_sha256", ["normalize_email", "sha256"]),
    "phone_e164": ("phone_e164", ["normalize_phone"], "phone_sha256", ["normalize_phone", "sha256"]),
    "phone": ("phone_e164", ["normalize_phone"], "phone_sha256", ["normalize_phone", "sha256"]),
}
INTERVAL_UNITS = {"minutes": "PT{}M", "hours": "PT{}H", "days": "P{}D", "weeks": "P{}W"}


def suggest_mapping(columns: list[str], identifiers: list[str], attributes: list[str] | None) -> list[dict]:
    """One row per source column: ``{source, target, transform}``; target ``""`` means not sent.

    ``attributes`` None means the destination takes any attribute (partner adapters).
    """
    rows: list[dict] = []
    used: set[str] = set()

    def add(source: str, target: str, transform: list[str]) -> None:
        if target and target in used:
            target, transform = "", []
        used.add(target)
        rows.append({"source": source, "target": target, "transform": transform})

    for column in columns:
        if column in _IDENTITY:
            plain, plain_chain, hashed, hash_chain = _IDENTITY[column]
            if plain in identifiers:
                add(column, plain, plain_chain)
            elif hashed in identifiers:
                add(column, hashed, hash_chain)
            else:
                add(column, "", [])
        elif column in identifiers:
            add(column, column, [])
        elif column in IDENTIFIER_TYPES:
            add(column, "", [])  # an identifier the destination does not take
        elif attributes is None or column in attributes:
            add(column, column, [])
        else:
            add(column, "", [])
    return rows


def mapping_from_form(form: MultiDict) -> tuple[list[dict], list[int]]:
    """Rules from rows ``mapping-<i>-source/target/transform``, and the row each rule came from.

    Rows without a target are not sent.
    """
    out, origin = [], []
    i = 0
    while f"mapping-{i}-source" in form:
        target = form.get(f"mapping-{i}-target", "").strip()
        if target:
            out.append({"source": form.get(f"mapping-{i}-source", ""), "target": target,
                        "transform": words(form.get(f"mapping-{i}-transform"))})
            origin.append(i)
        i += 1
    return out, origin


def schedule_from_form(form: MultiDict) -> tuple[dict, Errors]:
    """The schedule object of the "when" section, or field errors it can tell without the service."""
    when = form.get("when", "now")
    zone = form.get("timezone", "UTC").strip() or "UTC"
    if when == "now":
        return {"type": "now"}, {}
    if when == "on_new_data":
        return {"type": "on_new_data"}, {}
    if when == "at":
        local = form.get("at", "").strip()
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return {"type": "at"}, {"schedule.timezone": [f"unknown IANA time zone {zone!r}"]}
        try:
            moment = datetime.fromisoformat(local)
        except ValueError:
            return {"type": "at"}, {"schedule.at": ["Choose a date and time."]}
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return {"type": "at", "at": moment.isoformat()}, {}
    if when == "interval":
        count, unit = form.get("every_count", "").strip(), form.get("every_unit", "hours")
        if not count.isdigit() or int(count) < 1 or unit not in INTERVAL_UNITS:
            return {"type": "interval"}, {"schedule.every": ["Enter a whole number of minutes, hours or days."]}
        return {"type": "interval", "every": INTERVAL_UNITS[unit].format(int(count))}, {}
    if when == "cron":
        return {"type": "cron", "cron": form.get("cron", "").strip(), "timezone": zone}, {}
    return {"type": when}, {"schedule.type": ["Choose when to share."]}


def preview(schedule: dict, now: datetime, n: int = 5) -> dict[str, Any]:
    """``{description, runs, zone}`` for a valid schedule, or ``{errors}`` naming the bad fields."""
    from ..errors import ValidationFailed

    try:
        valid = schedules.validate_schedule(schedule, now=now)
    except ValidationFailed as err:
        return {"errors": err.errors or {"schedule": [err.detail]}}
    zone = ZoneInfo(valid.get("timezone") or "UTC")
    if valid["type"] == "at":
        zone = datetime.fromisoformat(valid["at"]).tzinfo or zone
    runs = schedules.preview(valid, now, n)
    return {"description": schedules.describe(valid), "schedule": valid,
            "runs": [{"iso": r.isoformat(), "local": r.astimezone(zone).strftime("%a %d %b %Y, %H:%M %Z"),
                      "utc": r.strftime("%Y-%m-%d %H:%M UTC")} for r in runs]}


def describe_destination(caps: dict, adapter: dict | None) -> dict:
    """What the wizard shows about a destination: identifiers, attributes and modes it takes."""
    return {"identifiers": caps["identifiers"], "attributes": caps["attributes"],
            "modes": sorted(caps["native_modes"]),
            "can_remove": "remove" in caps["native_modes"],
            "adapter": adapter["title"] if adapter else None,
            "note": (adapter or {}).get("description", "")}
