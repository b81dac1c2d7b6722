"""The demo's Click to Connect: the CRM and the ad platform are applications of a provider account,
approved, and connected to the Demo account — the CRM with a key, the ad platform by OAuth 2.0 consent.

The demo plays every part, in this order: the provider (defines and submits through the services),
the operator (approves), and the user (connects through the API; for the consent it answers the
reference endpoint's consent page with "Allow", as a user's click would). On a restart it reuses
what exists; when a reference endpoint moved to another port, the application's next version
carries the new URL, is approved, and the connected endpoint follows it.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from .toolkit.client import Client, NotFound
from .toolkit.ref_oauth import OAuthSettings

PROVIDER_NAME = "Demo providers"


def oauth_settings(saved: dict, exchange_url: str, state_file: str) -> OAuthSettings:
    """The ad platform's authorization server: its client is the exchange."""
    saved.setdefault("client_secret", secrets.token_urlsafe(24))
    return OAuthSettings(client_id="audience-exchange-demo", client_secret=saved["client_secret"],
                         redirect_uris=[f"{exchange_url}/v1/connect/callback"], scopes=["audiences"],
                         state_file=state_file)


def ensure_provider(rt, state: dict) -> str:
    """The provider account (reused by id, else by name); returns its id."""
    from .auth.keys import create_account
    from .models import Account

    with rt.db.session() as s:
        account = s.get(Account, state["provider_account_id"]) if state.get("provider_account_id") else None
        if account is None:
            account = s.scalar(select(Account).where(Account.name == PROVIDER_NAME))
        if account is None:
            account, _token = create_account(s, PROVIDER_NAME)
        state["provider_account_id"] = account.id
    return state["provider_account_id"]


def _definition(name: str, body: dict, url: str, saved: dict) -> dict:
    spec = {k: v for k, v in body.items() if k not in ("credential", "name")}
    spec.update(name=name, contact_url=url, description=body.get("description", ""))
    if saved.get("client_secret"):
        spec["auth"] = {"type": "oauth2", "authorize_url": f"{url}/oauth/authorize", "token_url": f"{url}/oauth/token",
                        "revocation_url": f"{url}/oauth/revoke", "client_id": "audience-exchange-demo",
                        "client_secret": saved["client_secret"], "scopes": ["audiences"]}
    else:
        spec["auth"] = {"type": "key"}
    return spec


def ensure_application(rt, provider_id: str, saved: dict, name: str, body: dict, url: str) -> str:
    """Define, submit and approve the application; a changed URL or secret becomes an approved new version."""
    from .applications import registry
    from .models import Application

    spec = _definition(name, body, url, saved)
    with rt.db.session() as s:
        app = s.get(Application, saved["application_id"]) if saved.get("application_id") else None
        if app is None or app.account_id != provider_id:
            app = next((a for a in s.scalars(select(Application).where(Application.account_id == provider_id))
                        if a.spec.get("name") == name), None)
        if app is None:
            app, _ = registry.create_application(rt, s, provider_id, spec)
            registry.submit_application(s, provider_id, app.id)
            registry.approve(s, app.id, "demo", actor="operator:demo")
        else:
            secret = (spec.get("auth") or {}).get("client_secret")
            stale = app.spec.get("contact_url") != url or (
                secret and (not app.client_secret_enc or rt.secrets.decrypt(app.client_secret_enc) != secret))
            if app.state != "approved" or stale:
                registry.update_application(rt, s, provider_id, app.id, spec)
                registry.submit_application(s, provider_id, app.id)
                registry.approve(s, app.id, "demo: the reference endpoint moved", actor="operator:demo")
        saved["application_id"] = app.id
    return saved["application_id"]


def _consent(client: Client, application_id: str, name: str) -> str:
    """The OAuth 2.0 consent, as the user's browser would do it; returns the new endpoint's id."""
    url = client.connect_application(application_id, {"method": "oauth2", "name": name})["authorize_url"]
    # the user clicks "Allow" on the provider's consent page
    answer = requests.post(url, data={"decision": "allow"}, allow_redirects=False, timeout=10)
    callback = answer.headers.get("Location", "")
    if answer.status_code != 302 or "code=" not in callback:
        raise RuntimeError(f"the demo ad platform did not grant consent (HTTP {answer.status_code})")
    back = requests.get(callback, allow_redirects=False, timeout=30)
    target = back.headers.get("Location", "")
    if back.status_code != 302 or "/endpoints/" not in target:
        raise RuntimeError(f"the exchange refused the consent's callback (HTTP {back.status_code})")
    return urlsplit(target).path.rstrip("/").rsplit("/", 1)[-1]


def ensure_connected(client: Client, saved: dict, name: str, application_id: str, credential: str | None) -> dict:
    """The Demo account's endpoint connected from the application (reused, adopted by name, or connected)."""
    current = None
    if saved.get("id"):
        try:
            current = client.get_endpoint(saved["id"])
        except NotFound:
            current = None
    if current is None:
        for candidate in client.iterate(client.list_endpoints, q=name):
            if candidate["name"] == name and candidate.get("application_id") == application_id:
                current = candidate
                saved.pop("endpoint_key", None)
    if current is not None and current.get("application_id") != application_id:
        current = None  # registered by hand by an older demo: connect the application instead
    if current is None:
        saved.pop("endpoint_key", None)
        if credential is None:
            saved["id"] = _consent(client, application_id, name)
        else:
            created = client.connect_application(application_id, {"name": name, "credential": credential})
            saved.update(id=created["id"], endpoint_key=created["endpoint_key"])
    else:
        saved["id"] = current["id"]
        if current.get("status") == "disabled" and credential is None:
            # the provider no longer honours the tokens (e.g. its state was lost): consent again
            client.delete_endpoint(current["id"])
            saved["id"] = _consent(client, application_id, name)
    if not saved.get("endpoint_key"):
        saved["endpoint_key"] = client.create_key("demo", scope="endpoint", endpoint_id=saved["id"])["key"]
    return saved
