"""More ``exchange-toolkit`` commands: API keys, editing endpoints and shares, ``conformance``.

Imported by :mod:`exchange.toolkit.cli` (at its end) so that these commands join its groups.
"""
from __future__ import annotations

from typing import Any

import click

from exchange.toolkit.cli_core import (
    EXIT_API,
    EXIT_USAGE,
    State,
    endpoints,
    main,
    pass_state,
    read_json_file,
    shares,
    table,
)


def _confirm(yes: bool, what: str) -> None:
    if not yes and not click.confirm(f"{what}?", default=False):
        raise click.exceptions.Exit(EXIT_USAGE)


# --- keys ---------------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """List, create and revoke API keys (the secret is shown once, at creation)."""


@keys.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@pass_state
def keys_list(state: State, show_all: bool) -> None:
    """List the account's API keys (prefixes only)."""
    items = [k for k in state.client.iterate(state.client.list_keys) if show_all or not k.get("revoked_at")]
    state.emit(items, table(items, ["id", "name", "scope", "endpoint_id", "prefix", "last_used_at", "revoked_at"]))


@keys.command("create")
@click.option("--name", default="", help="A label for the key.")
@click.option("--endpoint-id", help="Issue an endpoint key: it can do only this endpoint's data-plane calls.")
@pass_state
def keys_create(state: State, name: str, endpoint_id: str | None) -> None:
    """Create a key; prints it once (the id on the first line, the secret on the second)."""
    key = state.client.create_key(name, scope="endpoint" if endpoint_id else "account", endpoint_id=endpoint_id)
    state.emit(key, f"created {key['scope']} key {key['id']} (shown once, store it now):\n{key['key']}")


@keys.command("revoke")
@click.argument("key_id")
@pass_state
def keys_revoke(state: State, key_id: str) -> None:
    """Revoke a key; calls with it are refused from now on."""
    key = state.client.revoke_key(key_id)
    state.emit(key, f"revoked key {key.get('id', key_id)} ({key.get('prefix', '')})")


# --- endpoints ----------------------------------------------------------------------------------
def _changes(json_file: str | None, **fields: Any) -> dict:
    body = read_json_file(json_file, "--file") if json_file else {}
    body.update({k: v for k, v in fields.items() if v not in (None, ())})
    if not body:
        raise click.UsageError("nothing to change: give at least one option (or --file)")
    return body


@endpoints.command("update")
@click.argument("endpoint_id")
@click.option("--file", "json_file", type=click.Path(exists=True, dir_okay=False),
              help="Changes as JSON (any field of the registration).")
@click.option("--name")
@click.option("--contact-url")
@click.option("--credential", help="New bearer token the exchange sends when it calls the endpoint.")
@click.option("--webhook-url")
@click.option("--identifier", "identifiers", multiple=True, help="Replace the identifiers (repeat).")
@click.option("--attribute", "attributes", multiple=True, help="Replace the attributes (repeat).")
@pass_state
def endpoints_update(state: State, endpoint_id: str, json_file: str | None, identifiers: tuple,
                     attributes: tuple, **fields: Any) -> None:
    """Change an endpoint's registration; only the fields given change."""
    body = _changes(json_file, **fields, identifiers=list(identifiers) or None,
                    attributes=list(attributes) or None)
    ep = state.client.update_endpoint(endpoint_id, body)
    state.emit(ep, f"updated endpoint {ep['id']} ({', '.join(sorted(body))})")


@endpoints.command("disable")
@click.argument("endpoint_id")
@pass_state
def endpoints_disable(state: State, endpoint_id: str) -> None:
    """Disable an endpoint: its shares stop running until it is enabled again."""
    ep = state.client.disable_endpoint(endpoint_id)
    state.emit(ep, f"endpoint {ep['id']} is {ep['status']}")


@endpoints.command("enable")
@click.argument("endpoint_id")
@pass_state
def endpoints_enable(state: State, endpoint_id: str) -> None:
    """Enable a disabled endpoint."""
    ep = state.client.enable_endpoint(endpoint_id)
    state.emit(ep, f"endpoint {ep['id']} is {ep['status']}")


