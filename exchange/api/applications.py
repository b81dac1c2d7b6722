"""Endpoint applications (providers define, operators review) and Click to Connect (accounts connect)."""
from __future__ import annotations

from flask import Response, current_app, g, jsonify, redirect, render_template, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from ..applications import connect as connecting
from ..applications import registry as service
from ..catalog.endpoints import endpoint_view
from ..errors import ExchangeError
from ..schemas.applications import (
    ApplicationCreatedSchema,
    ApplicationCreateSchema,
    ApplicationQueryArgsSchema,
    ApplicationSchema,
    ApplicationUpdateSchema,
    AuthorizeUrlSchema,
    CallbackArgsSchema,
    ConnectedEndpointSchema,
    ConnectSchema,
    DirectoryEntrySchema,
)
from ..schemas.common import page_of
from .context import control_plane, db, runtime

blp = Blueprint("applications", __name__, url_prefix="/v1",
                description="Endpoint applications: a provider defines one, an operator approves it, every "
                            "account connects it (Click to Connect) with a key or OAuth 2.0 consent")
ApplicationPageSchema = page_of(ApplicationSchema, "ApplicationPageSchema")
DirectoryPageSchema = page_of(DirectoryEntrySchema, "DirectoryPageSchema")


def callback_url() -> str:
    """The redirect URI registered with providers: ``{public_url}/v1/connect/callback``."""
    public = runtime().config.public_url.rstrip("/")
    if public:
        return public + "/v1/connect/callback"
    return url_for("applications.ConnectCallback", _external=True)


@blp.route("/applications")
class Applications(MethodView):
    @blp.arguments(ApplicationQueryArgsSchema, location="query")
    @blp.response(200, ApplicationPageSchema)
    @blp.alt_response(200, schema=DirectoryPageSchema, description="With directory=true: approved applications",
                      success=True)
    def get(self, args):
        """The caller's own applications, or (``directory=true``) every approved application."""
        session, directory = db(), args.pop("directory")
        items, total = service.list_applications(session, control_plane().account_id, directory=directory, **args)
        view = service.directory_view if directory else service.application_view
        schema = DirectoryEntrySchema() if directory else ApplicationSchema()
        return jsonify({"items": [schema.dump(view(session, a)) for a in items], "page": args["page"],
                        "page_size": args["page_size"], "total": total})

    @blp.arguments(ApplicationCreateSchema)
    @blp.response(201, ApplicationCreatedSchema)
    def post(self, data):
        """Define an application (a draft); the client secret is write-only, encrypted at rest."""
        rt, session = runtime(), db()
        app, webhook_secret = service.create_application(rt, session, control_plane().account_id, data)
        session.commit()
        return {**service.application_view(session, app), "webhook_secret": webhook_secret}


@blp.route("/applications/<application_id>")
class ApplicationById(MethodView):
    @blp.response(200, ApplicationSchema)
    def get(self, application_id):
        """One of the caller's applications, with its review state (and next version, if any)."""
        session = db()
        return service.application_view(session, service.get_application(session, control_plane().account_id,
                                                                          application_id))

    @blp.arguments(ApplicationUpdateSchema(partial=True))
    @blp.response(200, ApplicationSchema)
    def patch(self, data, application_id):
        """Edit a draft; editing an approved application opens its next version (reviewed again)."""
        session = db()
        app = service.update_application(runtime(), session, control_plane().account_id, application_id, data)
        session.commit()
        return service.application_view(session, app)


@blp.route("/applications/<application_id>/submit")
class SubmitApplication(MethodView):
    @blp.response(200, ApplicationSchema)
    def post(self, application_id):
        """Send the draft (or the next version) to the operator's review."""
        session = db()
        app = service.submit_application(session, control_plane().account_id, application_id)
        session.commit()
        return service.application_view(session, app)


@blp.route("/applications/<application_id>/connect")
class ConnectApplication(MethodView):
    @blp.arguments(ConnectSchema)
    @blp.response(201, ConnectedEndpointSchema, description="Connected with a key: the new endpoint")
    @blp.alt_response(200, schema=AuthorizeUrlSchema, success=True,
                      description="method oauth2: send the user's browser to authorize_url")
    def post(self, data, application_id):
        """Connect an approved application to the caller's account (Click to Connect)."""
        rt, session, principal = runtime(), db(), control_plane()
        if data["method"] == "oauth2":
            url, expires = connecting.start_oauth(rt, session, principal, application_id,
                                                  redirect_uri=callback_url(), return_to=data.get("return_to"),
                                                  name=data.get("name"))
            session.commit()
            return jsonify(AuthorizeUrlSchema().dump({"authorize_url": url, "expires_at": expires}))
        ep, key = connecting.connect_with_key(rt, session, principal.account_id, application_id,
                                              credential=data["credential"], name=data.get("name"))
        session.commit()
        _gather(ep.id)
        session.refresh(ep)
        return {**endpoint_view(ep), "endpoint_key": key, "webhook_secret": None}


def _gather(endpoint_id: str) -> None:
    from ..catalog.gather import gather_on_registration

    gather_on_registration(runtime(), endpoint_id)


def _wants_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "application/problem+json", "text/html"])
    return best == "text/html"


@blp.route("/connect/callback")
class ConnectCallback(MethodView):
    @blp.arguments(CallbackArgsSchema, location="query")
    @blp.response(302, description="Connected: redirect to return_to (default: the endpoint's page)")
    def get(self, args):
        """Where the provider sends the user's browser back after consent (OAuth 2.0 redirect URI)."""
        rt, session = runtime(), db()
        try:
            done = connecting.finish_oauth(rt, session, getattr(g, "principal", None), state=args.get("state"),
                                           code=args.get("code"), error=args.get("error"),
                                           error_description=args.get("error_description"),
                                           redirect_uri=callback_url())
            session.commit()
        except ExchangeError as err:
            session.rollback()
            current_app.logger.info("connect callback failed: %s", err.detail)
            if _wants_html():
                page = render_template("applications/connect_failed.html", status=err.status, title=err.title,
                                       detail=err.detail)
                return Response(page, status=err.status, mimetype="text/html")
            raise
        _gather(done.endpoint.id)
        return redirect(done.return_to or url_for("web.endpoint_detail", endpoint_id=done.endpoint.id), 302)
