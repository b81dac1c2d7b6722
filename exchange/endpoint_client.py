"""Calls the endpoint protocol (SPEC §5) on a registered endpoint: metadata, data, pushes.

Every call carries the endpoint's outbound credential, a request id and, on data calls, the job id
and a stable ``Idempotency-Key``; status codes become errors through ``exchange.net``'s one table.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from .errors import PermanentTransferError
from .models import Endpoint
from .net import raise_for_outcome


def _url(ep: Endpoint, path: str) -> str:
    if not ep.contact_url:
        raise PermanentTransferError(f"The endpoint {ep.name!r} has no contact URL.")
    return ep.contact_url.rstrip("/") + path


def headers(token: str | None, *, job_id: str | None = None, idempotency_key: str | None = None) -> dict[str, str]:
    h = {"X-Request-Id": uuid.uuid4().hex, "Accept-Encoding": "gzip"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if job_id:
        h["X-Exchange-Job-Id"] = job_id
    if idempotency_key:
        h["Idempotency-Key"] = idempotency_key
    return h


def _send(session: requests.Session, method: str, url: str, token: Any = None, **kw: Any) -> requests.Response:
    """One call; transport failures and statuses become errors through the one outbound table.

    With an OAuth 2.0 connection (a token that can ``refresh()``), a 401 renews the access token once
    and repeats the call.
    """
    try:
        resp = session.request(method, url, **kw)
        if resp.status_code == 401 and hasattr(token, "refresh") and _replayable(kw.get("data")):
            resp.close()
            token.refresh()
            kw["headers"] = {**kw["headers"], "Authorization": f"Bearer {token}"}
            resp = session.request(method, url, **kw)
    except (requests.RequestException, OSError) as exc:
        raise_for_outcome(exc, credential_setting="credential")
        raise  # unreachable: raise_for_outcome always raises for an exception
    if resp.status_code in (202, 304):
        return resp
    return raise_for_outcome(resp, credential_setting="credential")


def _replayable(body: Any) -> bool:
    return body is None or isinstance(body, (bytes, str))


def list_audiences(session: requests.Session, ep: Endpoint, token: Any) -> list[dict[str, Any]]:
    """``GET {contact_url}/audiences`` → the producer's audience metadata."""
    resp = _send(session, "GET", _url(ep, "/audiences"), token, headers=headers(token))
    try:
        body = resp.json()
    except ValueError:
        raise PermanentTransferError("GET /audiences did not answer JSON.") from None
    items = body.get("audiences") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise PermanentTransferError("GET /audiences must answer {\"audiences\": [...]}.")
    return items


def open_data(session: requests.Session, ep: Endpoint, token: str | None, external_id: str, *,
              job_id: str, if_none_match: str | None = None) -> requests.Response:
    """``GET {contact_url}/audiences/{id}/data`` as a stream; 200, 202 or 304 are returned."""
    h = headers(token, job_id=job_id, idempotency_key=f"{job_id}:fetch")
    if if_none_match:
        h["If-None-Match"] = f'"{if_none_match}"' if not if_none_match.startswith('"') else if_none_match
    return _send(session, "GET", _url(ep, f"/audiences/{quote(external_id, safe='')}/data"), token, headers=h,
                 stream=True)


def push_part(session: requests.Session, ep: Endpoint, token: str | None, audience: str, *, mode: str,
              body: bytes | Iterable[bytes], gzip: bool, job_id: str, idempotency_key: str, part: int,
              parts: int) -> requests.Response:
    """``POST {contact_url}/audiences/{id}/data?mode=…`` with one part of the delivery."""
    h = headers(token, job_id=job_id, idempotency_key=idempotency_key)
    h["Content-Type"] = "text/csv; charset=utf-8"
    h["X-Exchange-Part"] = f"{part}/{parts}"
    if gzip:
        h["Content-Encoding"] = "gzip"
    return _send(session, "POST", _url(ep, f"/audiences/{quote(audience, safe='')}/data"), token,
                 params={"mode": mode}, headers=h, data=body)


@dataclass(frozen=True)
class PartAnswer:
    """What a PUSH consumer said about one part: counts now, or an acknowledgement later (202)."""

    accepted: int
    rejected: int
    pending: bool = False


def part_answer(resp: requests.Response, rows: int) -> PartAnswer:
    """Read a part's answer (SPEC §5.2): ``{"accepted", "rejected"}``; a body without them means all accepted."""
    if resp.status_code == 202:
        return PartAnswer(0, 0, pending=True)
    accepted, rejected = rows, 0
    try:
        answer = resp.json()
        accepted = int(answer.get("accepted", rows))
        rejected = int(answer.get("rejected", 0))
    except (ValueError, AttributeError, TypeError):
        pass
    return PartAnswer(accepted, rejected)