@endpoints.command("delete")
@click.argument("endpoint_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def endpoints_delete(state: State, endpoint_id: str, yes: bool) -> None:
    """Delete an endpoint (the exchange refuses while shares use it)."""
    _confirm(yes, f"Delete endpoint {endpoint_id}")
    state.client.delete_endpoint(endpoint_id)
    state.emit({"id": endpoint_id, "deleted": True}, f"deleted endpoint {endpoint_id}")


# --- shares -------------------------------------------------------------------------------------
@shares.command("show")
@click.argument("share_id")
@pass_state
def shares_show(state: State, share_id: str) -> None:
    """Show one share."""
    state.emit(state.client.get_share(share_id))


@shares.command("update")
@click.argument("share_id")
@click.option("--file", "json_file", type=click.Path(exists=True, dir_okay=False),
              help="Changes as JSON (destination_audience, mapping, mode, schedule, delta, ...).")
@click.option("--destination-audience")
@click.option("--mode", type=click.Choice(["add", "replace", "remove"]))
@click.option("--delta/--no-delta", default=None)
@click.option("--reject-threshold", type=click.FloatRange(0, 1))
@click.option("--every", help="Run every ISO 8601 duration, e.g. PT6H (an interval schedule).")
@click.option("--cron", help="Run on a 5-field cron expression (with --timezone).")
@click.option("--timezone", default="UTC", show_default=True)
@pass_state
def shares_update(state: State, share_id: str, json_file: str | None, every: str | None, cron: str | None,
                  timezone: str, **fields: Any) -> None:
    """Change a share; only the fields given change."""
    if every and cron:
        raise click.UsageError("give --every or --cron, not both")
    schedule = ({"type": "interval", "every": every} if every else
                {"type": "cron", "cron": cron, "timezone": timezone} if cron else None)
    body = _changes(json_file, **fields, schedule=schedule)
    share = state.client.update_share(share_id, body)
    state.emit(share, f"updated share {share['id']} ({share.get('schedule_description', '')})")


@shares.command("pause")
@click.argument("share_id")
@pass_state
def shares_pause(state: State, share_id: str) -> None:
    """Pause a share's schedule (runs already queued finish)."""
    share = state.client.pause_share(share_id)
    state.emit(share, f"share {share['id']} is {share['status']}")


@shares.command("resume")
@click.argument("share_id")
@pass_state
def shares_resume(state: State, share_id: str) -> None:
    """Resume a paused share."""
    share = state.client.resume_share(share_id)
    state.emit(share, f"share {share['id']} is {share['status']}"
               + (f", next run {share['next_run_at']}" if share.get("next_run_at") else ""))


@shares.command("delete")
@click.argument("share_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def shares_delete(state: State, share_id: str, yes: bool) -> None:
    """Delete a share (its past jobs stay visible)."""
    _confirm(yes, f"Delete share {share_id}")
    state.client.delete_share(share_id)
    state.emit({"id": share_id, "deleted": True}, f"deleted share {share_id}")


# --- conformance --------------------------------------------------------------------------------
@main.command()
@click.argument("url")
@click.option("--credential", envvar="EXCHANGE_TOOLKIT_CREDENTIAL",
              help="The bearer token registered for the endpoint (env EXCHANGE_TOOLKIT_CREDENTIAL).")
@click.option("--role", "roles", multiple=True, type=click.Choice(["producer", "consumer"]),
              help="Role(s) the endpoint claims (repeat); default: detect from its answers.")
@click.option("--audience", help="PULL producer: the audience id whose data is checked (default: the first).")
@click.option("--destination-audience", help="PUSH consumer: scratch audience to write to "
                                              "(default conformance-<random>; emptied at the end).")
@click.option("--identifier", default="email_sha256", show_default=True,
              help="PUSH consumer: identifier column of the rows sent.")
@click.option("--gzip", is_flag=True, help="PUSH consumer: send gzip bodies, as when registered with gzip.")
@click.option("--wait", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="How long a producer may answer 202 before the data rule fails.")
@click.pass_context
def conformance(ctx: click.Context, url: str, credential: str | None, roles: tuple[str, ...],
                audience: str | None, destination_audience: str | None, identifier: str, gzip: bool,
                wait: float) -> None:
    """Check an endpoint at URL against the protocol (docs/protocol.md), as the exchange would call it.

    Prints one line per rule: PASS, FAIL (the exchange would misbehave), WARN (works, loses a
    feature) or SKIP; exits 1 when any rule fails. Consumer checks write to a scratch audience.
    """
    from exchange.toolkit.conformance import Checker, results_json

    state: State = ctx.find_object(State)
    checker = Checker(url, credential, roles=roles or None, audience=audience,
                      destination_audience=destination_audience, identifier=identifier, gzip=gzip, wait=wait,
                      timeout=state.timeout if state else 30.0)
    results = []
    for result in checker.run():
        results.append(result)
        if not (state and state.as_json):
            click.echo(result.line())
    failed = [r for r in results if r.status == "fail"]
    if state and state.as_json:
        click.echo(results_json(results))
    else:
        click.echo(f"{len(results)} rules: {len(failed)} failed, "
                   f"{sum(r.status == 'warn' for r in results)} warnings — "
                   f"{'NOT conforming' if failed else 'conforming'}")
    if failed:
        raise click.exceptions.Exit(EXIT_API)
