"""API key schemas: keys are listed by prefix; the token itself appears once, on creation."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from .common import StrictSchema


class ApiKeyCreateSchema(StrictSchema):
    name = fields.String(load_default="", validate=validate.Length(max=200))
    scope = fields.String(load_default="account", validate=validate.OneOf(["account", "endpoint"]))
    endpoint_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))

    @validates_schema
    def _endpoint_needed(self, data, **_):
        if data.get("scope") == "endpoint" and not data.get("endpoint_id"):
            raise ValidationError("Required for endpoint-scope keys.", "endpoint_id")
        if data.get("scope") == "account" and data.get("endpoint_id"):
            raise ValidationError("Only endpoint-scope keys name an endpoint.", "endpoint_id")


class ApiKeySchema(StrictSchema):
    id = fields.String(dump_only=True)
    name = fields.String()
    scope = fields.String()
    endpoint_id = fields.String(allow_none=True)
    prefix = fields.String(metadata={"description": "Visible part of the key; the secret is never shown again."})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(metadata={"description": "The bearer token. Shown once; store it now."})
