"""Share pages: the list (pause, resume, run now) and the wizard, with its two small JSON helpers.

The wizard is one page whose sections (audience → destination → mapping → mode → when) are driven
by ``app.js``; it posts one form that is validated by :class:`ShareCreateSchema` and created by
:func:`exchange.shares.service.create_share`, exactly as ``POST /v1/shares``. ``/ui/wizard/mapping``
returns the suggested mapping and the destination's requirements; ``/ui/schedule/preview`` returns
a readable description and the next run times.
"""
from __future__ import annotations

import re

from flask import flash, g, jsonify, redirect, render_template, request, url_for

from ..adapters.registry import describe, get_adapter
from ..api.context import db, runtime
from ..catalog.audiences import audience_view, get_audience, search
from ..catalog.endpoints import get_endpoint, list_endpoints
from ..errors import ExchangeError
from ..models import utcnow
from ..schemas.shares import ShareCreateSchema
from ..shares import service
from ..transfer.mapping import TRANSFORMS
from .blueprint import web
from .forms import FormInvalid, load, optional, words
from .wizard import (
    TRANSFORM_HELP,
    describe_destination,
    mapping_from_form,
    preview,
    schedule_from_form,
    suggest_mapping,
)

_MAPPING_KEY = re.compile(r"^mapping\.(\d+)(\..*)?$")


def _destination_info(dest) -> dict:
    adapter = describe(get_adapter(dest.adapter_type)) if dest.adapter_type else None
    return describe_destination(service.destination_capabilities(dest), adapter)


@web.route("/shares")
def shares_list():
    """Every share of the account with its schedule, next run and last job."""
    session, account = db(), g.principal.account_id
    shares, _ = service.list_shares(session, account, page_size=500)
    rows = []
    for share in shares:
        rows.append({"share": service.share_view(share),
                     "audience": get_audience(session, account, share.audience_id),
                     "destination": get_endpoint(session, account, share.destination_id),
                     "last_job": service.get_job(session, account, share.last_job_id) if share.last_job_id
                     else None})
    return render_template("shares/list.html", rows=rows)


@web.route("/shares/<share_id>/<any(pause, resume):action>", methods=["POST"])
def share_status(share_id: str, action: str):
    """Pause or resume a share's schedule."""
    session = db()
    service.set_share_status(session, g.principal.account_id, share_id, "paused" if action == "pause" else "active")
    session.commit()
    flash(f"Share {'paused' if action == 'pause' else 'resumed'}.", "ok")
    return redirect(url_for("web.shares_list"))


@web.route("/shares/<share_id>/run", methods=["POST"])
def share_run(share_id: str):
    """Run a share now and follow its job."""
    rt, session = runtime(), db()
    job = service.run_share_now(rt, session, g.principal.account_id, share_id)
    session.commit()
    rt.executor.wake()
    return redirect(url_for("web.job_detail", job_id=job.id))


def _choices() -> tuple[list[dict], list]:
    session, account = db(), g.principal.account_id
    audiences, _ = search(session, account, page_size=1000)
    producers = {e.id: e.name for e in list_endpoints(session, account, role="producer", page_size=500)[0]}
    choices = [{**audience_view(session, a), "producer": producers.get(a.endpoint_id, "")} for a in audiences]
    destinations, _ = list_endpoints(session, account, role="consumer", status="active", page_size=500)
    return choices, destinations


def _wizard(form: dict, rows: list[dict], invalid: FormInvalid | None = None, status: int = 200):
    audiences, destinations = _choices()
    dest_info = None
    if form.get("destination_id"):
        dest = next((d for d in destinations if d.id == form["destination_id"]), None)
        dest_info = _destination_info(dest) if dest else None
    schedule, _ = schedule_from_form(form) if form.get("when") else ({"type": "now"}, {})
    return render_template(
        "shares/new.html", form=form, rows=rows, audiences=audiences, destinations=destinations,
        dest_info=dest_info, transforms=[t for t in TRANSFORMS if t != "none"], transform_help=TRANSFORM_HELP,
        preview=preview(schedule, utcnow()), errors=invalid.errors if invalid else {},
        summary=invalid.detail if invalid else None), status


