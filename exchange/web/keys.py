"""API key pages: list by prefix, create (the token is shown once, on the page that answers), revoke."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask import session as session_store

from ..api.context import db
from ..auth import keys as service
from ..catalog.endpoints import list_endpoints
from ..errors import ExchangeError
from ..schemas.keys import ApiKeyCreateSchema
from .blueprint import web
from .forms import FormInvalid, load, optional


def _page(created: tuple | None = None, invalid: FormInvalid | None = None, form: dict | None = None,
          status: int = 200):
    session, account = db(), g.principal.account_id
    endpoints, _ = list_endpoints(session, account, page_size=500)
    return render_template("keys.html", keys=service.list_keys(session, account), endpoints=endpoints,
                           created=created, errors=invalid.errors if invalid else {},
                           summary=invalid.detail if invalid else None, form=form or {}), status


@web.route("/keys")
def keys_list():
    """API keys of the account (prefix only) and a form to create one; a new key's token, once."""
    fresh = session_store.pop("new_key", None)
    if fresh:
        key = next((k for k in service.list_keys(db(), g.principal.account_id) if k.id == fresh.get("id")), None)
        if key is not None:
            response = _page(created=(key, fresh["token"]))
            return response[0], 200, {"Cache-Control": "no-store"}
    return _page()


@web.route("/keys", methods=["POST"])
def keys_create():
    """Create an account or endpoint key; its token appears on this answer only."""
    form = request.form
    body = {"name": form.get("name", "").strip(), "scope": form.get("scope", "account")}
    if body["scope"] == "endpoint":
        body["endpoint_id"] = optional(form.get("endpoint_id"))
    session = db()
    try:
        data = load(ApiKeyCreateSchema(), body)
        key, token = service.create_key(session, g.principal.account_id, **data)
        session.commit()
    except ExchangeError as err:
        session.rollback()
        return _page(invalid=FormInvalid.from_error(err), form=body, status=422)
    except FormInvalid as invalid:
        return _page(invalid=invalid, form=body, status=422)
    # POST-redirect-GET: reloading the page that shows the token must not create another key. The
    # token rides once in the signed session cookie and is dropped by the page that shows it.
    session_store["new_key"] = {"id": key.id, "token": token}
    return redirect(url_for("web.keys_list"), code=303)


@web.route("/keys/<key_id>/revoke", methods=["POST"])
def keys_revoke(key_id: str):
    """Revoke a key: it stops working at once."""
    session = db()
    key = service.revoke_key(session, g.principal.account_id, key_id)
    session.commit()
    flash(f"Key {key.prefix} revoked.", "ok")
    return redirect(url_for("web.keys_list"))
