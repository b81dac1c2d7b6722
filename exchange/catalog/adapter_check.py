"""``POST /v1/endpoints/{id}/adapter-check``: the partner smoke check for a registered adapter endpoint.

The same check as ``exchange adapters check`` (exchange/adapters/smoke.py), run with the settings
stored for the endpoint and the deployment's host overrides; the report (steps, every request and
answer) comes back with secrets scrubbed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Conflict
from .endpoints import get_endpoint

if TYPE_CHECKING:
    from ..runtime import Runtime


def adapter_check(rt: Runtime, account_id: str, endpoint_id: str) -> dict:
    from ..adapters.registry import get_adapter
    from ..adapters.smoke import run_check

    with rt.db.session() as s:
        ep = get_endpoint(s, account_id, endpoint_id)
        if not ep.adapter_type:
            raise Conflict("This endpoint is not a partner adapter endpoint; use POST …/verify instead.")
        adapter_type = ep.adapter_type
        settings = rt.adapter_settings(ep)
    cls = get_adapter(adapter_type)
    with rt.http() as http:
        report = run_check(cls, settings, session=http, base_url=rt.config.adapter_base_url(adapter_type),
                           site_id=account_id)
    return report.as_dict()
