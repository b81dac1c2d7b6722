"""Endpoint applications (provider side) and Click to Connect (user side)."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from .common import IDENT, NAME, PageArgsSchema, StrictSchema
from .endpoints import ConsumerRoleSchema, EndpointCreatedSchema, ProducerRoleSchema

URL = validate.Length(min=1, max=2048)
SCOPE = validate.Regexp(r"^[\x21\x23-\x5b\x5d-\x7e]{1,200}$",
                        error="A scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3).")


class AuthSpecSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(["key", "oauth2"]),
                         metadata={"description": "key: users paste a credential; oauth2: users consent "
                                   "at the provider (authorization code flow with PKCE)."})
    authorize_url = fields.String(load_default=None, allow_none=True, validate=URL)
    token_url = fields.String(load_default=None, allow_none=True, validate=URL)
    revocation_url = fields.String(load_default=None, allow_none=True, validate=URL,
                                   metadata={"description": "Optional RFC 7009 endpoint, called when a "
                                             "connected endpoint is deleted."})
    client_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=255))
    client_secret = fields.String(load_default=None, allow_none=True, load_only=True,
                                  validate=validate.Length(min=1, max=4096),
                                  metadata={"description": "Write-only; encrypted at rest."})
    token_endpoint_auth_method = fields.String(
        load_default="client_secret_basic",
        validate=validate.OneOf(["client_secret_basic", "client_secret_post"]))
    scopes = fields.List(fields.String(validate=SCOPE), load_default=list, validate=validate.Length(max=50))

    @validates_schema
    def _oauth(self, data, partial=False, **_):
        if partial or data.get("type") != "oauth2":
            return
        missing = [f for f in ("authorize_url", "token_url", "client_id") if not data.get(f)]
        if missing:
            raise ValidationError({f: ["Required for OAuth 2.0 applications."] for f in missing})


class ApplicationCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    description = fields.String(load_default="", validate=validate.Length(max=4000))
    contact_url = fields.String(load_default=None, allow_none=True, validate=URL)
    producer = fields.Nested(ProducerRoleSchema, load_default=None, allow_none=True)
    consumer = fields.Nested(ConsumerRoleSchema, load_default=None, allow_none=True)
    identifiers = fields.List(fields.String(validate=IDENT), load_default=list, validate=validate.Length(max=50))
    attributes = fields.List(fields.String(validate=IDENT), load_default=list, validate=validate.Length(max=500))
    webhook_url = fields.String(load_default=None, allow_none=True, validate=URL,
                                metadata={"description": "Receives the job webhooks of every connected endpoint."})
    auth = fields.Nested(AuthSpecSchema, load_default=lambda: {"type": "key"})


class ApplicationUpdateSchema(ApplicationCreateSchema):
    """Partial update of a draft (or the next version of an approved application)."""


class AuthViewSchema(StrictSchema):
    type = fields.String()
    authorize_url = fields.String(allow_none=True)
    token_url = fields.String(allow_none=True)
    revocation_url = fields.String(allow_none=True)
    client_id = fields.String(allow_none=True)
    token_endpoint_auth_method = fields.String(allow_none=True)
    scopes = fields.List(fields.String())
    has_client_secret = fields.Boolean()


class DefinitionSchema(StrictSchema):
    name = fields.String()
    description = fields.String()
    contact_url = fields.String(allow_none=True)
    producer = fields.Nested(ProducerRoleSchema, allow_none=True)
    consumer = fields.Nested(ConsumerRoleSchema, allow_none=True)
    identifiers = fields.List(fields.String())
    attributes = fields.List(fields.String())
    webhook_url = fields.String(allow_none=True)
    auth = fields.Nested(AuthViewSchema)


class PendingVersionSchema(DefinitionSchema):
    state = fields.String(metadata={"description": "draft | in_review | rejected"})
    version = fields.Integer()
    review_reason = fields.String(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)


class ApplicationSchema(DefinitionSchema):
    id = fields.String()
    state = fields.String(metadata={"description": "draft | in_review | approved | rejected"})
    version = fields.Integer()
    review_reason = fields.String(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)
    reviewed_at = fields.DateTime(allow_none=True)
    connections = fields.Integer(metadata={"description": "How many endpoints are connected (no details)."})
    pending = fields.Nested(PendingVersionSchema, allow_none=True,
                            metadata={"description": "The next version of an approved application."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ApplicationCreatedSchema(ApplicationSchema):
    webhook_secret = fields.String(allow_none=True, metadata={
        "description": "Secret to verify the webhooks sent to webhook_url. Shown once."})


class DirectoryAuthSchema(StrictSchema):
    type = fields.String()
    scopes = fields.List(fields.String())


class DirectoryEntrySchema(StrictSchema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    provider = fields.String(metadata={"description": "Name of the provider's account."})
    producer = fields.Nested(ProducerRoleSchema, allow_none=True)
    consumer = fields.Nested(ConsumerRoleSchema, allow_none=True)
    identifiers = fields.List(fields.String())
    attributes = fields.List(fields.String())
    auth = fields.Nested(DirectoryAuthSchema)
    version = fields.Integer()


class ApplicationQueryArgsSchema(PageArgsSchema):
    directory = fields.Boolean(load_default=False, metadata={
        "description": "List every approved application (for connecting) instead of the caller's own."})
    q = fields.String(load_default=None, validate=validate.Length(max=200))


class ConnectSchema(StrictSchema):
    method = fields.String(load_default="key", validate=validate.OneOf(["key", "oauth2"]))
    name = fields.String(load_default=None, allow_none=True, validate=NAME)
    credential = fields.String(load_default=None, allow_none=True, load_only=True,
                               validate=validate.Length(min=1, max=4096))
    return_to = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=2048),
                              metadata={"description": "Path on this site to return to after consent "
                                        "(default: the new endpoint's page)."})

    @validates_schema
    def _method(self, data, **_):
        if data.get("method") == "key":
            if not data.get("credential"):
                raise ValidationError("Required to connect with a key.", "credential")
            if data.get("return_to"):
                raise ValidationError("Only for method oauth2.", "return_to")
        elif data.get("credential"):
            raise ValidationError("The OAuth 2.0 flow obtains the credential; do not send one.", "credential")


class AuthorizeUrlSchema(StrictSchema):
    authorize_url = fields.String(metadata={"description": "Send the user's browser here to consent."})
    expires_at = fields.DateTime()


class ConnectedEndpointSchema(EndpointCreatedSchema):
    pass


class CallbackArgsSchema(StrictSchema):
    class Meta:
        unknown = "exclude"  # providers may add parameters (iss, session_state, ...)

    state = fields.String(load_default=None, validate=validate.Length(max=512))
    code = fields.String(load_default=None, validate=validate.Length(max=4096))
    error = fields.String(load_default=None, validate=validate.Length(max=200))
    error_description = fields.String(load_default=None, validate=validate.Length(max=2000))


class ReviewSchema(StrictSchema):
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
