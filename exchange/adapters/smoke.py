"""The live smoke check of a partner adapter (``exchange adapters check``, ``POST …/adapter-check``).

Run with the user's own credentials against the partner (or a sandbox, a proxy, a fake: every host
is overridable). Steps, stopping at the first failure:

1. **settings** — validated as on registration (bad settings name the setting);
2. **credentials** — the adapter's harmless authenticated call (``check``);
3. **add** — a clearly named test audience ("Audience Exchange smoke test", segment id
   ``exchange-smoke-test``; re-runs reuse it) is created if missing and one obviously fake member
   (the adapter's ``sample_row``) is added, through the real delivery driver;
4. **remove** — the same member is removed;
5. **read back** — what the partner reports now (Batch: ``nb_ids``/``indexing_state``; partners
   without a read route say so).

Every HTTP request and answer is recorded and returned with secrets scrubbed: setting values
flagged secret, secrets learnt on the way (an OAuth access token), credential headers and
credential-looking JSON or form fields. Nothing here imports Flask.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests

from exchange.adapters.base import Adapter, SegmentContext
from exchange.adapters.driver import deliver
from exchange.errors import ExchangeError, InvalidCredentials, ValidationFailed

SMOKE_AUDIENCE = "Audience Exchange smoke test"
SMOKE_SEGMENT_ID = "exchange-smoke-test"
BODY_LIMIT = 2000
_CREDENTIAL_HEADERS = {"authorization", "x-authorization", "x-api-key", "cookie", "set-cookie"}
_CREDENTIAL_KEYS = re.compile(r"(secret|token|password|api_?key|authorization)", re.I)
_NOT_SECRET = {"indexing_token", "syncId", "token_type"}


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int
    response_body: str
    elapsed_ms: int


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    adapter: str
    ok: bool = False
    steps: list[Step] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        """The report as text for a terminal: every request and answer, then the verdict per step."""
        lines = []
        for number, ex in enumerate(self.exchanges, 1):
            lines.append(f"[{number}] → {ex.method} {ex.url}")
            lines.extend(f"      {name}: {value}" for name, value in ex.request_headers.items())
            if ex.request_body:
                lines.append(f"      {ex.request_body}")
            lines.append(f"    ← HTTP {ex.status} ({ex.elapsed_ms} ms)")
            if ex.response_body:
                lines.append(f"      {ex.response_body}")
        lines.extend(f"event: {event}" for event in self.events)
        lines.extend(f"{'PASS' if s.ok else 'FAIL'} {s.name}: {s.detail}" for s in self.steps)
        lines.append(f"{self.adapter}: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def run_check(
    cls: type[Adapter],
    settings: dict,
    *,
    session: requests.Session,
    base_url: str | dict | None = None,
    site_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SmokeReport:
    """Run the smoke check of ``cls`` with ``settings``; never raises for partner or settings errors."""
    report = SmokeReport(adapter=cls.name)
    recorded: list[requests.Response] = []
    adapter: Adapter | None = None

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        recorded.append(response)

    session.hooks["response"].append(record)
    try:
        try:
            context = SegmentContext(site_id=str((settings or {}).get("site_id") or site_id or "smoke"),
                                     segment_id=SMOKE_SEGMENT_ID, segment_name=SMOKE_AUDIENCE,
                                     job_id=f"smoke-{int(time.time())}")
            hosts = cls.deployment_hosts(base_url, setting="--base-url")
            adapter = cls(settings, context, session, base_url=hosts)
        except ValidationFailed as exc:
            detail = "; ".join(f"{key}: {' '.join(map(str, msgs))}" for key, msgs in (exc.errors or {}).items())
            report.steps.append(Step("settings", False, detail or exc.detail))
            return report
        report.steps.append(Step("settings", True, f"{cls.title} settings are valid"))
        row = adapter.sample_row()
        steps: list[tuple[str, Callable[[], str]]] = [
            ("credentials", lambda: _credentials(adapter, recorded)),
            ("add one test member", lambda: _deliver(adapter, report, sleep, adds=[row])),
            ("remove the test member", lambda: _deliver(adapter, report, sleep, removes=[row])),
            ("read back", lambda: json.dumps(adapter.read_back(), sort_keys=True, default=str)),
        ]
        for name, run in steps:
            try:
                detail = run()
            except InvalidCredentials as exc:
                named = not exc.setting or exc.setting in exc.detail
                report.steps.append(Step(name, False, exc.detail + ("" if named else
                                                                    f" (check the setting '{exc.setting}')")))
                break
            except ExchangeError as exc:
                report.steps.append(Step(name, False, exc.detail))
                break
            report.steps.append(Step(name, True, detail))
        else:
            report.ok = True
        return report
    finally:
        session.hooks["response"].remove(record)
        scrub = adapter.scrub if adapter is not None else (lambda text: text)
        report.exchanges = [_exchange(response, scrub) for response in recorded]
        report.steps = [Step(s.name, s.ok, scrub(s.detail)) for s in report.steps]
        report.events = [scrub(e) for e in report.events]


def _credentials(adapter: Adapter, recorded: list) -> str:
    before = len(recorded)
    adapter.check()
    if len(recorded) == before:
        return f"{adapter.title} has no call that checks credentials without writing data: the next step does"
    return f"{adapter.title} accepted the credentials"


def _deliver(adapter: Adapter, report: SmokeReport, sleep: Callable[[float], None], *, adds=(), removes=()) -> str:
    result = deliver(adapter, adds=adds, removes=removes, on_event=report.events.append, sleep=sleep, max_wait=120)
    if result.rejected:
        raise ExchangeError("; ".join(reason for _, reason in result.rejected))
    done = result.added + result.removed
    return f"{done} member {'added' if adds else 'removed'} in {result.requests} request(s)" + (
        f", {result.retries} retries" if result.retries else "")


def _exchange(response: requests.Response, scrub: Callable[[str], str]) -> Exchange:
    request = response.request
    headers = {name: ("***" if name.lower() in _CREDENTIAL_HEADERS else scrub(value))
               for name, value in request.headers.items()
               if name.lower() not in ("user-agent", "accept-encoding", "accept", "connection", "content-length")}
    body = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else (request.body or "")
    return Exchange(
        method=request.method or "",
        url=scrub(request.url or ""),
        request_headers=headers,
        request_body=_short(scrub(_redact(body, request.headers.get("Content-Type", "")))),
        status=response.status_code,
        response_body=_short(scrub(_redact(response.text, response.headers.get("Content-Type", "")))),
        elapsed_ms=int(response.elapsed.total_seconds() * 1000),
    )


def _redact(text: str, content_type: str) -> str:
    """Credential-looking fields of a JSON or form body replaced by ``***``."""
    if not text:
        return ""
    if "x-www-form-urlencoded" in content_type:
        pairs = [(k, "***" if _CREDENTIAL_KEYS.search(k) else v) for k, v in parse_qsl(text, keep_blank_values=True)]
        return urlencode(pairs, safe="*")
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_redact_json(value), ensure_ascii=False, separators=(",", ":"))


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if _CREDENTIAL_KEYS.search(str(k)) and isinstance(v, str) and k not in _NOT_SECRET
                    else _redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def _short(text: str) -> str:
    return text if len(text) <= BODY_LIMIT else text[: BODY_LIMIT - 1] + "…"
