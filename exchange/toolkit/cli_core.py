"""``exchange-toolkit``: the command line for endpoint providers (SPEC §10).

The exchange's URL and API key come from ``--url``/``--key``, the ``EXCHANGE_TOOLKIT_URL`` and
``EXCHANGE_TOOLKIT_KEY`` environment variables, or the file ``exchange-toolkit configure`` writes, in
that order. ``--json`` prints the API's JSON instead of text.

Exit codes: 0 success; 1 the exchange refused the request, or a watched job failed; 2 bad arguments
or configuration; 3 the exchange could not be reached; 4 a wait timed out; 5 a download did not match
its SHA-256.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from exchange.toolkit import config_file
from exchange.toolkit.client import (
    TERMINAL_STATES,
    ApiError,
    ChecksumMismatch,
    Client,
    NetworkError,
    ServerError,
    WaitTimeout,
)

EXIT_API, EXIT_USAGE, EXIT_NETWORK, EXIT_TIMEOUT, EXIT_CHECKSUM = 1, 2, 3, 4, 5
PROGRESS_THRESHOLD = 1024 * 1024  # files smaller than this upload too fast for a bar to help
PHASES = {
    "queued": 0,
    "fetching": 1,
    "awaiting_source": 1,
    "transforming": 2,
    "delivering": 3,
    "awaiting_consumer": 3,
}


@dataclass
class State:
    """What the group's options resolved to; the client is built on first use."""

    url: str | None
    key: str | None
    config_path: Path
    as_json: bool
    timeout: float
    retries: int
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            saved = config_file.load(self.config_path)
            url, key = self.url or saved.url, self.key or saved.key
            if not url:
                raise click.UsageError(
                    "no exchange URL: pass --url, set EXCHANGE_TOOLKIT_URL or run "
                    "'exchange-toolkit configure'."
                )
            try:
                self._client = Client(
                    url, key, timeout=(min(5.0, self.timeout), self.timeout), retries=self.retries
                )
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--url") from exc
        return self._client

    def emit(self, data: Any, text: str | None = None, *, line: bool = False) -> None:
        """Print ``data`` as JSON with ``--json``, else the human ``text`` (JSON when there is none).

        ``line`` prints one compact JSON document per line (JSON Lines), for streams of results."""
        if self.as_json or text is None:
            click.echo(json.dumps(data, indent=None if line else 2))
        else:
            click.echo(text)


class ToolkitGroup(click.Group):
    """Turns the client's errors into one-line messages and distinct exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            click.echo(f"error: the exchange answered {exc}", err=True)
            ctx.exit(EXIT_API)
        except NetworkError as exc:
            click.echo(f"error: cannot reach the exchange: {exc}", err=True)
            ctx.exit(EXIT_NETWORK)
        except WaitTimeout as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_TIMEOUT)
        except ChecksumMismatch as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_CHECKSUM)
        except config_file.ConfigFileError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except OSError as exc:
            click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
            ctx.exit(EXIT_API)


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table; empty lists say so instead of printing a lone header."""
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return value.get("transport") or json.dumps(value)
    return str(value)


def read_json_file(path: str | None, param: str) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read JSON from {path}: {exc}", param_hint=param) from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a JSON object", param_hint=param)
    return data


def _progress_bar(total: int, label: str, enabled: bool | None):
    show = total >= PROGRESS_THRESHOLD if enabled is None else enabled
    if not show:
        return None
    return click.progressbar(length=total, label=label, file=click.get_text_stream("stderr"))


pass_state = click.make_pass_decorator(State)


@click.group(cls=ToolkitGroup)
@click.option(
    "--url", envvar="EXCHANGE_TOOLKIT_URL", help="Base URL of the exchange (env EXCHANGE_TOOLKIT_URL)."
)
@click.option("--key", envvar="EXCHANGE_TOOLKIT_KEY", help="API key (env EXCHANGE_TOOLKIT_KEY).")
@click.option(
    "--config",
    "config_path",
    envvar="EXCHANGE_TOOLKIT_CONFIG",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (default ~/.config/exchange-toolkit.json).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to wait for each answer.",
)
@click.option(
    "--retries",
    default=4,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retries of a call that failed for a transient reason.",
)
@click.pass_context
def main(
    ctx: click.Context,
    url: str | None,
    key: str | None,
    config_path: str | None,
    as_json: bool,
    timeout: float,
    retries: int,
) -> None:
    """Talk to an Audience Exchange: register endpoints, push audiences, pull deliveries, watch jobs."""
    path = Path(config_path) if config_path else config_file.default_path()
    ctx.obj = State(url, key, path, as_json, timeout, retries)
    ctx.call_on_close(lambda: ctx.obj._client and ctx.obj._client.close())


