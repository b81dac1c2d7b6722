"""Share schemas: audience → destination, mapping, mode, schedule, delta (SPEC §4.1, §7)."""
from __future__ import annotations

from marshmallow import fields, validate

from .common import PageArgsSchema, StrictSchema

TRANSFORMS = ["none", "trim", "lowercase", "normalize_email", "normalize_phone", "sha256"]


class MappingRuleSchema(StrictSchema):
    source = fields.String(required=True, validate=validate.Length(min=1, max=200))
    target = fields.String(required=True, validate=validate.Length(min=1, max=200))
    transform = fields.List(fields.String(validate=validate.Length(min=1, max=50)), load_default=list,
                            validate=validate.Length(max=10),
                            metadata={"description": f"Chained transforms, any of {', '.join(TRANSFORMS)}."})


class ScheduleSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(["now", "at", "interval", "cron", "on_new_data"]))
    at = fields.String(load_default=None, metadata={"description": "ISO 8601 time with offset (type at)."})
    every = fields.String(load_default=None, metadata={"description": "ISO 8601 duration, e.g. PT6H (type interval)."})
    cron = fields.String(load_default=None, metadata={"description": "5-field cron expression (type cron)."})
    timezone = fields.String(load_default=None, metadata={"description": "IANA time zone for cron."})


class ShareCreateSchema(StrictSchema):
    audience_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    destination_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    destination_audience = fields.String(load_default=None, validate=validate.Length(min=1, max=255))
    mapping = fields.List(fields.Nested(MappingRuleSchema), required=True, validate=validate.Length(min=1, max=200))
    mode = fields.String(load_default="add", validate=validate.OneOf(["add", "replace", "remove"]))
    schedule = fields.Nested(ScheduleSchema, load_default=lambda: {"type": "now"})
    delta = fields.Boolean(load_default=None, allow_none=True,
                           metadata={"description": "Deliver only changes since the last successful job "
                                     "(default: on for recurring schedules)."})
    reject_threshold = fields.Float(load_default=0.1, validate=validate.Range(min=0, max=1))
    default_country = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Z]{2}$"))


class ShareUpdateSchema(StrictSchema):
    destination_audience = fields.String(validate=validate.Length(min=1, max=255))
    mapping = fields.List(fields.Nested(MappingRuleSchema), validate=validate.Length(min=1, max=200))
    mode = fields.String(validate=validate.OneOf(["add", "replace", "remove"]))
    schedule = fields.Nested(ScheduleSchema)
    delta = fields.Boolean()
    reject_threshold = fields.Float(validate=validate.Range(min=0, max=1))
    default_country = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z]{2}$"))


class ShareSchema(StrictSchema):
    id = fields.String()
    audience_id = fields.String()
    destination_id = fields.String()
    destination_audience = fields.String()
    mapping = fields.List(fields.Nested(MappingRuleSchema))
    mode = fields.String()
    schedule = fields.Dict()
    schedule_description = fields.String()
    delta = fields.Boolean()
    reject_threshold = fields.Float()
    default_country = fields.String(allow_none=True)
    status = fields.String()
    next_run_at = fields.DateTime(allow_none=True)
    last_job_id = fields.String(allow_none=True)
    snapshot_job_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ShareQueryArgsSchema(PageArgsSchema):
    audience_id = fields.String(load_default=None)
    destination_id = fields.String(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(["active", "paused"]))
