"""Catalog schemas: audience metadata, search arguments, PUSH producer metadata and upload results."""
from __future__ import annotations

from marshmallow import fields, validate

from .common import IDENT, PageArgsSchema, StrictSchema


class AudienceSchema(StrictSchema):
    id = fields.String()
    endpoint_id = fields.String()
    external_id = fields.String()
    name = fields.String()
    description = fields.String()
    identifiers = fields.List(fields.String())
    attributes = fields.List(fields.String())
    columns = fields.List(fields.String())
    size = fields.Integer(allow_none=True)
    tags = fields.List(fields.String())
    updated_at = fields.DateTime(allow_none=True)
    version = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "active, or gone when the producer no longer lists it"})


class AudienceDetailSchema(AudienceSchema):
    share_ids = fields.List(fields.String())


class AudienceQueryArgsSchema(PageArgsSchema):
    q = fields.String(load_default=None, validate=validate.Length(max=200))
    identifier = fields.String(load_default=None, validate=validate.Length(max=64))
    producer = fields.String(load_default=None, validate=validate.Length(max=64))
    tag = fields.String(load_default=None, validate=validate.Length(max=100))
    status = fields.String(load_default="active", validate=validate.OneOf(["active", "gone"]))


class AudienceMetadataSchema(StrictSchema):
    name = fields.String(load_default=None, validate=validate.Length(min=1, max=255))
    description = fields.String(load_default="", validate=validate.Length(max=10000))
    identifiers = fields.List(fields.String(validate=IDENT), load_default=list, validate=validate.Length(max=50))
    attributes = fields.List(fields.String(validate=IDENT), load_default=list, validate=validate.Length(max=500))
    size = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list,
                       validate=validate.Length(max=50))
    updated_at = fields.AwareDateTime(load_default=None, allow_none=True)
    version = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))


class UploadResultSchema(StrictSchema):
    audience_id = fields.String()
    external_id = fields.String()
    rows = fields.Integer()
    bytes = fields.Integer()
    sha256 = fields.String()
    version = fields.String()
    columns = fields.List(fields.String())
    triggered_job_ids = fields.List(fields.String())
    unchanged = fields.Boolean(metadata={"description": "The same bytes as the current version: nothing new."})


class RefreshResultSchema(StrictSchema):
    found = fields.Integer()
    new = fields.Integer()
    gone = fields.Integer()
    error = fields.String()
