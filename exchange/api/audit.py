"""The account's audit log (``GET /v1/audit``) and the hook that records every successful change."""
from __future__ import annotations

import logging

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from ..auth.audit import add_entry, list_entries
from ..auth.keys import Principal
from ..schemas.common import PageArgsSchema, StrictSchema, page_of
from .context import control_plane, db

log = logging.getLogger(__name__)
blp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Audit log of the account")


class AuditEntrySchema(StrictSchema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String(metadata={"description": "user:<id> or key:<prefix>"})
    action = fields.String(metadata={"description": "HTTP method and route, e.g. POST /v1/shares"})
    object_type = fields.String()
    object_id = fields.String(allow_none=True)
    remote_addr = fields.String(allow_none=True)


class AuditQueryArgsSchema(PageArgsSchema):
    since = fields.AwareDateTime(load_default=None)
    actor = fields.String(load_default=None, validate=validate.Length(max=200))
    object_id = fields.String(load_default=None, validate=validate.Length(max=64))


AuditPageSchema = page_of(AuditEntrySchema, "AuditPageSchema")


@blp.route("")
class Audit(MethodView):
    @blp.arguments(AuditQueryArgsSchema, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, args):
        """The account's audit log, newest first."""
        items, total = list_entries(db(), control_plane().account_id, **args)
        return {"items": items, "page": args["page"], "page_size": args["page_size"], "total": total}


def record(principal: Principal, resp: Response) -> None:
    """Record a successful change; never fails the request it describes."""
    if request.endpoint == "account.AccountErase":
        return  # the account and its log are gone
    try:
        object_id = next(iter((request.view_args or {}).values()), None)
        if object_id is None and resp.is_json:
            body = resp.get_json(silent=True)
            object_id = body.get("id") if isinstance(body, dict) else None
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        session = db()
        add_entry(session, account_id=principal.account_id, actor=principal.actor,
                  action=f"{request.method} {rule}", object_type=request.blueprint or "app",
                  object_id=str(object_id) if object_id is not None else None, remote_addr=request.remote_addr)
        session.commit()
    except Exception:  # noqa: BLE001 - auditing must not turn a success into an error
        log.exception("could not write the audit entry")
        db().rollback()
