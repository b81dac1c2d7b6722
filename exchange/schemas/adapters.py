"""Schemas of the partner smoke check report (``POST /v1/endpoints/{id}/adapter-check``)."""
from __future__ import annotations

from marshmallow import fields

from .common import StrictSchema


class AdapterCheckExchangeSchema(StrictSchema):
    method = fields.String()
    url = fields.String(metadata={"description": "Secrets in the URL (e.g. Batch's API key) are replaced by ***."})
    request_headers = fields.Dict(keys=fields.String(), values=fields.String())
    request_body = fields.String()
    status = fields.Integer()
    response_body = fields.String()
    elapsed_ms = fields.Integer()


class AdapterCheckStepSchema(StrictSchema):
    name = fields.String()
    ok = fields.Boolean()
    detail = fields.String()


class AdapterCheckSchema(StrictSchema):
    adapter = fields.String()
    ok = fields.Boolean()
    steps = fields.List(fields.Nested(AdapterCheckStepSchema))
    exchanges = fields.List(fields.Nested(AdapterCheckExchangeSchema),
                            metadata={"description": "Every request and answer, secrets scrubbed."})
    events = fields.List(fields.String())
