"""Job, job event and delivery schemas (SPEC §4.1, §8)."""
from __future__ import annotations

from marshmallow import fields, validate

from .common import PageArgsSchema, StrictSchema

STATES = ["queued", "fetching", "awaiting_source", "transforming", "delivering", "awaiting_consumer",
          "succeeded", "partially_succeeded", "failed", "cancelled"]


class CountsSchema(StrictSchema):
    received = fields.Integer()
    valid = fields.Integer()
    rejected = fields.Integer()
    duplicates = fields.Integer()
    added = fields.Integer()
    removed = fields.Integer()
    delivered = fields.Integer()
    acknowledged = fields.Integer()
    hashed = fields.Integer(metadata={"description": "Identifier values hashed from raw values."})
    passed_through = fields.Integer(metadata={"description": "Identifier values that already were hashes."})


class JobSchema(StrictSchema):
    id = fields.String()
    share_id = fields.String(allow_none=True)
    trigger = fields.String()
    scheduled_for = fields.DateTime(allow_none=True)
    state = fields.String(validate=validate.OneOf(STATES))
    mode = fields.String()
    counts = fields.Nested(CountsSchema)
    bytes = fields.Integer()
    attempts = fields.Integer()
    timings = fields.Dict(keys=fields.String(), values=fields.Float())
    error = fields.Dict(allow_none=True)
    progress = fields.Dict()
    snapshot_base_job_id = fields.String(allow_none=True)
    source_version = fields.String(allow_none=True)
    cancel_requested = fields.Boolean()
    worker = fields.String(attribute="lease_owner", allow_none=True, metadata={
        "description": "The worker holding the job now (`host:pid:id`), null when none does."})
    heartbeat_at = fields.DateTime(allow_none=True, metadata={
        "description": "When that worker last renewed its lease; a takeover is recorded as an event."})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class JobQueryArgsSchema(PageArgsSchema):
    share_id = fields.String(load_default=None)
    state = fields.String(load_default=None, validate=validate.OneOf(STATES))
    since = fields.AwareDateTime(load_default=None)
    until = fields.AwareDateTime(load_default=None)


class JobEventSchema(StrictSchema):
    id = fields.Integer()
    at = fields.DateTime()
    kind = fields.String()
    state = fields.String(allow_none=True)
    message = fields.String()
    data = fields.Dict(allow_none=True)


class JobEventListSchema(StrictSchema):
    items = fields.List(fields.Nested(JobEventSchema))


class DeliverySchema(StrictSchema):
    id = fields.String()
    job_id = fields.String()
    endpoint_id = fields.String()
    destination_audience = fields.String()
    state = fields.String()
    mode = fields.String()
    columns = fields.List(fields.String())
    row_count = fields.Integer()
    size = fields.Integer()
    sha256 = fields.String()
    deadline_at = fields.DateTime(allow_none=True)
    accepted = fields.Integer(allow_none=True)
    rejected = fields.Integer(allow_none=True)
    message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    acked_at = fields.DateTime(allow_none=True)


class DeliveryQueryArgsSchema(PageArgsSchema):
    state = fields.String(load_default=None, validate=validate.OneOf(["ready", "awaiting_ack", "acknowledged",
                                                                       "expired"]),
                          metadata={"description": "`ready`: to download (PULL consumer); `awaiting_ack`: a "
                                    "PUSH consumer answered 202 and owes an acknowledgement."})
    endpoint_id = fields.String(load_default=None)


class AckSchema(StrictSchema):
    accepted = fields.Integer(required=True, validate=validate.Range(min=0))
    rejected = fields.Integer(load_default=0, validate=validate.Range(min=0))
    message = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
