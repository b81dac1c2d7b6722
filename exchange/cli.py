"""The ``exchange`` command: database migrations, accounts, the server, workers and the demo."""
from __future__ import annotations

import json
import sys

import click

from .config import Config


@click.group()
def main() -> None:
    """Audience Exchange: share audiences between producer and consumer endpoints."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations to EXCHANGE_DATABASE_URL."""
    from .db import upgrade

    cfg = Config.from_env()
    upgrade(cfg.database_url, revision)
    click.echo(f"database at revision {revision}")


@main.group()
def accounts() -> None:
    """Accounts (tenants)."""


@accounts.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"account_id", "api_key"}.')
@click.option("--user-email", default=None, help="Also create a web user with this email.")
@click.option("--user-password", default=None, help="Password of that user (min 8 characters).")
def accounts_create(name: str, as_json: bool, user_email: str | None, user_password: str | None) -> None:
    """Create an account and print its first API key (shown once)."""
    from .auth.keys import create_account
    from .auth.users import create_user
    from .errors import ExchangeError
    from .runtime import Runtime

    name = name.strip()
    if not name or len(name) > 200:
        raise click.BadParameter("NAME must be 1-200 characters.", param_hint="NAME")
    rt = Runtime(Config.from_env())
    try:
        with rt.db.session() as s:
            account, token = create_account(s, name)
            if user_email:
                if not user_password:
                    raise click.BadParameter("required with --user-email", param_hint="--user-password")
                create_user(s, account.id, user_email, user_password)
    except ExchangeError as exc:
        click.echo(f"error: {exc.detail} {exc.errors or ''}".strip(), err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({"account_id": account.id, "api_key": token}))
    else:
        click.echo(f"account {account.id} created")
        click.echo(f"API key (shown once): {token}")


@accounts.command("add-user")
@click.argument("account_id")
@click.argument("email")
@click.password_option()
def accounts_add_user(account_id: str, email: str, password: str) -> None:
    """Add a web-interface user to an account."""
    from .auth.users import create_user
    from .errors import ExchangeError
    from .models import Account
    from .runtime import Runtime

    rt = Runtime(Config.from_env())
    try:
        with rt.db.session() as s:
            if s.get(Account, account_id) is None:
                raise click.BadParameter("no such account", param_hint="ACCOUNT_ID")
            user = create_user(s, account_id, email, password)
    except ExchangeError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
    click.echo(f"user {user.email} created")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default EXCHANGE_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default EXCHANGE_PORT or 8080).")
@click.option("--workers", default=2, show_default=True, type=int,
              help="Web processes (gunicorn workers). Jobs and schedules run in a separate runner process.")
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per web process.")
def serve(host: str | None, port: int | None, workers: int, threads: int) -> None:
    """Run the API and web interface with gunicorn (production server)."""
    from .server import run_gunicorn

    cfg = Config.from_env()
    _preflight(cfg, "serve", migrations=False).db.dispose()  # serve itself migrates next
    run_gunicorn(cfg, host=host or cfg.host, port=port or cfg.port, workers=workers, threads=threads)


@main.group()
def keys() -> None:
    """Encryption keys of secrets at rest."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with EXCHANGE_SECRET_KEY.

    Set the new key as EXCHANGE_SECRET_KEY and the previous one(s) in EXCHANGE_OLD_SECRET_KEYS, run
    this, then drop the old keys from the configuration.
    """
    from .auth.secrets_rotation import rotate_all
    from .runtime import Runtime

    n = rotate_all(Runtime(Config.from_env()))
    click.echo(f"re-encrypted {n} secrets with the current key")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default EXCHANGE_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default EXCHANGE_PORT or 8080).")
def demo(host: str | None, port: int | None) -> None:
    """Set up (or reuse) the demo: reference endpoints, shares, a first run; then serve until Ctrl-C."""
    from .demo import DemoStopped, run_demo
    from .errors import ConfigError

    cfg = Config.from_env()
    try:
        run_demo(cfg, host=host or cfg.host, port=port or cfg.port, out=click.echo)
    except ConfigError as exc:
        raise click.ClickException(exc.detail) from exc
    except DemoStopped:
        click.echo("stopped")


