"""API keys of the caller's account: create (shown once), list (prefix only), revoke."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from ..auth import keys as service
from ..schemas.common import PageArgsSchema, page_of
from ..schemas.keys import ApiKeyCreatedSchema, ApiKeyCreateSchema, ApiKeySchema
from .context import control_plane, db

blp = Blueprint("keys", __name__, url_prefix="/v1/keys", description="API keys of the account")
ApiKeyPageSchema = page_of(ApiKeySchema, "ApiKeyPageSchema")


@blp.route("")
class Keys(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, ApiKeyPageSchema)
    def get(self, args):
        """List the account's API keys (prefixes only, never secrets)."""
        keys = service.list_keys(db(), control_plane().account_id)
        start = (args["page"] - 1) * args["page_size"]
        return {"items": keys[start:start + args["page_size"]], "page": args["page"],
                "page_size": args["page_size"], "total": len(keys)}

    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, data):
        """Create an API key; the token is in this response only."""
        session = db()
        key, token = service.create_key(session, control_plane().account_id, **data)
        session.commit()
        key.key = token  # transient attribute: the only time the token exists
        return key


@blp.route("/<key_id>")
class KeyById(MethodView):
    @blp.response(200, ApiKeySchema)
    def get(self, key_id):
        """Get one API key (prefix only)."""
        return service.get_key(db(), control_plane().account_id, key_id)

    @blp.response(200, ApiKeySchema)
    def delete(self, key_id):
        """Revoke an API key; it stops working at once."""
        session = db()
        key = service.revoke_key(session, control_plane().account_id, key_id)
        session.commit()
        return key
