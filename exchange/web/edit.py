"""Edit and delete pages for endpoints and shares, and the endpoint page's protocol conformance check.

Edits validate like the API (the endpoint form reports every field at once) and call the same
services as ``PATCH /v1/endpoints/{id}`` and ``PATCH /v1/shares/{id}``; a successful post redirects
(POST-redirect-GET), a refused one answers 422 with the form and its messages. Deletes ask on a
confirmation page first.
"""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from ..api.context import db, runtime
from ..catalog import endpoints as endpoint_service
from ..catalog.audiences import audience_view, get_audience
from ..errors import ExchangeError
from ..schemas.endpoints import EndpointCreateSchema, EndpointUpdateSchema
from ..schemas.shares import ShareUpdateSchema
from ..shares import service as share_service
from ..transfer.mapping import IDENTIFIER_TYPES, TRANSFORMS
from .blueprint import web
from .forms import (
    FormInvalid,
    adapter_settings,
    endpoint_data,
    fold,
    load,
    load_endpoint,
    optional,
    settings_fields,
)
from .wizard import INTERVAL_UNITS, TRANSFORM_HELP, mapping_from_form, preview, schedule_from_form


# ---------------------------------------------------------------- endpoints
def _endpoint_form(view: dict) -> dict:
    """The edit form's values from an endpoint's API view (secrets are never put back)."""
    producer, consumer = view.get("producer") or {}, view.get("consumer") or {}
    known = [i for i in view.get("identifiers") or [] if i in IDENTIFIER_TYPES]
    return {
        "kind": (view.get("adapter") or {}).get("type") or "protocol", "name": view["name"],
        "contact_url": view.get("contact_url") or "", "producer_transport": producer.get("transport", ""),
        "consumer_transport": consumer.get("transport", ""),
        "max_rows_per_request": consumer.get("max_rows_per_request") or "",
        "consumer_gzip": "on" if consumer.get("gzip") else "",
        "consumer_replace": "on" if consumer.get("replace", True) else "",
        "identifiers": known, "custom_identifiers": ", ".join(i for i in view.get("identifiers") or []
                                                              if i not in known),
        "attributes": ", ".join(view.get("attributes") or []), "webhook_url": view.get("webhook_url") or "",
        "has_credential": view.get("has_credential"),
    }


def _adapter_fields(endpoint: dict) -> list[dict]:
    from ..adapters.registry import describe, get_adapter

    return settings_fields(describe(get_adapter(endpoint["adapter"]["type"]))) if endpoint.get("adapter") else []


def _settings_form(endpoint: dict) -> dict:
    """Non-secret adapter settings as the inputs ``adapter.<type>.<name>`` show them."""
    kind, public = endpoint["adapter"]["type"], endpoint["adapter"].get("settings") or {}
    out = {}
    for f in _adapter_fields(endpoint):
        value = public.get(f["name"])
        if value is None or f["secret"]:
            continue
        if isinstance(value, list):
            value = "\n".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = "\n".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, bool):
            value = "on" if value else ""
        out[f"adapter.{kind}.{f['name']}"] = value
    return out


def _edit_page(endpoint: dict, form: dict, invalid: FormInvalid | None = None, status: int = 200):
    errors = fold(invalid.errors, "identifiers", "attributes") if invalid else {}
    return render_template("endpoints/edit.html", endpoint=endpoint, form=form, errors=errors,
                           adapter_fields=_adapter_fields(endpoint), identifier_types=IDENTIFIER_TYPES,
                           summary=invalid.detail if invalid else None), status