@main.command()
@click.option("--concurrency", default=2, show_default=True, type=int, help="Jobs run at once.")
@click.option("--metrics-port", default=None, type=int,
              help="Serve Prometheus /metrics of this worker on this port (e.g. 9100).")
@click.option("--metrics-host", default="0.0.0.0", show_default=True, help="Interface of --metrics-port.")
def worker(concurrency: int, metrics_port: int | None, metrics_host: str) -> None:
    """Run a Celery worker (EXCHANGE_EXECUTOR=celery, EXCHANGE_BROKER_URL=redis://… or amqp://…)."""
    from .serving import standalone_metrics

    standalone_metrics()  # before prometheus_client is imported
    from .jobs.celery_executor import run_worker

    cfg = Config.from_env()
    if not cfg.broker_url:
        raise click.UsageError("Set EXCHANGE_BROKER_URL (redis://… or amqp://…) to run a worker.")
    from celery.signals import setup_logging

    from .logging_setup import configure as configure_logging

    configure_logging(cfg)
    # Celery would otherwise replace the root handler with its own format
    setup_logging.connect(lambda **_: configure_logging(cfg), weak=False)
    rt = _preflight(cfg, "worker", migrations=True, broker=True)
    if metrics_port:
        from .metrics import serve_metrics

        serve_metrics(metrics_port, metrics_host, db=rt.db)
    from .jobs.executor import worker_id
    from .webhooks.dispatcher import Dispatcher

    Dispatcher(rt, worker_id()).start()  # webhook outbox: delivered by whichever worker is free
    run_worker(rt, concurrency)


def _preflight(cfg: Config, command: str, *, migrations: bool, broker: bool | None = None):
    """Refuse to start, with a one-line reason, when a dependency is misconfigured (not merely down)."""
    from .health import DOWN, check_all, fatal
    from .runtime import Runtime

    rt = Runtime(cfg)
    checks = check_all(rt, migrations=migrations, broker=broker)
    bad = fatal(checks)
    if bad is not None:
        rt.db.dispose()
        click.echo(f"exchange {command}: cannot start: {bad.name}: {bad.reason}", err=True)
        sys.exit(3)
    for c in checks:
        if c.status == DOWN:
            click.echo(f"exchange {command}: warning: {c.name}: {c.reason} (starting anyway; /readyz says "
                       "not ready until it answers)", err=True)
    return rt


@main.group()
def blobs() -> None:
    """The blob store (uploads, job artifacts, deliveries)."""


@blobs.command("init")
def blobs_init() -> None:
    """Create the bucket of EXCHANGE_BLOB_URL (s3://bucket/prefix) or its folder, then probe it.

    Run it once per deployment before the first `exchange serve` (idempotent: an existing bucket is
    kept). Needs s3:CreateBucket besides the permissions the exchange uses at run time.
    """
    from .health import init_blobs

    try:
        click.echo(init_blobs(Config.from_env()))
    except Exception as exc:  # noqa: BLE001 - one line for the operator, not a traceback
        click.echo(f"exchange blobs init: failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(3)


@main.command()
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to this file.")
def openapi(out: str | None) -> None:
    """Print (or write) the OpenAPI document generated from the app."""
    from .openapi import generate

    text = generate()
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)


@main.group()
def applications() -> None:
    """Review endpoint applications (operators of the exchange)."""


