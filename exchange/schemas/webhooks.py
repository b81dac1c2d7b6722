"""Webhook subscribers and their delivery log."""
from __future__ import annotations

from marshmallow import fields, validate

from .common import PageArgsSchema, StrictSchema


class WebhookMessageCountsSchema(StrictSchema):
    pending = fields.Integer()
    delivered = fields.Integer()
    failed = fields.Integer()


class WebhookSubscriberSchema(StrictSchema):
    id = fields.String(metadata={"description": "`account:<id>` or `endpoint:<id>`."})
    name = fields.String()
    url = fields.String()
    state = fields.String(validate=validate.OneOf(["active", "failing", "disabled"]))
    failing_since = fields.DateTime(allow_none=True)
    last_success_at = fields.DateTime(allow_none=True)
    disabled_at = fields.DateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    messages = fields.Nested(WebhookMessageCountsSchema)


class WebhookSubscriberListSchema(StrictSchema):
    items = fields.List(fields.Nested(WebhookSubscriberSchema))


class WebhookMessageSchema(StrictSchema):
    id = fields.String(metadata={"description": "The `webhook-id` header of every attempt."})
    subscriber = fields.String()
    job_id = fields.String(allow_none=True)
    event_type = fields.String()
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_attempt_at = fields.DateTime(allow_none=True)
    last_status = fields.Integer(allow_none=True, metadata={"description": "HTTP status of the last answer."})
    last_response = fields.String(allow_none=True, metadata={"description": "First 500 characters of it."})
    last_error = fields.String(allow_none=True, metadata={"description": "Why the last attempt got no answer."})
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)


class WebhookMessageQueryArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(["pending", "delivered", "failed"]))
    job_id = fields.String(load_default=None)
