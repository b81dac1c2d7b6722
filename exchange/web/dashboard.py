"""The home page: what the account has, the latest jobs, and the next step for a new account."""
from __future__ import annotations

from flask import g, render_template

from ..api.context import db
from ..catalog.audiences import search
from ..catalog.endpoints import list_endpoints
from ..shares.service import list_jobs, list_shares
from .blueprint import web


@web.route("/")
def dashboard():
    """Counts of endpoints, audiences and shares, and the five latest jobs."""
    session, account = db(), g.principal.account_id
    _, endpoints = list_endpoints(session, account, page_size=1)
    _, audiences = search(session, account, page_size=1)
    _, shares = list_shares(session, account, page_size=1)
    jobs, _ = list_jobs(session, account, page_size=5)
    return render_template("dashboard.html", endpoints=endpoints, audiences=audiences, shares=shares, jobs=jobs)