@main.command()
@click.option("--url", prompt="Exchange URL", help="Base URL of the exchange.")
@click.option("--key", prompt="API key", hide_input=True, help="Account or endpoint API key.")
@click.option("--check/--no-check", default=True, show_default=True, help="Try the key before saving it.")
@pass_state
def configure(state: State, url: str, key: str, check: bool) -> None:
    """Save the exchange URL and API key to the configuration file."""
    try:
        client = Client(url, key, retries=min(state.retries, 1))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from exc
    if check:
        with client:
            client.list_deliveries(page_size=1)  # works with account and endpoint keys alike
    path = config_file.save(state.config_path, config_file.ToolkitSettings(url=url.rstrip("/"), key=key))
    click.echo(f"saved {path}")


# --- endpoints ---------------------------------------------------------------------------------
@main.group()
def endpoints() -> None:
    """Register and inspect endpoints."""


@endpoints.command("register")
@click.option(
    "--file",
    "json_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON body (SPEC §4.1); options given on the command line override its fields.",
)
@click.option("--name")
@click.option("--contact-url", help="Base URL where the exchange calls this endpoint.")
@click.option("--producer", type=click.Choice(["pull", "push"]), help="Producer role transport.")
@click.option("--consumer", type=click.Choice(["pull", "push"]), help="Consumer role transport.")
@click.option("--identifier", "identifiers", multiple=True, help="Identifier column (repeat).")
@click.option("--attribute", "attributes", multiple=True, help="Attribute column (repeat).")
@click.option("--credential", help="Bearer token the exchange sends when it calls the endpoint.")
@click.option("--webhook-url")
@click.option("--gzip/--no-gzip", default=None, help="The PUSH consumer accepts gzip bodies.")
@click.option("--max-rows-per-request", type=click.IntRange(min=1))
@pass_state
def endpoints_register(
    state: State,
    json_file: str | None,
    name: str | None,
    contact_url: str | None,
    producer: str | None,
    consumer: str | None,
    identifiers: tuple[str, ...],
    attributes: tuple[str, ...],
    credential: str | None,
    webhook_url: str | None,
    gzip: bool | None,
    max_rows_per_request: int | None,
) -> None:
    """Register an endpoint; prints its endpoint key, which is shown only once."""
    body = read_json_file(json_file, "--file")
    flags = {
        "name": name,
        "contact_url": contact_url,
        "credential": credential,
        "webhook_url": webhook_url,
        "identifiers": list(identifiers) or None,
        "attributes": list(attributes) or None,
    }
    body.update({k: v for k, v in flags.items() if v is not None})
    if producer:
        body["producer"] = {"transport": producer}
    if consumer or gzip is not None or max_rows_per_request:
        role = dict(body.get("consumer") or {})
        given = {"transport": consumer, "gzip": gzip, "max_rows_per_request": max_rows_per_request}
        role.update({k: v for k, v in given.items() if v is not None})
        body["consumer"] = role
    if not body.get("name"):
        raise click.UsageError("give the endpoint a --name (or a name in --file).")
    created = state.client.register_endpoint(body)
    lines = [
        f"registered endpoint {created['id']} ({created['name']})",
        f"endpoint key (shown once, store it now): {created['endpoint_key']}",
    ]
    if created.get("webhook_secret"):
        lines.append(f"webhook secret (shown once): {created['webhook_secret']}")
    state.emit(created, "\n".join(lines))


@endpoints.command("list")
@click.option("--role", type=click.Choice(["producer", "consumer"]))
@click.option("--status", type=click.Choice(["active", "disabled"]))
@pass_state
def endpoints_list(state: State, role: str | None, status: str | None) -> None:
    """List the account's endpoints."""
    items = list(state.client.iterate(state.client.list_endpoints, role=role, status=status))
    state.emit(items, table(items, ["id", "name", "producer", "consumer", "status", "contact_url"]))


@endpoints.command("show")
@click.argument("endpoint_id")
@pass_state
def endpoints_show(state: State, endpoint_id: str) -> None:
    """Show one endpoint."""
    state.emit(state.client.get_endpoint(endpoint_id))


