"""Partner adapters: their settings schemas and capabilities."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from ..schemas.common import StrictSchema
from .context import control_plane

blp = Blueprint("adapters", __name__, url_prefix="/v1/adapters", description="Partner adapters")


class AdapterLimitSchema(StrictSchema):
    name = fields.String()
    value = fields.Float()
    unit = fields.String()
    status = fields.String(metadata={"enum": ["documented", "observed", "assumed"]})
    source = fields.String()


class AdapterSchema(StrictSchema):
    name = fields.String()
    title = fields.String()
    identifiers = fields.List(fields.String())
    native_modes = fields.List(fields.String())
    batch_size = fields.Integer()
    rate_limit = fields.Float()
    requires_snapshot = fields.Boolean()
    concurrency = fields.Integer(metadata={"description": "Requests in flight at once, within rate_limit."})
    limits = fields.List(fields.Nested(AdapterLimitSchema),
                         metadata={"description": "The partner's limits this adapter honours, with their source."})
    hosts = fields.Dict(keys=fields.String(), values=fields.String(),
                        metadata={"description": "Outbound host roles and their default base URLs; override "
                                                 "per endpoint with the 'hosts' setting."})
    settings = fields.Dict(metadata={"description": "JSON Schema of the adapter's settings."})


class AdapterListSchema(StrictSchema):
    items = fields.List(fields.Nested(AdapterSchema))


@blp.route("")
class Adapters(MethodView):
    @blp.response(200, AdapterListSchema)
    def get(self):
        """List partner adapters with their settings schemas and capabilities."""
        from ..adapters.registry import list_adapters

        control_plane()
        return {"items": [{k: v for k, v in a.items() if k in AdapterSchema().fields} for a in list_adapters()]}