@web.route("/shares/new")
def shares_new():
    """The share wizard, pre-filled from ``?audience=`` (and ``?destination=``)."""
    session, account = db(), g.principal.account_id
    form = {"audience_id": request.args.get("audience", ""), "destination_id": request.args.get("destination", ""),
            "mode": "add", "when": "now", "reject_threshold": "10", "every_count": "6", "every_unit": "hours",
            "cron": "0 6 * * *", "timezone": "UTC"}
    rows: list[dict] = []
    if form["audience_id"]:
        aud = get_audience(session, account, form["audience_id"])
        form["destination_audience"] = aud.name
        if form["destination_id"]:
            dest = get_endpoint(session, account, form["destination_id"])
            caps = service.destination_capabilities(dest)
            rows = suggest_mapping(audience_view(session, aud)["columns"], caps["identifiers"], caps["attributes"])
    return _wizard(form, rows)


def _share_body(form) -> tuple[dict, list[int], dict]:
    schedule, errors = schedule_from_form(form)
    if not errors:
        # the service accepts any valid schedule; a person picking "later" also needs it in the future
        errors = preview(schedule, utcnow(), 1).get("errors") or {}
    rules, origin = mapping_from_form(form)
    body = {"audience_id": form.get("audience_id", ""), "destination_id": form.get("destination_id", ""),
            "destination_audience": optional(form.get("destination_audience")), "mapping": rules,
            "mode": form.get("mode", "add"), "schedule": schedule, "delta": form.get("delta") == "on",
            "default_country": optional((form.get("default_country") or "").upper())}
    if body["destination_audience"] is None:
        body.pop("destination_audience")
    threshold = (form.get("reject_threshold") or "").strip()
    try:
        body["reject_threshold"] = float(threshold) / 100 if threshold else 0.1
    except ValueError:
        errors["reject_threshold"] = ["Enter a percentage between 0 and 100."]
    return body, origin, errors


def _form_rows(form) -> list[dict]:
    rows, i = [], 0
    while f"mapping-{i}-source" in form:
        rows.append({"source": form.get(f"mapping-{i}-source", ""), "target": form.get(f"mapping-{i}-target", ""),
                     "transform": words(form.get(f"mapping-{i}-transform"))})
        i += 1
    return rows


def _renumber(errors: dict, origin: list[int]) -> dict:
    """``mapping.<k>`` of the submitted rules → ``mapping.<row>`` of the form's table."""
    out = {}
    for key, messages in errors.items():
        match = _MAPPING_KEY.match(key)
        if match and int(match.group(1)) < len(origin):
            key = f"mapping.{origin[int(match.group(1))]}{match.group(2) or ''}"
        out.setdefault(key, []).extend(messages)
    return out


@web.route("/shares/new", methods=["POST"])
def shares_create():
    """Create the share; a share that runs now opens its job page."""
    form = request.form
    echo = {k: form.get(k) for k in form}
    body, origin, early = _share_body(form)
    rt, session = runtime(), db()
    try:
        if early:
            raise FormInvalid("Please correct the fields marked below.", early)
        data = load(ShareCreateSchema(), body)
        share = service.create_share(rt, session, g.principal.account_id, data)
        session.commit()
    except (ExchangeError, FormInvalid) as err:
        session.rollback()
        invalid = err if isinstance(err, FormInvalid) else FormInvalid.from_error(err)
        invalid.errors = _renumber(invalid.errors, origin)
        return _wizard(echo, _form_rows(form), invalid, 422)
    rt.executor.wake()
    if share.schedule["type"] == "now" and share.last_job_id:
        return redirect(url_for("web.job_detail", job_id=share.last_job_id))
    flash(f"Share created: {service.describe(share.schedule)}.", "ok")
    return redirect(url_for("web.shares_list"))


@web.route("/ui/wizard/mapping")
def wizard_mapping():
    """JSON: the suggested mapping for an audience and a destination, and what the destination takes."""
    session, account = db(), g.principal.account_id
    aud = get_audience(session, account, request.args.get("audience", ""))
    dest = get_endpoint(session, account, request.args.get("destination", ""))
    caps = service.destination_capabilities(dest)
    columns = audience_view(session, aud)["columns"]
    return jsonify({"columns": columns, "destination": _destination_info(dest) | {"name": dest.name},
                    "rows": suggest_mapping(columns, caps["identifiers"], caps["attributes"]),
                    "audience_name": aud.name})


@web.route("/ui/schedule/preview")
def schedule_preview():
    """JSON: a readable description and the next five runs of the schedule in the query string."""
    schedule, errors = schedule_from_form(request.args)
    if errors:
        return jsonify({"errors": errors})
    return jsonify(preview(schedule, utcnow()))
