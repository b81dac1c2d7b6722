"""Process logging: plain text by default, one JSON object per line with ``EXCHANGE_LOG_FORMAT=json``.

Every line carries what an operator needs to follow one request or one job across processes:
``request_id`` and ``account`` (inside a web request), ``job_id`` (inside a job) and ``worker``
(the job worker's lease id, else ``host:pid`` of the process). Request fields are read from Flask's
request context when there is one (without importing Flask here); job fields come from
:func:`log_context`, which the job worker loops wrap around each job.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import socket
import sys
from datetime import UTC, datetime

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("exchange_log_context", default=None)
_configured = False
FIELDS = ("request_id", "account", "job_id", "worker")


@contextlib.contextmanager
def log_context(**values):
    """Add ``values`` (job_id=…, worker=…) to every log line emitted inside the block, in this thread."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _request_fields() -> dict:
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return {}
    g = flask.g
    out = {}
    rid = g.get("request_id")
    if rid:
        out["request_id"] = rid
    principal = g.get("principal")
    account = getattr(principal, "account_id", None)
    if account:
        out["account"] = account
    return out


class ContextFilter(logging.Filter):
    """Puts request_id, account, job_id and worker on every record (None when not known)."""

    def __init__(self) -> None:
        super().__init__()
        self.process_id = f"{socket.gethostname()}:{os.getpid()}"

    def filter(self, record: logging.LogRecord) -> bool:
        values = {**_request_fields(), **(_context.get() or {})}
        for name in FIELDS:
            setattr(record, name, values.get(name))
        if record.worker is None:
            record.worker = self.process_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        http = getattr(record, "http", None)
        if http is not None:
            doc["http"] = http
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None) is not None]
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def configure(config, *, force: bool = False) -> None:
    """Install the exchange's log handler on the root logger once per process (level and format from
    ``EXCHANGE_LOG_LEVEL`` and ``EXCHANGE_LOG_FORMAT``). Under tests only the level is set."""
    global _configured
    level = str(config.log_level).upper()
    if config.testing and not force:
        logging.basicConfig(level=level)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        return
    if _configured and not force:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every one-second tick
    _configured = True


def log_requests(app) -> None:
    """With JSON logs, one ``request`` line per request from the app (gunicorn's access log is plain)."""
    import time

    from flask import g, request

    log = logging.getLogger("exchange.access")

    @app.after_request
    def _log(resp):
        started = g.get("started")
        took = (time.perf_counter() - started) if started is not None else None
        log.info("%s %s %s", request.method, request.path, resp.status_code,
                 extra={"http": {"method": request.method, "path": request.path, "status": resp.status_code,
                                 "seconds": round(took, 4) if took is not None else None}})
        return resp
