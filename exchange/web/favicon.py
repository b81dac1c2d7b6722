"""``/favicon.ico``: browsers ask for it on every site, signed in or not; answer with the SVG icon."""
from __future__ import annotations

from flask import redirect, url_for

from .blueprint import web
from .session import PUBLIC_ENDPOINTS

PUBLIC_ENDPOINTS.add("web.favicon")


@web.route("/favicon.ico")
def favicon():
    """The site icon (pages also link it with ``<link rel="icon">``)."""
    response = redirect(url_for("web.static", filename="favicon.svg"), code=301)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
