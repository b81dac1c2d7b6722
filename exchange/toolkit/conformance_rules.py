"""The rules' building blocks for ``exchange-toolkit conformance``: results, CSV checks, test members.

Shared by the checker (:mod:`.conformance`) and its producer and consumer rules
(:mod:`.conformance_producer`, :mod:`.conformance_consumer`), which import only from here.
"""
from __future__ import annotations

import csv
import gzip as gzip_mod
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import requests

from exchange.net.outcomes import parse_retry_after

if TYPE_CHECKING:
    from exchange.toolkit.conformance import Checker

ROLES = ("producer", "consumer")
USER_AGENT = "exchange-toolkit-conformance/1"
#: Answers the exchange treats as permanent failures (SPEC §5): 4xx except 408/409/423/429.
RETRIED_4XX = {408, 409, 423, 429}
MAX_SAMPLE_BYTES = 8 * 1024 * 1024  # the CSV checks read at most this much of an audience


@dataclass(frozen=True)
class Result:
    rule: str
    status: str  # pass | fail | warn | skip
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():<5} {self.rule:<34} {self.detail}"


def _ok(rule: str, detail: str) -> Result:
    return Result(rule, "pass", detail)


def _fail(rule: str, detail: str) -> Result:
    return Result(rule, "fail", detail)


def _warn(rule: str, detail: str) -> Result:
    return Result(rule, "warn", detail)


def _skip(rule: str, detail: str) -> Result:
    return Result(rule, "skip", detail)


def _is_permanent(status: int) -> bool:
    return 400 <= status < 500 and status not in RETRIED_4XX


def _peer_detail(resp: requests.Response) -> str:
    if "json" not in resp.headers.get("Content-Type", ""):
        return ""
    try:
        body = resp.json()
    except ValueError:
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return f" ({str(detail)[:120]})" if detail else ""


def read_sample(resp: requests.Response, limit: int = MAX_SAMPLE_BYTES) -> tuple[bytes, bool]:
    """Up to ``limit`` raw (still encoded) bytes of a streamed body; True when it was complete."""
    buf = bytearray()
    for chunk in resp.raw.stream(64 * 1024, decode_content=False):
        buf += chunk
        if len(buf) > limit:
            resp.close()
            return bytes(buf[:limit]), False
    return bytes(buf), True


def decode_body(raw: bytes, content_encoding: str, complete: bool) -> tuple[bytes | None, str]:
    """The identity bytes of a body; (None, why) when they cannot be recovered."""
    enc = content_encoding.strip().lower()
    if enc in ("gzip", "x-gzip"):
        try:
            d = gzip_mod.GzipFile(fileobj=io.BytesIO(raw))
            return d.read() if complete else d.read1(len(raw) * 20), ""
        except (OSError, EOFError) as exc:
            if not complete:
                return None, ""
            return None, f"Content-Encoding: gzip but the body is not valid gzip ({exc})"
    if enc not in ("", "identity"):
        return None, f"unsupported Content-Encoding {enc!r}"
    if raw[:2] == b"\x1f\x8b":
        return None, "the body is gzip-compressed but Content-Encoding: gzip is missing"
    return raw, ""


def check_csv(data: bytes, complete: bool, identifiers: list[str] | None) -> tuple[str, str, int]:
    """(status, detail, rows): ``fail`` for what makes the exchange fail the whole job (binary data, no
    or bad header, no identifier column), ``warn`` when some rows would be rejected one by one
    (wrong field count, invalid UTF-8 in a row), ``pass`` otherwise; as the exchange's reader decides."""
    if not complete:  # cut at the last full line
        data = data[: data.rfind(b"\n") + 1]
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        return "fail", f"not CSV: NUL byte on line {line} (binary data?)", 0
    head, _, rest = data.partition(b"\n")
    try:
        header = next(csv.reader([head.decode("utf-8-sig").rstrip("\r")]), [])
    except UnicodeDecodeError:
        return "fail", "the header row is not valid UTF-8: is this CSV?", 0
    except csv.Error as exc:
        return "fail", f"the header row is not valid CSV: {exc}", 0
    names = [h.strip() for h in header]
    if not any(names):
        return "fail", "no header row naming the columns", 0
    if len(set(names)) != len(names) or not all(names):
        return "fail", f"empty or repeated column names in the header {names}", 0
    missing = [i for i in identifiers or [] if i not in names]
    if missing:
        return "fail", f"the header {names} lacks the listed identifier(s) {missing}", 0
    text = rest.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = ragged = 0
    first_bad = ""
    try:
        for row in reader:
            if not row:
                continue
            rows += 1
            if len(row) != len(names) or any("\ufffd" in f for f in row):
                ragged += 1
                first_bad = first_bad or f"line {reader.line_num + 1}"
    except csv.Error as exc:
        return "warn", f"malformed quoting at line {reader.line_num + 1} ({exc}): rows from there are rejected", rows
    detail = f"{rows} rows{'' if complete else ' (first 8 MiB)'}, columns {', '.join(names)}"
    if ragged:
        return "warn", f"{detail}; {ragged} malformed row(s) the exchange will reject (first at {first_bad})", rows
    return "pass", detail, rows


def member_rows(identifier: str, n: int, salt: str) -> list[str]:
    """``n`` synthetic identifier values of the right shape (hashes are valid 64-hex)."""
    values = []
    for i in range(n):
        raw = f"conformance-{salt}-{i}@example.invalid"
        if identifier.endswith("sha256"):
            values.append(hashlib.sha256(raw.encode()).hexdigest())
        elif identifier.startswith("phone"):
            values.append(f"+3361{int(hashlib.sha256(raw.encode()).hexdigest(), 16) % 10**7:07d}")
        else:
            values.append(raw)
    return values


def csv_body(identifier: str, values: list[str]) -> bytes:
    return (identifier + "\n" + "".join(v + "\n" for v in values)).encode()


def results_json(results: list[Result]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)


def wait_ready(checker: Checker, path: str, headers: dict) -> tuple[requests.Response, list[Result]]:
    """GET ``path``; while it answers 202, wait ``Retry-After`` (bounded by ``checker.wait``)."""
    notes: list[Result] = []
    deadline = time.monotonic() + checker.wait
    while True:
        resp = checker.call("GET", path, headers=headers, stream=True)
        if resp.status_code != 202:
            return resp, notes
        retry = parse_retry_after(resp.headers.get("Retry-After"))
        resp.close()
        if retry is None:
            notes.append(_fail("producer.data.retry-after", "202 without a valid Retry-After header: the "
                                                            "exchange cannot tell when to ask again"))
            retry = 5.0
        elif not notes:
            notes.append(_ok("producer.data.retry-after", f"202 with Retry-After: {retry:g}s"))
        if time.monotonic() + retry > deadline:
            return resp, notes
        time.sleep(retry)
