"""Schemas shared by several resources: pagination, health, problem documents."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

NAME = validate.Length(min=1, max=200)
IDENT_RE = r"^[a-z][a-z0-9_]{0,63}$"
IDENT = validate.Regexp(IDENT_RE, error="Use lowercase letters, digits and underscores, starting with a letter.")


class StrictSchema(Schema):
    """Unknown fields are an error (marshmallow's default, made explicit)."""

    class Meta:
        unknown = "raise"
        ordered = True


class HealthSchema(Schema):
    status = fields.String(required=True)


class ReadySchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "Each checked dependency (database, blobs, broker) and `ok`."})


class PageArgsSchema(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class PageSchema(Schema):
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


def page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    """An envelope ``{"items": [...], "page", "page_size", "total"}`` around ``item_schema``."""
    return type(name, (PageSchema,), {"items": fields.List(fields.Nested(item_schema), required=True)})


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
