"""``exchange demo``: the product working end to end in one command, on loopback.

:func:`run_demo` migrates the database, creates (or, on a restart, reuses) a "Demo" account with a
web user and an API key, starts three reference endpoints in this process — a CRM (PULL producer over
``sample_data/crm``), an ad platform (PUSH consumer writing to ``<var_dir>/demo/ads``) and a
warehouse (PULL consumer that pulls with ``exchange-toolkit pull``) — registers them through the
API with the toolkit client, creates two shares (loyal customers to the ad platform now, newsletter
subscribers to the warehouse every hour with delta), runs them, and prints where everything is.

What it created is remembered in ``<var_dir>/demo.json`` (readable by its owner only: it holds the
demo's key and password), so running it again reuses the account, endpoints and shares.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from werkzeug.serving import make_server

from .config import Config
from .errors import ConfigError
from .toolkit.client import Client, NotFound, ToolkitError
from .toolkit.reference_endpoint import ReferenceEndpoint

DEMO_EMAIL = "demo@example.com"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "crm"
EMAIL_SHA256 = {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}
ADS_AUDIENCE = "Loyal customers"
WAREHOUSE_AUDIENCE = "Newsletter subscribers"
JOB_WAIT_SECONDS = 120.0
# endpoints connected from applications (name in the directory), not registered by hand
CONNECTED = {"crm": "Reference CRM", "ads": "Reference ad platform"}


@dataclass
class DemoInfo:
    """What the demo set up; also what ``demo.json`` stores (without the runtime-only fields)."""

    url: str
    account_id: str
    api_key: str
    email: str
    password: str
    endpoint_ids: dict[str, str]
    share_ids: dict[str, str]
    warehouse_key: str
    ads_file: Path
    warehouse_dir: Path
    state_file: Path
    reused: bool
    jobs: dict[str, dict] = field(default_factory=dict)


def _load_state(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); delete it to start the demo afresh") from exc
    return data if isinstance(data, dict) else {}


def _save_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2)
    tmp.replace(path)


def _ensure_account(rt, state: dict) -> bool:
    """Make ``state`` name a live Demo account, user and working key; True when they already existed."""
    from sqlalchemy import select
    from werkzeug.security import generate_password_hash

    from .auth.keys import authenticate, create_account, issue_key
    from .auth.users import create_user
    from .errors import Unauthorized
    from .models import Account, User

    with rt.db.session() as s:
        account = s.get(Account, state["account_id"]) if state.get("account_id") else None
        user = s.scalar(select(User).where(User.email == DEMO_EMAIL))
        if account is None and user is not None:
            account = s.get(Account, user.account_id)  # the database outlived demo.json
        reused = account is not None
        if account is None:
            account, state["api_key"] = create_account(s, "Demo")
        state["account_id"] = account.id
        try:
            if authenticate(s, state.get("api_key") or "").account_id != account.id:
                raise Unauthorized()
        except Unauthorized:
            state["api_key"] = issue_key(s, account.id, name="demo")[1]
        if not state.get("password") or user is None or user.account_id != account.id:
            state["password"] = secrets.token_urlsafe(12)
            if user is None:
                create_user(s, account.id, DEMO_EMAIL, state["password"])
            else:
                user.password_hash = generate_password_hash(state["password"])
    return reused


def _start_endpoint(saved: dict, **kwargs) -> ReferenceEndpoint:
    """Start on the port of the last run when it is free, so registered URLs stay valid."""
    if saved.get("port"):
        try:
            return ReferenceEndpoint(port=saved["port"], **kwargs).start()
        except OSError:
            pass
    return ReferenceEndpoint(port=0, **kwargs).start()


def _find_endpoint(client: Client, saved: dict, name: str) -> dict | None:
    if saved.get("id"):
        try:
            return client.get_endpoint(saved["id"])
        except NotFound:
            pass
    # demo.json was lost but the database was kept: adopt the endpoint of that name
    for candidate in client.iterate(client.list_endpoints, q=name):
        if candidate["name"] == name:
            saved.pop("endpoint_key", None)  # its key was shown once and is gone: issue another
            return candidate
    return None


def _ensure_endpoint(client: Client, saved: dict, body: dict, ep: ReferenceEndpoint | None) -> dict:
    """Reuse the registered endpoint (pointing it at this run's URL) or register it."""
    if ep is not None:
        body = {**body, "contact_url": ep.url}
        saved["port"] = ep.port
    current = _find_endpoint(client, saved, body["name"])
    if current is None:
        created = client.register_endpoint(body)
        saved.update(id=created["id"], endpoint_key=created["endpoint_key"])
    else:
        adopted, saved["id"] = current["id"] != saved.get("id"), current["id"]
        if ep is not None and (adopted or current.get("contact_url") != ep.url):
            client.update_endpoint(saved["id"], {"contact_url": ep.url, "credential": body["credential"]})
    if not saved.get("endpoint_key"):
        saved["endpoint_key"] = client.create_key("demo", scope="endpoint", endpoint_id=saved["id"])["key"]
    return saved


def _audience(client: Client, producer_id: str, external_id: str) -> dict:
    for attempt in range(2):
        for aud in client.iterate(client.search_audiences, producer=producer_id):
            if aud["external_id"] == external_id:
                return aud
        if attempt == 0:
            client.refresh_endpoint(producer_id)
    raise ConfigError(f"the demo CRM does not offer {external_id!r}; is {SAMPLE_DIR} complete?")


def _ensure_share(client: Client, shares: dict, name: str, body: dict) -> str | None:
    """Create the share and run it once; an existing share is reused and not run again.

    Returns the id of the job started now, if any."""
    if shares.get(name):
        try:
            client.get_share(shares[name])
            return None
        except NotFound:
            pass
    for existing in client.iterate(client.list_shares, audience_id=body["audience_id"],
                                   destination_id=body["destination_id"]):
        if existing["destination_audience"] == body["destination_audience"]:
            shares[name] = existing["id"]
            return None
    share = client.create_share(body)
    shares[name] = share["id"]
    return share.get("last_job_id") or client.run_share(share["id"])["id"]


def _endpoint_bodies(saved: dict) -> dict[str, dict]:
    """Registration bodies (SPEC §4.1) of the demo's endpoints; contact URLs are added at start."""
    return {
        "crm": {"name": "Demo CRM", "producer": {"transport": "pull"},
                "identifiers": ["email", "phone_e164", "customer_id", "maid"],
                "attributes": ["first_name", "country"], "credential": saved["crm"]["credential"]},
        "ads": {"name": "Demo ad platform", "identifiers": ["email_sha256"], "attributes": ["country"],
                "consumer": {"transport": "push", "gzip": True, "max_rows_per_request": 1000},
                "credential": saved["ads"]["credential"]},
        "warehouse": {"name": "Demo warehouse", "consumer": {"transport": "pull"},
                      "identifiers": ["email_sha256"], "attributes": ["first_name", "country"]},
    }


def _share_bodies(loyal: dict, newsletter: dict, ads_id: str, warehouse_id: str) -> dict[str, dict]:
    country = {"source": "country", "target": "country"}
    return {
        "ads_now": {"audience_id": loyal["id"], "destination_id": ads_id, "mode": "add",
                    "destination_audience": ADS_AUDIENCE, "mapping": [EMAIL_SHA256, country],
                    "schedule": {"type": "now"}},
        "warehouse_hourly": {
            "audience_id": newsletter["id"], "destination_id": warehouse_id,
            "destination_audience": WAREHOUSE_AUDIENCE, "mode": "add", "delta": True,
            "mapping": [EMAIL_SHA256, {"source": "first_name", "target": "first_name"}, country],
            "schedule": {"type": "interval", "every": "PT1H"}},
    }


def _setup(client: Client, state: dict, state_file: Path,
           endpoints: dict[str, ReferenceEndpoint], rt=None) -> dict[str, str]:
    """Register endpoints and shares through the API; returns the jobs started now, by share name."""
    saved = state["endpoints"]
    for name, body in _endpoint_bodies(saved).items():
        if name in CONNECTED:  # Click to Connect: an approved application of the provider account
            from . import demo_apps

            ep = endpoints[name]
            saved[name]["port"] = ep.port
            app_id = demo_apps.ensure_application(rt, state["provider_account_id"], saved[name], CONNECTED[name],
                                                  body, ep.url)
            demo_apps.ensure_connected(client, saved[name], body["name"], app_id,
                                       None if saved[name].get("client_secret") else body["credential"])
            continue
        _ensure_endpoint(client, saved[name], body, endpoints.get(name))
    _save_state(state_file, state)  # endpoint keys are shown once: keep them even if a step below fails
    crm_id = saved["crm"]["id"]
    client.refresh_endpoint(crm_id)
    loyal = _audience(client, crm_id, "loyal_customers")
    newsletter = _audience(client, crm_id, "newsletter_subscribers")
    shares = state.setdefault("shares", {})
    started: dict[str, str] = {}
    for name, body in _share_bodies(loyal, newsletter, saved["ads"]["id"], saved["warehouse"]["id"]).items():
        if job_id := _ensure_share(client, shares, name, body):
            started[name] = job_id
    return started


def run_demo(config: Config, *, serve: bool = True, host: str = "127.0.0.1", port: int = 8080,
             out: Callable[[str], None] = print, sample_dir: Path | None = None) -> DemoInfo:
    """Set up (or reuse) the demo, print how to use it, and serve the exchange until Ctrl-C if ``serve``."""
    from .app import create_app
    from .db import upgrade
    from .runtime import Runtime

    sample_dir = Path(sample_dir or SAMPLE_DIR)
    if not sample_dir.is_dir():
        raise ConfigError(f"sample data folder {sample_dir} is missing (run sample_data/generate.py)")
    config = replace(config, allow_private_urls=True)
    var_dir = Path(config.var_dir).resolve()
    state_file = var_dir / "demo.json"
    state = _load_state(state_file)
    upgrade(config.database_url)
    rt = Runtime(config)
    app = create_app(runtime=rt)
    try:
        if serve:
            _check_port_free(host, port)  # werkzeug would print two lines and sys.exit on a busy port
        server = make_server(host, port if serve else 0, app, threaded=True)
    except OSError as exc:
        rt.shutdown()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    web_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{web_host}:{server.port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    endpoints: dict[str, ReferenceEndpoint] = {}
    access_log = _quiet_access_log(var_dir / "demo" / "access.log")
    out(f"Audience Exchange demo: starting on {url}/ — setting up the demo endpoints and shares "
        f"(access log: {access_log})")
    previous_term = _sigterm_as_interrupt() if serve else None
    try:
        reused = _ensure_account(rt, state)
        saved = state.setdefault("endpoints", {})
        for name in ("crm", "ads", "warehouse"):
            saved.setdefault(name, {}).setdefault("credential", secrets.token_urlsafe(24))
        ads_dir, warehouse_dir = var_dir / "demo" / "ads", var_dir / "demo" / "warehouse"
        warehouse_dir.mkdir(parents=True, exist_ok=True)
        endpoints["crm"] = _start_endpoint(saved["crm"], producer_dir=sample_dir,
                                           credential=saved["crm"]["credential"])
        from . import demo_apps

        demo_apps.ensure_provider(rt, state)
        oauth = demo_apps.oauth_settings(saved["ads"], url, str(var_dir / "demo" / "ads-oauth-tokens.json"))
        oauth.redirect_uris.append(f"http://localhost:{server.port}/v1/connect/callback")
        (var_dir / "demo").mkdir(parents=True, exist_ok=True)
        # the ad platform accepts only the access tokens its own authorization server issued
        endpoints["ads"] = _start_endpoint(saved["ads"], consumer_dir=ads_dir, oauth=oauth)
        with _sigint_ignored():  # worker processes inherit it: Ctrl-C stops them through the parent
            if serve:
                rt.start_background()
            else:
                rt.executor.start()
        thread.start()
        with Client(url, state["api_key"], retries=2, backoff=0.2) as client:
            started = _setup(client, state, state_file, endpoints, rt)
            _save_state(state_file, state)
            jobs = {name: client.wait_job(job_id, JOB_WAIT_SECONDS, interval=0.2,
                                          until={"succeeded", "partially_succeeded", "failed", "cancelled",
                                                 "awaiting_consumer"})
                    for name, job_id in started.items()}
        info = DemoInfo(url=url, account_id=state["account_id"], api_key=state["api_key"], email=DEMO_EMAIL,
                        password=state["password"], endpoint_ids={k: v["id"] for k, v in saved.items()},
                        share_ids=dict(state["shares"]), warehouse_key=saved["warehouse"]["endpoint_key"],
                        ads_file=endpoints["ads"].app.consumer.path_for(ADS_AUDIENCE),
                        warehouse_dir=warehouse_dir, state_file=state_file, reused=reused, jobs=jobs)
        _report(info, out)
        if serve:
            out("Serving the exchange; press Ctrl-C to stop.")
            while thread.is_alive():
                thread.join(0.5)
        return info
    except KeyboardInterrupt:
        out("stopping…")
        raise DemoStopped() from None
    except ToolkitError as exc:
        raise ConfigError(f"the demo could not set itself up: {exc}") from exc
    finally:
        with _sigint_ignored():  # a second Ctrl-C must not interrupt the clean-up halfway
            if thread.is_alive():
                server.shutdown()
            server.server_close()
            for ep in endpoints.values():
                ep.stop()
            rt.shutdown()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def _check_port_free(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE) when ``host:port`` cannot be bound, as the server would."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


class DemoStopped(Exception):
    """Ctrl-C or SIGTERM ended the demo; everything it started has been stopped."""


def _quiet_access_log(path: Path) -> Path:
    """Send werkzeug's per-request lines to ``path`` instead of the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    access = logging.getLogger("werkzeug")
    for handler in list(access.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path.resolve():
            return path
        access.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    return path


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT while child processes start (a spawned Python keeps an ignored SIGINT ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigterm_as_interrupt():
    """SIGTERM stops the demo the way Ctrl-C does; returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, _interrupt)


def _toolkit_command() -> str:
    """How to run exchange-toolkit from here: ``.venv/bin/exchange-toolkit`` rather than a bare name."""
    script = Path(sys.executable).parent / "exchange-toolkit"
    if not script.exists():
        return "exchange-toolkit"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _state_text(job: dict) -> str:
    from .web.format import state_label

    return state_label(job["state"]).lower()


def _report(info: DemoInfo, out: Callable[[str], None]) -> None:
    lines = [
        "",
        f"Audience Exchange demo {'(reusing the existing demo)' if info.reused else 'is ready'}",
        f"  web address   {info.url}/   (API docs: {info.url}/docs)",
        f"  login         {info.email} / {info.password}",
        f"  API key       {info.api_key}",
        f"  ad platform   delivered file: {info.ads_file}",
        (f"  warehouse     pull it with: {_toolkit_command()} --url {info.url} --key {info.warehouse_key} "
         f"pull --out {info.warehouse_dir}"),
        f"  demo state    {info.state_file}",
    ]
    for name, job in info.jobs.items():
        counts = job.get("counts") or {}
        lines.append(f"  job {name}: {_state_text(job)} (received {counts.get('received', 0)}, "
                     f"delivered {counts.get('delivered', 0)}, rejected {counts.get('rejected', 0)}, "
                     f"duplicates {counts.get('duplicates', 0)}) — {job['id']}")
    for line in lines:
        out(line)
