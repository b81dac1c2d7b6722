"""Dependency checks: what ``/readyz`` reports and what ``exchange serve``/``exchange worker`` verify at start.

Each check answers ``ok`` or a one-line reason, and classifies a failure:

* ``misconfigured`` — it will not get better by waiting (no such bucket, credentials refused, a URL
  naming an unknown driver, migrations behind the code). Processes refuse to start on these.
* ``down`` — the service did not answer (connection refused, timeout): a process starts anyway and
  reports not ready until it answers.

No Flask here: the API route, the CLI and the worker all call :func:`check_all`.
"""
from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass
from functools import lru_cache

from .config import Config

OK, DOWN, MISCONFIGURED = "ok", "down", "misconfigured"


@dataclass
class Check:
    name: str
    status: str  # ok | down | misconfigured
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict:
        return asdict(self)


# --- database ------------------------------------------------------------------------------------

_DB_MISCONFIGURED = ("password authentication failed", "does not exist", "no such", "role ",
                     "authentication", "unknown database", "invalid dsn", "unable to open database file")


@lru_cache(maxsize=1)
def code_heads() -> tuple[str, ...]:
    """The migration heads shipped with this code."""
    from pathlib import Path

    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return tuple(sorted(ScriptDirectory.from_config(cfg).get_heads()))


def check_database(db, *, migrations: bool = True) -> Check:
    from sqlalchemy import text

    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            if not migrations:
                return Check("database", OK)
            try:
                current = tuple(sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))))
            except Exception:  # noqa: BLE001 - no alembic_version table: never migrated
                conn.rollback()
                current = ()
    except Exception as exc:  # noqa: BLE001
        message = str(exc).lower()
        kind = MISCONFIGURED if any(m in message for m in _DB_MISCONFIGURED) else DOWN
        if type(exc).__name__ in ("ArgumentError", "NoSuchModuleError"):
            kind = MISCONFIGURED
        return Check("database", kind, f"Database unreachable ({type(exc).__name__}: {_first_line(exc)})")
    heads = code_heads()
    if current != heads:
        if not current:
            reason = "database has no schema: run `exchange db upgrade`"
        elif set(current) - set(_known_revisions()):
            reason = (f"database is at revision {', '.join(current)}, unknown to this code "
                      f"(heads {', '.join(heads)}): is an older version running against a newer database?")
        else:
            reason = (f"migrations behind: database at {', '.join(current)}, code at {', '.join(heads)}; "
                      "run `exchange db upgrade`")
        return Check("database", MISCONFIGURED, reason)
    return Check("database", OK)


@lru_cache(maxsize=1)
def _known_revisions() -> tuple[str, ...]:
    from pathlib import Path

    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return tuple(rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions())


# --- blob store ----------------------------------------------------------------------------------

_S3_MISCONFIGURED = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                     "AllAccessDisabled", "InvalidBucketName", "PermanentRedirect", "AuthorizationHeaderMalformed",
                     "403", "404", "301", "400"}


def describe_blob_error(exc: BaseException, blob_url: str = "") -> Check:
    """A blob store failure as a check: a missing bucket names the command that creates it."""
    name = type(exc).__name__
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    bucket = blob_url[5:].split("/", 1)[0] if blob_url.startswith("s3://") else ""
    if code in ("NoSuchBucket", "404") and bucket:
        return Check("blobs", MISCONFIGURED,
                     f"bucket {bucket!r} does not exist: create it with `exchange blobs init`")
    if code in _S3_MISCONFIGURED:
        return Check("blobs", MISCONFIGURED, f"blob store refused the probe ({code}): check the bucket name, "
                     "credentials and permissions")
    if name in ("NoCredentialsError", "PartialCredentialsError", "ConfigError", "InvalidBlobKey"):
        return Check("blobs", MISCONFIGURED, f"blob store misconfigured ({name}: {_first_line(exc)})")
    if isinstance(exc, PermissionError):
        return Check("blobs", MISCONFIGURED, f"blob folder not writable ({_first_line(exc)})")
    return Check("blobs", DOWN, f"blob store unreachable ({name}{': ' + code if code else ''})")