@web.route("/endpoints/<endpoint_id>/edit", methods=["GET", "POST"])
def endpoint_edit(endpoint_id: str):
    """Change an endpoint's registration; a blank credential keeps the current one."""
    rt, session, account = runtime(), db(), g.principal.account_id
    view = endpoint_service.endpoint_view(endpoint_service.get_endpoint(session, account, endpoint_id))
    if request.method == "GET":
        return _edit_page(view, _endpoint_form(view) | (_settings_form(view) if view.get("adapter") else {}))
    form = request.form
    echo = {k: form.get(k) for k in form} | {"identifiers": form.getlist("identifiers"),
                                             "kind": _endpoint_form(view)["kind"]}
    echo.pop("credential", None)
    try:
        if view.get("adapter"):  # partner endpoints: name and adapter settings; blank inputs keep theirs
            kind = view["adapter"]["type"]
            ep = endpoint_service.get_endpoint(session, account, endpoint_id)
            settings = {**rt.adapter_settings(ep), **adapter_settings(form, kind)}
            data = load(EndpointUpdateSchema(partial=True), {"name": form.get("name", "").strip(),
                                                             "adapter": {"type": kind, "settings": settings}})
        else:
            raw = endpoint_data(form)  # the edit form has no "kind": a protocol endpoint stays one
            if raw.get("credential") is None:
                raw.pop("credential")  # blank: keep the stored credential
            data = load_endpoint(EndpointCreateSchema(), raw, allow_private=rt.config.allow_private_urls)
            if "credential" not in raw:
                data.pop("credential", None)
        endpoint_service.update_endpoint(rt, session, account, endpoint_id, data)
        session.commit()
    except ExchangeError as err:
        session.rollback()
        return _edit_page(view, echo, FormInvalid.from_error(err), 422)
    except FormInvalid as invalid:
        return _edit_page(view, echo, invalid, 422)
    flash(f"{data.get('name') or view['name']} saved.", "ok")
    return redirect(url_for("web.endpoint_detail", endpoint_id=endpoint_id))


@web.route("/endpoints/<endpoint_id>/delete", methods=["GET", "POST"])
def endpoint_delete(endpoint_id: str):
    """Ask, then delete the endpoint with its audiences and the shares using it."""
    rt, session, account = runtime(), db(), g.principal.account_id
    ep = endpoint_service.get_endpoint(session, account, endpoint_id)
    shares, total = share_service.list_shares(session, account, destination_id=ep.id, page_size=50)
    sourced = [s for s in share_service.list_shares(session, account, page_size=500)[0]
               if (a := get_audience(session, account, s.audience_id)) and a.endpoint_id == ep.id]
    if request.method == "GET":
        return render_template("confirm_delete.html", what=f"the endpoint {ep.name}",
                               consequences=_endpoint_consequences(ep, len({s.id for s in shares + sourced})),
                               action=url_for("web.endpoint_delete", endpoint_id=ep.id),
                               back=url_for("web.endpoint_detail", endpoint_id=ep.id))
    name = ep.name
    endpoint_service.delete_endpoint(rt, session, account, endpoint_id)
    session.commit()
    flash(f"{name} was deleted.", "ok")
    return redirect(url_for("web.endpoints_list"))


def _endpoint_consequences(ep, shares: int) -> list[str]:
    out = [f"{shares} share{'s' if shares != 1 else ''} using it will be deleted with their jobs."]
    if ep.producer_transport:
        out.append("Its audiences leave the catalog; uploaded data and job files are removed.")
    out.append("Its endpoint keys stop working.")
    return out


@web.route("/endpoints/<endpoint_id>/conformance", methods=["POST"])
def endpoint_conformance(endpoint_id: str):
    """Run ``exchange-toolkit conformance`` against the endpoint with its stored credential."""
    from ..toolkit.conformance import Checker

    rt, session, account = runtime(), db(), g.principal.account_id
    ep = endpoint_service.get_endpoint(session, account, endpoint_id)
    if not ep.contact_url or ep.adapter_type:
        abort(404)
    roles = [r for r, ok in (("producer", ep.producer_transport == "pull"),
                             ("consumer", ep.consumer_transport == "push")) if ok]
    token = endpoint_service.credential(rt, ep)
    identifier = next((i for i in ("email_sha256", "email", "phone_sha256", "phone_e164", "maid",
                                   "customer_id", "cookie_id") if i in (ep.identifiers or [])), "email_sha256")
    results = []
    if roles:
        with rt.http() as http:  # the exchange's guarded session: same address policy as jobs
            checker = Checker(ep.contact_url, token, roles=roles, identifier=identifier, gzip=bool(ep.consumer_gzip),
                              wait=10.0, timeout=15.0, session=http)
            results = list(checker.run())
    from .endpoints import _detail

    return _detail(endpoint_id, conformance={"results": results, "roles": roles,
                                             "failed": sum(r.status == "fail" for r in results)})