@endpoints.command("verify")
@click.argument("endpoint_id")
@pass_state
def endpoints_verify(state: State, endpoint_id: str) -> None:
    """Have the exchange call the endpoint and check the protocol; exit 1 when a check fails."""
    result = state.client.verify_endpoint(endpoint_id)
    lines = [f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c.get('detail', '')}" for c in result["checks"]]
    state.emit(result, "\n".join(lines + [f"endpoint {'passes' if result['ok'] else 'FAILS'} verification"]))
    if not result["ok"]:
        raise click.exceptions.Exit(EXIT_API)


@endpoints.command("refresh")
@click.argument("endpoint_id")
@pass_state
def endpoints_refresh(state: State, endpoint_id: str) -> None:
    """Re-gather a PULL producer's audience metadata now."""
    r = state.client.refresh_endpoint(endpoint_id)
    state.emit(
        r,
        f"found {r['found']} audiences ({r['new']} new, {r['gone']} gone)"
        + (f"; error: {r['error']}" if r.get("error") else ""),
    )


# --- audiences ---------------------------------------------------------------------------------
@main.group()
def audiences() -> None:
    """Search the catalog and publish audience metadata."""


@audiences.command("search")
@click.argument("query", required=False)
@click.option("--identifier")
@click.option("--producer", help="Producer endpoint id.")
@click.option("--tag")
@pass_state
def audiences_search(
    state: State, query: str | None, identifier: str | None, producer: str | None, tag: str | None
) -> None:
    """Search audiences by text, identifier, producer or tag."""
    items = list(
        state.client.iterate(
            state.client.search_audiences, q=query, identifier=identifier, producer=producer, tag=tag
        )
    )
    state.emit(items, table(items, ["id", "external_id", "name", "size", "identifiers", "tags"]))


@audiences.command("publish")
@click.argument("endpoint_id")
@click.argument("external_id")
@click.option("--file", "json_file", type=click.Path(exists=True, dir_okay=False), help="Metadata as JSON.")
@click.option("--name")
@click.option("--description")
@click.option("--identifier", "identifiers", multiple=True)
@click.option("--attribute", "attributes", multiple=True)
@click.option("--tag", "tags", multiple=True)
@click.option("--size", type=click.IntRange(min=0))
@click.option("--version", "version")
@pass_state
def audiences_publish(
    state: State, endpoint_id: str, external_id: str, json_file: str | None, **fields: Any
) -> None:
    """PUSH producer: create or update an audience's metadata."""
    body = read_json_file(json_file, "--file")
    body.update({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items() if v not in (None, ())})
    aud = state.client.put_audience_metadata(endpoint_id, external_id, body)
    state.emit(aud, f"published audience {aud['external_id']} as {aud['id']} ({aud.get('name')})")


@main.command()
@click.argument("endpoint_id")
@click.argument("external_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--gzip", is_flag=True, help="Compress while sending (a .gz file is always sent as gzip).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: files over 1 MiB).")
@pass_state
def push(
    state: State, endpoint_id: str, external_id: str, file: Path, gzip: bool, progress: bool | None
) -> None:
    """PUSH producer: upload FILE (CSV) as the data of audience EXTERNAL_ID."""
    bar = _progress_bar(file.stat().st_size, f"uploading {file.name}", progress)
    if bar is None:
        result = state.client.upload_audience_data(endpoint_id, external_id, file, gzip=gzip)
    else:
        with bar:
            result = state.client.upload_audience_data(
                endpoint_id, external_id, file, gzip=gzip, progress=bar.update
            )
    jobs = result.get("triggered_job_ids") or []
    state.emit(
        result,
        f"uploaded {result['rows']} rows ({result['bytes']} bytes)\nsha256 {result['sha256']}"
        + (f"\ntriggered jobs: {', '.join(jobs)}" if jobs else ""),
    )


# --- deliveries --------------------------------------------------------------------------------
@main.group()
def deliveries() -> None:
    """PULL consumer: list, download and acknowledge deliveries."""


@deliveries.command("list")
@click.option("--state", "delivery_state", type=click.Choice(["ready", "awaiting_ack", "acknowledged", "expired"]))
@click.option("--endpoint-id")
@pass_state
def deliveries_list(state: State, delivery_state: str | None, endpoint_id: str | None) -> None:
    """List deliveries (an endpoint key sees its endpoint's only)."""
    items = list(
        state.client.iterate(state.client.list_deliveries, state=delivery_state, endpoint_id=endpoint_id)
    )
    columns = ["id", "state", "mode", "row_count", "size", "destination_audience", "job_id"]
    state.emit(items, table(items, columns))


