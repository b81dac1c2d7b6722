"""Endpoint pages: list, register (protocol or partner adapter), detail, verify, disable/enable, refresh."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ..adapters.registry import list_adapters
from ..api.context import db, runtime
from ..catalog import endpoints as service
from ..catalog.audiences import search
from ..errors import ExchangeError
from ..schemas.endpoints import EndpointCreateSchema
from ..transfer.mapping import IDENTIFIER_TYPES
from .blueprint import web
from .forms import FormInvalid, endpoint_data, fold, load_endpoint, settings_fields


def _adapters() -> list[dict]:
    return [{**a, "fields": settings_fields(a)} for a in list_adapters()]


def _form_page(form: dict, invalid: FormInvalid | None = None, status: int = 200):
    errors = fold(invalid.errors, "identifiers", "attributes") if invalid else {}
    return render_template("endpoints/new.html", form=form, adapters=_adapters(),
                           identifier_types=IDENTIFIER_TYPES, errors=errors,
                           summary=invalid.detail if invalid else None), status


@web.route("/endpoints")
def endpoints_list():
    """The account's endpoints, with their roles and status."""
    items, total = service.list_endpoints(db(), g.principal.account_id, page_size=500)
    return render_template("endpoints/list.html", endpoints=[service.endpoint_view(e) for e in items],
                           total=total)


@web.route("/endpoints/new", methods=["GET", "POST"])
def endpoints_new():
    """Register an endpoint; its endpoint key is shown once, on the page that follows."""
    if request.method == "GET":
        return _form_page({"kind": request.args.get("kind", "protocol"), "identifiers": ["email"],
                           "consumer_gzip": "", "consumer_replace": "on"})
    form = request.form
    echo = {k: form.get(k) for k in form} | {"identifiers": form.getlist("identifiers")}
    echo.pop("credential", None)  # never sent back into the page
    rt, session = runtime(), db()
    try:
        data = load_endpoint(EndpointCreateSchema(), endpoint_data(form), allow_private=rt.config.allow_private_urls)
        ep, token, webhook_secret = service.register_endpoint(rt, session, g.principal.account_id, data)
        session.commit()
    except ExchangeError as err:
        session.rollback()
        return _form_page(echo, FormInvalid.from_error(err), 422)
    except FormInvalid as invalid:
        return _form_page(echo, invalid, 422)
    from ..catalog.gather import gather_on_registration

    gather_on_registration(rt, ep.id)
    session.refresh(ep)
    return render_template("endpoints/created.html", endpoint=service.endpoint_view(ep), endpoint_key=token,
                           webhook_secret=webhook_secret), 201


def _detail(endpoint_id: str, verification: dict | None = None, smoke: dict | None = None,
            conformance: dict | None = None):
    session = db()
    ep = service.get_endpoint(session, g.principal.account_id, endpoint_id)
    audiences = []
    if ep.producer_transport:
        audiences, _ = search(session, g.principal.account_id, producer=ep.id, page_size=100)
    return render_template("endpoints/detail.html", endpoint=service.endpoint_view(ep), audiences=audiences,
                           verification=verification, smoke=smoke, conformance=conformance)


@web.route("/endpoints/<endpoint_id>")
def endpoint_detail(endpoint_id: str):
    """One endpoint: roles, identifiers, its audiences, and the verify/disable actions."""
    return _detail(endpoint_id)


@web.route("/endpoints/<endpoint_id>/verify", methods=["POST"])
def endpoint_verify(endpoint_id: str):
    """Call the endpoint once and show each check."""
    from ..catalog.verify import verify_endpoint

    service.get_endpoint(db(), g.principal.account_id, endpoint_id)
    result = verify_endpoint(runtime(), g.principal.account_id, endpoint_id)
    db().expire_all()
    return _detail(endpoint_id, result)


@web.route("/endpoints/<endpoint_id>/adapter-check", methods=["POST"])
def endpoint_adapter_check(endpoint_id: str):
    """Smoke-check a partner adapter endpoint and show each step and exchange (secrets scrubbed)."""
    from ..catalog.adapter_check import adapter_check

    report = adapter_check(runtime(), g.principal.account_id, endpoint_id)
    return _detail(endpoint_id, smoke=report)


@web.route("/endpoints/<endpoint_id>/<any(disable, enable):action>", methods=["POST"])
def endpoint_status(endpoint_id: str, action: str):
    """Disable (shares stop running) or enable an endpoint."""
    session = db()
    ep = service.set_status(session, g.principal.account_id, endpoint_id,
                            "disabled" if action == "disable" else "active")
    session.commit()
    flash(f"{ep.name} is now {'disabled' if action == 'disable' else 'enabled'}.", "ok")
    return redirect(url_for("web.endpoint_detail", endpoint_id=endpoint_id))


@web.route("/endpoints/<endpoint_id>/refresh", methods=["POST"])
def endpoint_refresh(endpoint_id: str):
    """Gather a PULL producer's audience list now."""
    from ..catalog.gather import refresh_endpoint

    ep = service.get_endpoint(db(), g.principal.account_id, endpoint_id)
    counts = refresh_endpoint(runtime(), ep.id)
    db().expire_all()
    ep = service.get_endpoint(db(), g.principal.account_id, endpoint_id)
    if ep.last_refresh_error:
        flash(f"Refreshing failed: {ep.last_refresh_error}", "bad")
    else:
        flash(f"Found {counts['found']} audiences ({counts['new']} new, {counts['gone']} gone).", "ok")
    return redirect(url_for("web.endpoint_detail", endpoint_id=endpoint_id))