# ---------------------------------------------------------------- shares
def _share_form(share: dict) -> dict:
    schedule = share["schedule"] or {}
    form = {"destination_audience": share["destination_audience"], "mode": share["mode"],
            "delta": "on" if share["delta"] else "", "reject_threshold": f"{share['reject_threshold'] * 100:g}",
            "default_country": share.get("default_country") or "", "when": schedule.get("type", "now"),
            "timezone": schedule.get("timezone", "UTC"), "cron": schedule.get("cron", "0 6 * * *"),
            "every_count": "6", "every_unit": "hours", "at": (schedule.get("at") or "")[:16]}
    every = schedule.get("every") or ""
    for unit, pattern in INTERVAL_UNITS.items():
        prefix, suffix = pattern.split("{}")
        if every.startswith(prefix) and every.endswith(suffix) and every[len(prefix):-len(suffix)].isdigit():
            form["every_count"], form["every_unit"] = every[len(prefix):-len(suffix)], unit
            break
    return form


def _share_page(share: dict, form: dict, rows: list[dict], invalid: FormInvalid | None = None, status: int = 200):
    session, account = db(), g.principal.account_id
    return render_template(
        "shares/edit.html", share=share, form=form, rows=rows,
        audience=get_audience(session, account, share["audience_id"]),
        destination=endpoint_service.get_endpoint(session, account, share["destination_id"]),
        transforms=[t for t in TRANSFORMS if t != "none"], transform_help=TRANSFORM_HELP,
        errors=invalid.errors if invalid else {}, summary=invalid.detail if invalid else None), status


@web.route("/shares/<share_id>/edit", methods=["GET", "POST"])
def share_edit(share_id: str):
    """Change a share's mapping, mode, delta, threshold and schedule (a run now stays a run now)."""
    from ..models import utcnow
    from .shares import _form_rows, _renumber

    rt, session, account = runtime(), db(), g.principal.account_id
    share = share_service.share_view(share_service.get_share(session, account, share_id))
    if request.method == "GET":
        rows = [{"source": r["source"], "target": r["target"], "transform": r.get("transform") or []}
                for r in share["mapping"]]
        aud = get_audience(session, account, share["audience_id"])
        mapped = {r["source"] for r in rows}
        rows += [{"source": c, "target": "", "transform": []}
                 for c in audience_view(session, aud)["columns"] if c not in mapped]
        return _share_page(share, _share_form(share), rows)
    form = request.form
    errors: dict[str, list[str]] = {}
    schedule, schedule_errors = schedule_from_form(form)
    errors.update(schedule_errors)
    if not schedule_errors and schedule["type"] != "now":  # checked now, so every error shows at once
        errors.update(preview(schedule, utcnow(), 1).get("errors") or {})
    rules, origin = mapping_from_form(form)
    body = {"destination_audience": (form.get("destination_audience") or "").strip(), "mapping": rules,
            "mode": form.get("mode", "add"), "delta": form.get("delta") == "on",
            "default_country": optional((form.get("default_country") or "").upper())}
    if schedule["type"] != "now" and not schedule_errors:
        body["schedule"] = schedule
    threshold = (form.get("reject_threshold") or "").strip()
    try:
        body["reject_threshold"] = float(threshold) / 100 if threshold else 0.1
    except ValueError:
        errors["reject_threshold"] = ["Enter a percentage between 0 and 100."]
    try:
        try:
            data = load(ShareUpdateSchema(), body)
        except FormInvalid as invalid:
            invalid.errors = {**invalid.errors, **errors}
            raise
        if errors:
            raise FormInvalid("Please correct the fields marked below.", errors)
        share_service.update_share(rt, session, account, share_id, data)
        session.commit()
    except (ExchangeError, FormInvalid) as err:
        session.rollback()
        invalid = err if isinstance(err, FormInvalid) else FormInvalid.from_error(err)
        invalid.errors = _renumber(invalid.errors, origin)
        return _share_page(share, {k: form.get(k) for k in form}, _form_rows(form), invalid, 422)
    flash("Share saved.", "ok")
    return redirect(url_for("web.shares_list"))


@web.route("/shares/<share_id>/delete", methods=["GET", "POST"])
def share_delete(share_id: str):
    """Ask, then delete the share (its running jobs are cancelled; past jobs stay visible)."""
    rt, session, account = runtime(), db(), g.principal.account_id
    share = share_service.get_share(session, account, share_id)
    label = f"the share to “{share.destination_audience}”"
    if request.method == "GET":
        return render_template("confirm_delete.html", what=label,
                               consequences=["Its schedule stops; a job still running is cancelled.",
                                             "The destination keeps what it already received."],
                               action=url_for("web.share_delete", share_id=share.id),
                               back=url_for("web.shares_list"))
    share_service.delete_share(rt, session, account, share_id)
    session.commit()
    flash(f"Deleted {label}.", "ok")
    return redirect(url_for("web.shares_list"))
