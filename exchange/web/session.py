"""Signing in and out, the session principal, CSRF tokens, error pages and security headers.

The Flask session (a signed, HttpOnly, SameSite=Lax cookie; ``Secure`` when
``Config.session_cookie_secure``) holds only the user id, the account id and the CSRF token. Each
request reloads the user, so a deleted user is signed out at once.
"""
from __future__ import annotations

import hmac
import math
import secrets
from urllib.parse import urlsplit

from flask import abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..api.context import db, runtime
from ..api.middleware import limiter
from ..auth.keys import Principal
from ..auth.users import check_login
from ..errors import ExchangeError
from ..models import User
from .blueprint import web
from .format import register_filters

# pages reachable without signing in
PUBLIC_ENDPOINTS = {"web.login", "web.static"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _load_principal() -> Principal | None:
    """The signed-in user as a principal, or None (and a cleared session when the user is gone)."""
    uid = session.get("uid")
    if not uid:
        return None
    user = db().get(User, uid)
    if user is None or user.account_id != session.get("aid"):
        session.pop("uid", None)
        session.pop("aid", None)
        return None
    g.user = user
    return Principal(account_id=user.account_id, scope="user", user_id=user.id)


@web.before_request
def _page_guard() -> Response | None:
    if request.endpoint == "web.static":
        return None
    g.principal = _load_principal()
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, "The form expired or did not come from this site; reload the page and try again.")
    if g.principal is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    return None


@web.before_app_request
def _api_session() -> None:
    """Let a signed-in browser read ``/v1/*`` (GET/HEAD only, no Authorization header)."""
    if (request.path.startswith("/v1/") and request.method in ("GET", "HEAD")
            and "Authorization" not in request.headers and getattr(g, "principal", None) is None):
        g.principal = _load_principal()


@web.after_request
def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "web.static":
        resp.headers["Cache-Control"] = "no-store"  # pages may show a secret once
    return resp


@web.errorhandler(ExchangeError)
def _exchange_error(err: ExchangeError):
    return render_template("error.html", status=err.status, title=err.title, detail=err.detail), err.status


@web.errorhandler(400)
@web.errorhandler(404)
@web.errorhandler(405)
def _http_error(err):
    return render_template("error.html", status=err.code, title=err.name, detail=err.description), err.code


@web.app_context_processor
def _template_globals() -> dict:
    return {"csrf_token": csrf_token, "current_user": getattr(g, "user", None)}


register_filters(web)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an absolute URL or a scheme-relative ``//host``."""
    if not target:
        return url_for("web.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("web.dashboard")
    return target


def _login_key(email: str) -> str:
    return f"login:{email.strip().lower()[:200]}:{request.remote_addr or '-'}"


def _login_throttle(email: str):
    """Brute-force guard: ``login_attempts`` tries per ``login_window_seconds`` for one account from
    one address (and ten times that for any accounts from one address). Attempts refill steadily,
    so a locked-out user waits seconds, not indefinitely; a success clears the account's count."""
    cfg = runtime().config
    lim = limiter()
    wait = lim.attempt(_login_key(email), limit=cfg.login_attempts, window=cfg.login_window_seconds)
    if not wait:
        wait = lim.attempt(f"login-addr:{request.remote_addr or '-'}", limit=10 * cfg.login_attempts,
                           window=cfg.login_window_seconds)
    if not wait:
        return None
    seconds = max(1, math.ceil(wait))
    error = (f"Too many sign-in attempts for this account from your network address. Wait {seconds} "
             f"second{'s' if seconds != 1 else ''} and try again.")
    page = render_template("login.html", email=email, next=request.form.get("next", ""), error=error)
    return page, 429, {"Retry-After": str(seconds)}


@web.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with the email and password of a user of the account."""
    if request.method == "GET":
        if g.principal is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", email="", error=None, next=request.args.get("next", ""))
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    throttled = _login_throttle(email)
    if throttled is not None:
        return throttled
    user = check_login(db(), email, password) if email and password else None
    if user is None:
        db().rollback()
        return render_template("login.html", email=email, next=request.form.get("next", ""),
                               error="Wrong email or password."), 401
    limiter().reset(_login_key(email))
    db().commit()
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    session["uid"], session["aid"] = user.id, user.account_id
    csrf_token()
    return redirect(_safe_next(request.form.get("next")))


@web.route("/logout", methods=["POST"])
def logout():
    """Sign out: the session cookie is emptied."""
    session.clear()
    return redirect(url_for("web.login"))
