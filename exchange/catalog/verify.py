"""``POST /v1/endpoints/{id}/verify``: call an endpoint once and report what was found."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ExchangeError, InvalidCredentials
from ..models import utcnow
from .endpoints import adapter_settings, credential, get_endpoint

if TYPE_CHECKING:
    from ..runtime import Runtime


def _check(checks: list, name: str, ok: bool, detail: str) -> bool:
    checks.append({"name": name, "ok": ok, "detail": detail})
    return ok


def verify_endpoint(rt: Runtime, account_id: str, endpoint_id: str) -> dict:
    from .. import endpoint_client

    with rt.db.session() as s:
        ep = get_endpoint(s, account_id, endpoint_id)
        token = credential(rt, ep)
        settings = adapter_settings(rt, ep) if ep.adapter_type else None
        s.expunge(ep)
    checks: list[dict] = []
    reachable = False
    if ep.adapter_type:
        from ..adapters.base import SegmentContext
        from ..adapters.registry import get_adapter

        cls = get_adapter(ep.adapter_type)
        try:
            with rt.http() as http:
                adapter = cls(settings, SegmentContext(site_id=str(settings.get("site_id") or account_id),
                                                       segment_id="verify", segment_name="verify", job_id="verify"),
                              http, base_url=rt.config.adapter_base_url(ep.adapter_type))
                adapter.check()
            reachable = _check(checks, "partner credentials", True, f"{cls.title} accepted the credentials.")
        except InvalidCredentials as exc:
            reachable = True
            _check(checks, "partner credentials", False,
                   f"{exc.detail}" + (f" (check the setting '{exc.setting}')" if exc.setting else ""))
        except ExchangeError as exc:
            _check(checks, "partner reachable", False, exc.detail)
    if ep.producer_transport == "pull" and ep.contact_url:
        try:
            with rt.http() as http:
                items = endpoint_client.list_audiences(http, ep, token)
            reachable = True
            bad = [i for i in items if not isinstance(i, dict) or not i.get("id")]
            _check(checks, "GET /audiences", not bad,
                   f"{len(items)} audiences listed" + (f"; {len(bad)} without an id" if bad else ""))
        except InvalidCredentials:
            reachable = True
            _check(checks, "GET /audiences", False, "The endpoint refused the registered credential (401/403).")
        except ExchangeError as exc:
            _check(checks, "GET /audiences", False, exc.detail)
    if ep.consumer_transport == "push" and ep.contact_url and not ep.adapter_type:
        try:
            with rt.http() as http:
                resp = http.get(ep.contact_url.rstrip("/") + "/audiences",
                                headers=endpoint_client.headers(token))
            reachable = True
            ok = resp.status_code not in (401, 403) and resp.status_code < 500
            _check(checks, "consumer reachable", ok, f"answered HTTP {resp.status_code}"
                   + (" (credential refused)" if resp.status_code in (401, 403) else ""))
        except Exception as exc:  # noqa: BLE001 - report, do not raise
            _check(checks, "consumer reachable", False, f"no answer ({type(exc).__name__})")
    if not checks:
        reachable = True
        _check(checks, "registration", True, "PUSH producers and PULL consumers call the exchange; nothing to call.")
    now = utcnow()
    ok = all(c["ok"] for c in checks)
    with rt.db.session() as s:
        live = get_endpoint(s, account_id, endpoint_id)
        if ok:
            live.last_verified_at = now
    return {"ok": ok, "reachable": reachable, "checks": checks, "verified_at": now}