@applications.command("list")
@click.option("--all", "show_all", is_flag=True, help="Every application, not only those waiting for review.")
@click.option("--json", "as_json", is_flag=True)
def applications_list(show_all: bool, as_json: bool) -> None:
    """Applications waiting for review (or all with --all)."""
    from sqlalchemy import select

    from .applications.registry import review_queue
    from .models import Account, Application
    from .runtime import Runtime

    rt = Runtime(Config.from_env())
    with rt.db.session() as s:
        apps = list(s.scalars(select(Application).order_by(Application.created_at))) if show_all else review_queue(s)
        rows = [{"id": a.id, "name": a.spec.get("name"), "provider": (s.get(Account, a.account_id) or Account()).name,
                 "state": a.state, "version": a.version, "pending_state": a.pending_state,
                 "auth": (a.spec.get("auth") or {}).get("type", "key")} for a in apps]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        pending = f" (version {r['version'] + 1} {r['pending_state']})" if r["pending_state"] else ""
        click.echo(f"{r['id']}  {r['state']:<9} v{r['version']}{pending}  {r['auth']:<6} {r['name']} "
                   f"- {r['provider']}")
    if not rows:
        click.echo("nothing to review" if not show_all else "no applications")


def _review(application_id: str, decision: str, reason: str | None) -> None:
    from .applications.registry import approve, reject
    from .errors import ExchangeError
    from .runtime import Runtime

    rt = Runtime(Config.from_env())
    try:
        with rt.db.session() as s:
            app = approve(s, application_id, reason, actor="operator:cli") if decision == "approve" else \
                reject(s, application_id, reason or "", actor="operator:cli")
            state, version = app.state, app.version
    except ExchangeError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
    click.echo(f"application {application_id}: {state} (version {version})"
               + (f", reason: {reason}" if reason else ""))


@applications.command("approve")
@click.argument("application_id")
@click.option("--reason", default=None, help="Note for the provider.")
def applications_approve(application_id: str, reason: str | None) -> None:
    """Approve what is in review (a first version, or the next version of an approved application)."""
    _review(application_id, "approve", reason)


@applications.command("reject")
@click.argument("application_id")
@click.option("--reason", required=True, help="Why; shown to the provider.")
def applications_reject(application_id: str, reason: str) -> None:
    """Reject what is in review, with the reason the provider will see."""
    _review(application_id, "reject", reason)


@main.group()
def adapters() -> None:
    """Partner adapters."""


@adapters.command("check")
@click.argument("adapter_type")
@click.option("--settings", "settings_file", required=True, type=click.File("r", encoding="utf-8"),
              help="JSON file with the adapter settings (your own credentials); - reads stdin.")
@click.option("--base-url", "base_urls", multiple=True, metavar="URL|ROLE=URL",
              help="Send to this host instead of the partner's (sandbox, proxy): one URL for every "
                   "role, or ROLE=URL per role (roles: GET /v1/adapters → hosts). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def adapters_check(adapter_type: str, settings_file, base_urls: tuple[str, ...], as_json: bool) -> None:
    """Smoke-check an adapter against the partner: credentials, a test audience, add and remove one
    test member, read back. Prints every request and answer with secrets scrubbed; exit code 0 on
    pass, 1 on fail."""
    from .adapters.registry import get_adapter
    from .adapters.smoke import run_check
    from .errors import NotFound
    from .net import OutboundSession

    try:
        cls = get_adapter(adapter_type)
    except NotFound as exc:
        raise click.BadParameter(exc.detail, param_hint="ADAPTER_TYPE") from None
    try:
        settings = json.load(settings_file)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="--settings") from None
    if not isinstance(settings, dict):
        raise click.BadParameter("must hold a JSON object", param_hint="--settings")
    base_url: str | dict | None = None
    for value in base_urls:
        role, sep, url = value.partition("=")
        if sep and "://" not in role:
            base_url = {**(base_url if isinstance(base_url, dict) else {}), role: url}
        elif base_url is None:
            base_url = value
        else:
            raise click.BadParameter("give one URL, or ROLE=URL pairs", param_hint="--base-url")
    cfg = Config.from_env()
    with OutboundSession(allow_private=cfg.allow_private_urls,
                         timeout=(cfg.http_connect_timeout, cfg.http_read_timeout)) as session:
        report = run_check(cls, settings, session=session, base_url=base_url)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.render())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
