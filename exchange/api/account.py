"""The caller's account: export everything the exchange holds about it, or erase it."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from ..auth.account import erase_account, export_account
from ..errors import ValidationFailed
from ..models import Account
from ..schemas.common import StrictSchema
from .context import control_plane, db, runtime

blp = Blueprint("account", __name__, url_prefix="/v1/account", description="Account export and erasure")


class AccountExportSchema(StrictSchema):
    account = fields.Dict()
    users = fields.List(fields.Dict())
    api_keys = fields.List(fields.Dict())
    endpoints = fields.List(fields.Dict())
    audiences = fields.List(fields.Dict())
    shares = fields.List(fields.Dict())
    jobs = fields.List(fields.Dict())
    deliveries = fields.List(fields.Dict())
    audit = fields.List(fields.Dict())
    applications = fields.List(fields.Dict(), metadata={"description": "Endpoint applications the account provides."})


class EraseSchema(StrictSchema):
    confirm = fields.String(required=True, metadata={"description": "The account's name, to confirm."})


class EraseResultSchema(StrictSchema):
    endpoints = fields.Integer()
    shares = fields.Integer()
    jobs = fields.Integer()
    blobs = fields.Integer()


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@blp.route("/export")
class AccountExport(MethodView):
    @blp.response(200, AccountExportSchema)
    def get(self):
        """Everything the exchange holds about the account (no secrets), as JSON."""
        return _jsonable(export_account(db(), control_plane().account_id))


@blp.route("/erase")
class AccountErase(MethodView):
    @blp.arguments(EraseSchema)
    @blp.response(200, EraseResultSchema)
    def post(self, data):
        """Erase the account: every endpoint, audience file, share, job, key and user. Irreversible."""
        account_id = control_plane().account_id
        account = db().get(Account, account_id)
        if data["confirm"] != account.name:
            raise ValidationFailed("Confirmation does not match.",
                                   errors={"confirm": ["Type the account's name to confirm the erasure."]})
        db().close()
        return erase_account(runtime(), account_id)
