"""Click to Connect pages: the directory of approved applications and its Connect buttons, the
provider console (define, edit, submit, see the review), and the operator's review page."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from ..api.context import db, runtime
from ..applications import connect as connecting
from ..applications import registry as service
from ..catalog.endpoints import endpoint_view
from ..errors import ExchangeError
from ..schemas.applications import ApplicationCreateSchema, ApplicationUpdateSchema, ConnectSchema
from ..transfer.mapping import IDENTIFIER_TYPES
from .blueprint import web
from .forms import FormInvalid, fold, load, optional, words

# ---------------------------------------------------------------- directory and Connect


@web.route("/applications")
def applications_directory():
    """Approved applications any account can connect."""
    session = db()
    items, _ = service.list_applications(session, g.principal.account_id, directory=True, page_size=500)
    return render_template("applications/directory.html", is_operator=_is_operator(),
                           applications=[service.directory_view(session, a) for a in items])


def _connect_page(app, form: dict | None = None, invalid: FormInvalid | None = None, status: int = 200):
    session = db()
    view = service.directory_view(session, app)
    html = render_template("applications/connect.html", app=view, form=form or {},
                           errors=invalid.errors if invalid else {}, summary=invalid.detail if invalid else None)
    if view["auth"]["type"] == "oauth2":
        # the Connect form posts here and is redirected to the provider: CSP form-action must allow it
        target = urlsplit(app.spec["auth"]["authorize_url"])
        from .session import CSP

        csp = CSP.replace("form-action 'self'", f"form-action 'self' {target.scheme}://{target.netloc}")
        return html, status, {"Content-Security-Policy": csp}
    return html, status


@web.route("/applications/<application_id>/connect", methods=["GET", "POST"])
def application_connect(application_id: str):
    """Connect an application: paste a key, or go to the provider to consent (OAuth 2.0)."""
    rt, session = runtime(), db()
    app = service.get_approved(session, application_id)
    if request.method == "GET":
        return _connect_page(app)
    oauth2 = (app.spec.get("auth") or {}).get("type") == "oauth2"
    form = {"name": optional(request.form.get("name")), "method": "oauth2" if oauth2 else "key"}
    if not oauth2:
        form["credential"] = optional(request.form.get("credential"))
    try:
        data = load(ConnectSchema(), {k: v for k, v in form.items() if v is not None})
        if oauth2:
            from ..api.applications import callback_url

            url, _ = connecting.start_oauth(rt, session, g.principal, app.id, redirect_uri=callback_url(),
                                            name=data.get("name"))
            session.commit()
            return redirect(url, 303)
        ep, key = connecting.connect_with_key(rt, session, g.principal.account_id, app.id,
                                              credential=data["credential"], name=data.get("name"))
        session.commit()
    except ExchangeError as err:
        session.rollback()
        return _connect_page(app, {"name": form.get("name")}, FormInvalid.from_error(err), 422)
    except FormInvalid as invalid:
        return _connect_page(app, {"name": form.get("name")}, invalid, 422)
    from ..catalog.gather import gather_on_registration

    gather_on_registration(rt, ep.id)
    session.refresh(ep)
    return render_template("endpoints/created.html", endpoint=endpoint_view(ep), endpoint_key=key,
                           webhook_secret=None), 201


# ---------------------------------------------------------------- provider console


def application_form_data(form: MultiDict) -> dict:
    """The provider form as the body of ``POST /v1/applications`` (before schema validation)."""
    identifiers = " ".join(form.getlist("identifiers")) + " " + form.get("custom_identifiers", "")
    data: dict = {"name": form.get("name", "").strip(), "description": form.get("description", "").strip(),
                  "contact_url": optional(form.get("contact_url")), "webhook_url": optional(form.get("webhook_url")),
                  "identifiers": words(identifiers), "attributes": words(form.get("attributes"))}
    producer = form.get("producer_transport", "")
    data["producer"] = {"transport": producer} if producer else None
    consumer = form.get("consumer_transport", "")
    data["consumer"] = None
    if consumer:
        data["consumer"] = {"transport": consumer, "gzip": form.get("consumer_gzip") == "on"}
        rows = form.get("max_rows_per_request", "").strip()
        if rows:
            data["consumer"]["max_rows_per_request"] = rows
    if form.get("auth_type") == "oauth2":
        auth = {"type": "oauth2", "scopes": words(form.get("scopes"))}
        for f in ("authorize_url", "token_url", "revocation_url", "client_id", "client_secret"):
            value = optional(form.get(f))
            if value is not None:
                auth[f] = value
        data["auth"] = auth
    else:
        data["auth"] = {"type": "key"}
    return data


def _form_from(view: dict) -> dict:
    auth = view["auth"]
    return {"name": view["name"], "description": view["description"], "contact_url": view["contact_url"],
            "webhook_url": view["webhook_url"], "identifiers": view["identifiers"],
            "attributes": ", ".join(view["attributes"]),
            "producer_transport": (view["producer"] or {}).get("transport", ""),
            "consumer_transport": (view["consumer"] or {}).get("transport", ""),
            "consumer_gzip": "on" if (view["consumer"] or {}).get("gzip") else "",
            "max_rows_per_request": (view["consumer"] or {}).get("max_rows_per_request", ""),
            "auth_type": auth["type"], "scopes": " ".join(auth.get("scopes") or []),
            **{f: auth.get(f) or "" for f in ("authorize_url", "token_url", "revocation_url", "client_id")},
            "has_client_secret": auth.get("has_client_secret")}


def _echo(form: MultiDict) -> dict:
    echo = {k: form.get(k) for k in form} | {"identifiers": form.getlist("identifiers")}
    echo.pop("client_secret", None)  # never sent back into the page
    return echo


def _editor(form: dict, app=None, invalid: FormInvalid | None = None, status: int = 200):
    errors = fold(invalid.errors, "identifiers", "attributes") if invalid else {}
    view = service.application_view(db(), app) if app is not None else None
    return render_template("applications/edit.html", form=form, app=view, identifier_types=IDENTIFIER_TYPES,
                           errors=errors, summary=invalid.detail if invalid else None), status


@web.route("/provider/applications")
def provider_applications():
    """The provider console: the account's own applications and their review state."""
    session = db()
    items, _ = service.list_applications(session, g.principal.account_id, page_size=500)
    return render_template("applications/provider.html",
                           applications=[service.application_view(session, a) for a in items])