def check_blobs(blobs, blob_url: str = "") -> Check:
    """Write, read back and delete a small object under ``_readyz/`` (every permission the app needs)."""
    key = f"_readyz/{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    payload = b"readyz " + key.encode()
    try:
        store = blobs() if callable(blobs) else blobs
        store.put_bytes(key, payload)
        try:
            with store.open(key) as fh:
                if fh.read() != payload:
                    return Check("blobs", DOWN, "blob store returned different bytes than written")
        finally:
            store.delete(key)
    except Exception as exc:  # noqa: BLE001
        return describe_blob_error(exc, blob_url)
    return Check("blobs", OK)


# --- broker --------------------------------------------------------------------------------------

def check_broker(cfg: Config, timeout: float = 2.0) -> Check:
    if not cfg.broker_url:
        return Check("broker", MISCONFIGURED, "EXCHANGE_EXECUTOR=celery needs EXCHANGE_BROKER_URL "
                     "(redis://… or amqp://…)")
    try:
        from kombu import Connection

        conn = Connection(cfg.broker_url, connect_timeout=timeout, transport_options={"max_retries": 0})
    except Exception as exc:  # noqa: BLE001
        return Check("broker", MISCONFIGURED, f"broker URL not usable ({type(exc).__name__}: {_first_line(exc)})")
    try:
        conn.ensure_connection(max_retries=1, timeout=timeout)
    except (KeyError, ImportError) as exc:
        return Check("broker", MISCONFIGURED, f"unknown broker transport in EXCHANGE_BROKER_URL ({_first_line(exc)})")
    except Exception as exc:  # noqa: BLE001
        message = str(exc).lower()
        kind = MISCONFIGURED if ("auth" in message or "access_refused" in message or "wrongpass" in message) else DOWN
        return Check("broker", kind, f"broker unreachable at {_redact(cfg.broker_url)} "
                     f"({type(exc).__name__}: {_first_line(exc)})")
    finally:
        try:
            conn.release()
        except Exception:  # noqa: BLE001
            pass
    return Check("broker", OK)


# --- all -----------------------------------------------------------------------------------------

def check_all(rt, *, migrations: bool = True, broker: bool | None = None) -> list[Check]:
    """Every dependency this process needs: database (+ migrations), blob store, broker (Celery)."""
    checks = [check_database(rt.db, migrations=migrations)]
    try:
        store = rt.blobs
    except Exception as exc:  # noqa: BLE001 - open_blob_store raised: the URL is wrong
        checks.append(describe_blob_error(exc, rt.config.blob_url))
    else:
        checks.append(check_blobs(store, rt.config.blob_url))
    if broker if broker is not None else rt.config.executor == "celery":
        checks.append(check_broker(rt.config))
    return checks


def fatal(checks: list[Check]) -> Check | None:
    """The first misconfiguration, which should stop a process from starting."""
    return next((c for c in checks if c.status == MISCONFIGURED), None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def init_blobs(cfg: Config) -> str:
    """``exchange blobs init``: create the bucket (S3) or folder (local) if missing, then probe it."""
    from .blobs import open_blob_store

    store = open_blob_store(cfg.blob_url, s3_endpoint_url=cfg.s3_endpoint_url or None)
    if cfg.blob_url.startswith("s3://"):
        client, bucket = store.client, store.bucket
        region = client.meta.region_name
        try:
            client.head_bucket(Bucket=bucket)
            message = f"bucket {bucket!r} exists"
        except Exception as exc:  # noqa: BLE001
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket"):
                raise
            kwargs = {"Bucket": bucket}
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            client.create_bucket(**kwargs)
            message = f"bucket {bucket!r} created" + (f" in {region}" if region else "")
    else:
        root = getattr(store, "root", None) or cfg.blob_url
        os.makedirs(root, exist_ok=True)
        message = f"blob folder {root} ready"
    check = check_blobs(store, cfg.blob_url)
    if not check.ok:
        raise RuntimeError(f"{message}, but the probe failed: {check.reason}")
    return message + "; write-read-delete probe passed"