@deliveries.command("download")
@click.argument("delivery_id")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="File or existing folder to write to.",
)
@click.option("--progress/--no-progress", default=None)
@pass_state
def deliveries_download(state: State, delivery_id: str, out: Path, progress: bool | None) -> None:
    """Download a delivery (resumable; verified against its SHA-256)."""
    path = _download(state.client, state.client.get_delivery(delivery_id), out, progress)
    state.emit({"id": delivery_id, "path": str(path)}, f"saved {path}")


@deliveries.command("ack")
@click.argument("delivery_id")
@click.option("--accepted", type=click.IntRange(min=0), required=True)
@click.option("--rejected", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--message")
@pass_state
def deliveries_ack(state: State, delivery_id: str, accepted: int, rejected: int, message: str | None) -> None:
    """Acknowledge a delivery with the counts the consumer applied."""
    d = state.client.ack_delivery(delivery_id, accepted, rejected, message)
    state.emit(d, f"acknowledged {delivery_id}: {d['accepted']} accepted, {d['rejected']} rejected")


def _download(client: Client, delivery: dict, out: Path, progress: bool | None) -> Path:
    bar = _progress_bar(delivery.get("size") or 0, f"downloading {delivery['id']}", progress)
    if bar is None:
        return client.download_delivery(delivery["id"], out)
    with bar:
        return client.download_delivery(delivery["id"], out, progress=bar.update)


def _file_name(delivery: dict) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", delivery.get("destination_audience") or "delivery").strip("._")
    return f"{stem or 'delivery'}-{delivery['id']}.csv"


@main.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the files."
)
@click.option("--watch", is_flag=True, help="Keep pulling new deliveries until interrupted (Ctrl-C).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between polls with --watch.",
)
@click.option("--endpoint-id", help="Only this consumer's deliveries (with an account key).")
@pass_state
def pull(state: State, out: Path, watch: bool, interval: float, endpoint_id: str | None) -> None:
    """Download every ready delivery into --out and acknowledge it with its row count."""
    out.mkdir(parents=True, exist_ok=True)
    client = state.client
    try:
        while True:
            try:
                for d in list(client.iterate(client.list_deliveries, state="ready", endpoint_id=endpoint_id)):
                    path = _download(client, d, out / _file_name(d), None)
                    client.ack_delivery(d["id"], d["row_count"], 0, "pulled by exchange-toolkit")
                    state.emit(
                        {"id": d["id"], "path": str(path), "rows": d["row_count"], "mode": d["mode"]},
                        f"{d['id']}: {d['row_count']} rows ({d['mode']}) -> {path}, acknowledged",
                        line=True,
                    )
            except (NetworkError, ServerError) as exc:
                if not watch:
                    raise
                click.echo(f"warning: {exc}; trying again in {interval:g} s", err=True)
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


# --- jobs --------------------------------------------------------------------------------------
@main.group()
def jobs() -> None:
    """Show, watch and cancel jobs."""


def _job_text(job: dict) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in (job.get("counts") or {}).items() if v)
    error = job.get("error") or {}
    return "\n".join(
        filter(
            None,
            [
                f"job {job['id']}: {job['state']}",
                f"counts: {counts or 'none yet'}",
                error and f"error: {error.get('title', '')}: {error.get('detail', '')}",
            ],
        )
    )


@jobs.command("list")
@click.option("--share-id")
@click.option("--state", "job_state")
@pass_state
def jobs_list(state: State, share_id: str | None, job_state: str | None) -> None:
    """List jobs, newest first."""
    items = state.client.list_jobs(share_id=share_id, state=job_state).items
    state.emit(items, table(items, ["id", "share_id", "state", "trigger", "created_at", "finished_at"]))


@jobs.command("show")
@click.argument("job_id")
@pass_state
def jobs_show(state: State, job_id: str) -> None:
    """Show a job's state, counts and error."""
    job = state.client.get_job(job_id)
    state.emit(job, _job_text(job))


@jobs.command("watch")
@click.argument("job_id")
@click.option("--timeout", "wait", type=click.FloatRange(min=0), default=3600.0, show_default=True)
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True)
@click.option("--until", "until", multiple=True, metavar="STATE",
              help="Also stop at this state (repeat), e.g. awaiting_consumer before a PULL consumer pulls.")
