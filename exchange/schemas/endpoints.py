"""Endpoint registration, update and display schemas (SPEC §4.1)."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from .common import IDENT, NAME, PageArgsSchema, StrictSchema

URL = validate.Length(min=1, max=2048)


class ProducerRoleSchema(StrictSchema):
    transport = fields.String(required=True, validate=validate.OneOf(["pull", "push"]))


class ConsumerRoleSchema(StrictSchema):
    transport = fields.String(required=True, validate=validate.OneOf(["pull", "push"]))
    max_rows_per_request = fields.Integer(load_default=100_000, validate=validate.Range(min=1, max=10_000_000))
    gzip = fields.Boolean(load_default=False)
    replace = fields.Boolean(
        load_default=True, metadata={"description": "Whether the consumer applies mode=replace itself. "
                                     "If false, the exchange sends adds and removes computed from snapshots."})
    ack_timeout_seconds = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=10, max=30 * 86400),
        metadata={"description": "Deadline for a PULL consumer (or a consumer answering 202) to acknowledge."})


class AdapterRefSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.Length(min=1, max=50))
    settings = fields.Dict(keys=fields.String(), load_default=dict)


class EndpointCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    contact_url = fields.String(load_default=None, allow_none=True, validate=URL)
    producer = fields.Nested(ProducerRoleSchema, load_default=None, allow_none=True)
    consumer = fields.Nested(ConsumerRoleSchema, load_default=None, allow_none=True)
    identifiers = fields.List(fields.String(validate=IDENT), load_default=list,
                              validate=validate.Length(max=50))
    attributes = fields.List(fields.String(validate=IDENT), load_default=list,
                             validate=validate.Length(max=500))
    credential = fields.String(load_default=None, allow_none=True, load_only=True,
                               validate=validate.Length(min=1, max=4096),
                               metadata={"description": "Bearer token the exchange sends when calling this "
                                         "endpoint. Write-only."})
    webhook_url = fields.String(load_default=None, allow_none=True, validate=URL)
    adapter = fields.Nested(AdapterRefSchema, load_default=None, allow_none=True)

    @validates_schema
    def _roles(self, data, partial=False, **_):
        if partial:
            return
        check_roles(data)


def check_roles(data: dict) -> None:
    """Cross-field rules of a complete endpoint description."""
    producer, consumer, adapter = data.get("producer"), data.get("consumer"), data.get("adapter")
    if not producer and not consumer and not adapter:
        raise ValidationError("An endpoint needs a producer role, a consumer role or an adapter.", "_schema")
    if adapter:
        if producer:
            raise ValidationError("Partner endpoints are consumers only.", "producer")
        if data.get("contact_url"):
            raise ValidationError("Partner endpoints have adapter settings instead of a contact URL.",
                                  "contact_url")
        if consumer and consumer.get("transport") != "push":
            raise ValidationError("A partner endpoint's consumer role is push.", "consumer")
        return
    needs_url = (producer or {}).get("transport") == "pull" or (consumer or {}).get("transport") == "push"
    if needs_url and not data.get("contact_url"):
        raise ValidationError("Required for a PULL producer or a PUSH consumer.", "contact_url")
    if data.get("identifiers") == [] and (producer or consumer):
        raise ValidationError("Declare at least one identifier.", "identifiers")
    if len(set(data.get("identifiers") or [])) != len(data.get("identifiers") or []):
        raise ValidationError("Identifiers must be unique.", "identifiers")


class EndpointUpdateSchema(EndpointCreateSchema):
    """Partial update: only the fields given change; the result is validated as a whole."""


class AdapterViewSchema(StrictSchema):
    type = fields.String()
    settings = fields.Dict(metadata={"description": "Settings without secrets."})


class EndpointSchema(StrictSchema):
    id = fields.String()
    name = fields.String()
    contact_url = fields.String(allow_none=True)
    producer = fields.Nested(ProducerRoleSchema, allow_none=True)
    consumer = fields.Nested(ConsumerRoleSchema, allow_none=True)
    identifiers = fields.List(fields.String())
    attributes = fields.List(fields.String())
    has_credential = fields.Boolean()
    webhook_url = fields.String(allow_none=True)
    adapter = fields.Nested(AdapterViewSchema, allow_none=True)
    status = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    last_verified_at = fields.DateTime(allow_none=True)
    last_refresh_at = fields.DateTime(allow_none=True)
    last_refresh_error = fields.String(allow_none=True)
    application_id = fields.String(allow_none=True, metadata={
        "description": "The application this endpoint was connected from (Click to Connect), else null."})
    connection = fields.String(allow_none=True, metadata={
        "description": "How a connected endpoint's credential was given: key or oauth2."})


class EndpointCreatedSchema(EndpointSchema):
    endpoint_key = fields.String(metadata={"description": "Endpoint-scope API key. Shown once."})
    webhook_secret = fields.String(allow_none=True,
                                   metadata={"description": "Secret to verify webhook signatures. Shown once."})


class EndpointQueryArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(["active", "disabled"]))
    role = fields.String(load_default=None, validate=validate.OneOf(["producer", "consumer"]))
    q = fields.String(load_default=None, validate=validate.Length(max=200))


class VerifyCheckSchema(StrictSchema):
    name = fields.String()
    ok = fields.Boolean()
    detail = fields.String()


class VerifyResultSchema(StrictSchema):
    ok = fields.Boolean()
    reachable = fields.Boolean()
    checks = fields.List(fields.Nested(VerifyCheckSchema))
    verified_at = fields.DateTime()
