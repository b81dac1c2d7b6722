"""The web interface: server-rendered pages of the same Flask app, for the users of an account.

Pages call the same services as the JSON API (never raw SQL). A signed-in user is a
:class:`~exchange.auth.keys.Principal` with ``scope="user"``, set on ``flask.g`` by
:mod:`exchange.web.session` — for the pages, and for ``GET``/``HEAD`` requests to ``/v1/*`` without an
``Authorization`` header, so the job page can poll ``/v1/jobs/{id}`` and download
``/v1/jobs/{id}/rejects`` with the session cookie. Mutating ``/v1`` calls still need a bearer key, so
CSRF cannot reach the JSON API; every page form carries a CSRF token.
"""
from __future__ import annotations

from flask import Flask

from .blueprint import web

__all__ = ["register", "web"]


def register(app: Flask) -> None:
    """Attach the pages, the session hooks and the template helpers to ``app``."""
    from . import (  # noqa: F401 - importing registers the routes on the blueprint
        applications,
        catalog,
        dashboard,
        edit,
        endpoints,
        favicon,
        jobs,
        keys,
        session,
        shares,
        webhooks,
    )

    app.register_blueprint(web)
