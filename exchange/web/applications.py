"""Click to Connect pages: the directory of approved applications, the provider console, operator review."""
from __future__ import annotations

from flask import g, render_template

from ..api.context import db
from ..applications import registry as service
from . import web


@web.route("/applications")
def applications_directory():
    """Approved applications any account can connect."""
    session = db()
    items, _ = service.list_applications(session, g.principal.account_id, directory=True, page_size=500)
    return render_template("applications/directory.html",
                           applications=[service.directory_view(session, a) for a in items])