@web.route("/provider/applications/new", methods=["GET", "POST"])
def provider_application_new():
    """Define an application (a draft)."""
    if request.method == "GET":
        return _editor({"identifiers": ["email"], "auth_type": "key"})
    rt, session = runtime(), db()
    try:
        data = load(ApplicationCreateSchema(), application_form_data(request.form))
        app, webhook_secret = service.create_application(rt, session, g.principal.account_id, data)
        session.commit()
    except ExchangeError as err:
        session.rollback()
        return _editor(_echo(request.form), None, FormInvalid.from_error(err), 422)
    except FormInvalid as invalid:
        return _editor(_echo(request.form), None, invalid, 422)
    flash(f"{app.spec['name']} is saved as a draft. Submit it for review when it is ready.", "ok")
    if webhook_secret:
        flash(f"Webhook signing secret (shown once): {webhook_secret}", "ok")
    return redirect(url_for("web.provider_application", application_id=app.id), 303)


@web.route("/provider/applications/<application_id>", methods=["GET", "POST"])
def provider_application(application_id: str):
    """One application: review state and reason, the editor (a new version once approved), submit."""
    rt, session = runtime(), db()
    app = service.get_application(session, g.principal.account_id, application_id)
    view = service.application_view(session, app)
    if request.method == "GET":
        return _editor(_form_from(view["pending"] or view), app)
    try:
        data = load(ApplicationUpdateSchema(), application_form_data(request.form))
        if not data.get("auth", {}).get("client_secret"):
            data.get("auth", {}).pop("client_secret", None)
        service.update_application(rt, session, g.principal.account_id, app.id, data)
        session.commit()
    except ExchangeError as err:
        session.rollback()
        return _editor(_echo(request.form), app, FormInvalid.from_error(err), 422)
    except FormInvalid as invalid:
        return _editor(_echo(request.form), app, invalid, 422)
    flash("Saved. Submit it for review to publish the change." if app.state != "draft" or app.pending_state
          else "Saved.", "ok")
    return redirect(url_for("web.provider_application", application_id=app.id), 303)


@web.route("/provider/applications/<application_id>/submit", methods=["POST"])
def provider_application_submit(application_id: str):
    session = db()
    try:
        service.submit_application(session, g.principal.account_id, application_id)
        session.commit()
        flash("Submitted for review.", "ok")
    except ExchangeError as err:
        session.rollback()
        flash(err.detail, "bad")
    return redirect(url_for("web.provider_application", application_id=application_id), 303)


# ---------------------------------------------------------------- operator review


def _is_operator() -> bool:
    user = getattr(g, "user", None)
    allowed = {e.strip().lower() for e in runtime().config.operator_emails.split(",") if e.strip()}
    return bool(user is not None and user.email.lower() in allowed)


@web.route("/operator/applications", methods=["GET", "POST"])
def operator_review():
    """Operators (EXCHANGE_OPERATOR_EMAILS) approve or reject what providers submitted."""
    if not _is_operator():
        abort(404)
    session = db()
    if request.method == "POST":
        app_id, decision = request.form.get("application_id", ""), request.form.get("decision")
        reason = optional(request.form.get("reason"))
        try:
            actor = f"operator:{g.user.email}"
            app = service.approve(session, app_id, reason, actor=actor) if decision == "approve" else \
                service.reject(session, app_id, reason or "", actor=actor)
            session.commit()
            flash(f"{app.spec['name']}: {'approved' if decision == 'approve' else 'rejected'}.", "ok")
        except ExchangeError as err:
            session.rollback()
            flash(err.detail, "bad")
        return redirect(url_for("web.operator_review"), 303)
    from ..models import Account

    queue = []
    for app in service.review_queue(session):
        view = service.application_view(session, app)
        account = session.get(Account, app.account_id)
        queue.append({"view": view, "proposed": view["pending"] or view,
                      "provider": account.name if account else ""})
    return render_template("applications/review.html", queue=queue)