@pass_state
def jobs_watch(state: State, job_id: str, wait: float, interval: float, until: tuple[str, ...]) -> None:
    """Follow a job until it ends (or reaches an --until state); exit 1 when it failed or was cancelled."""
    seen: list[str] = []
    stderr = click.get_text_stream("stderr")
    with click.progressbar(length=4, label=f"job {job_id}", file=stderr) as bar:

        def update(job: dict) -> None:
            if not seen or seen[-1] != job["state"]:
                seen.append(job["state"])
                if not state.as_json:
                    click.echo(f"{time.strftime('%H:%M:%S')} {job['state']}")
                done = 4 if job["state"] in TERMINAL_STATES else PHASES.get(job["state"], 0)
                bar.update(done - bar.pos)

        job = state.client.wait_job(job_id, timeout=wait, interval=interval, on_update=update,
                                    until=TERMINAL_STATES | set(until))
    state.emit(job, _job_text(job))
    if job["state"] in ("failed", "cancelled"):
        raise click.exceptions.Exit(EXIT_API)


@jobs.command("events")
@click.argument("job_id")
@pass_state
def jobs_events(state: State, job_id: str) -> None:
    """The job's event timeline."""
    items = state.client.job_events(job_id)
    state.emit(items, table(items, ["at", "kind", "state", "message"]))


@jobs.command("rejects")
@click.argument("job_id")
@click.option("--out", type=click.Path(path_type=Path), default=Path("."), show_default=True)
@pass_state
def jobs_rejects(state: State, job_id: str, out: Path) -> None:
    """Download the job's rejected rows (CSV with line numbers and reasons)."""
    path = state.client.download_rejects(job_id, out)
    state.emit({"id": job_id, "path": str(path)}, f"saved {path}")


@jobs.command("cancel")
@click.argument("job_id")
@pass_state
def jobs_cancel(state: State, job_id: str) -> None:
    """Cancel a job."""
    job = state.client.cancel_job(job_id)
    state.emit(job, _job_text(job))


# --- shares and adapters -----------------------------------------------------------------------
@main.group()
def shares() -> None:
    """Create, list and run shares."""


@shares.command("create")
@click.option(
    "--file",
    "json_file",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="The share as JSON (SPEC §4.1).",
)
@pass_state
def shares_create(state: State, json_file: str) -> None:
    """Create a share from a JSON file."""
    share = state.client.create_share(read_json_file(json_file, "--file"))
    state.emit(
        share,
        f"created share {share['id']} ({share.get('schedule_description', '')})"
        + (f"\nfirst job: {share['last_job_id']}" if share.get("last_job_id") else ""),
    )


@shares.command("list")
@pass_state
def shares_list(state: State) -> None:
    """List shares."""
    items = list(state.client.iterate(state.client.list_shares))
    state.emit(items, table(items, ["id", "audience_id", "destination_id", "mode", "status", "last_job_id"]))


@shares.command("run")
@click.argument("share_id")
@pass_state
def shares_run(state: State, share_id: str) -> None:
    """Run a share now; prints the job id."""
    job = state.client.run_share(share_id)
    state.emit(job, f"job {job['id']} queued")


@main.command()
@pass_state
def adapters(state: State) -> None:
    """List partner adapters."""
    items = state.client.list_adapters()
    state.emit(items, table(items, ["name", "title", "identifiers", "native_modes"]))


@main.command("serve-endpoint")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--producer-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve every CSV in this folder as an audience (PULL producer).",
)
@click.option(
    "--consumer-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Apply pushed data to per-audience CSV files here (PUSH consumer).",
)
@click.option(
    "--credential",
    envvar="EXCHANGE_TOOLKIT_ENDPOINT_CREDENTIAL",
    help="Bearer token callers must send (env EXCHANGE_TOOLKIT_ENDPOINT_CREDENTIAL).",
)
def serve_endpoint_command(
    host: str, port: int, producer_dir: Path | None, consumer_dir: Path | None, credential: str | None
) -> None:
    """Run the reference endpoint (SPEC §5) until interrupted."""
    from exchange.errors import ConfigError
    from exchange.toolkit.reference_endpoint import serve_endpoint

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if credential is None:
        click.echo("warning: no --credential: anyone who can reach this port may call the endpoint", err=True)
    try:
        serve_endpoint(
            host, port, producer_dir=producer_dir, consumer_dir=consumer_dir, credential=credential
        )
    except ConfigError as exc:
        raise click.UsageError(exc.detail) from exc
