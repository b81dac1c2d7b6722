"""Settings of the exchange, read once from ``EXCHANGE_*`` environment variables.

Nothing else in the package reads ``os.environ``; everything takes a :class:`Config`. Tests
subclass it or pass overrides to :meth:`Config.from_env`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Config:
    # --- storage ---------------------------------------------------------------------------
    var_dir: Path = Path("var")  # local state: the default SQLite database, blob folder, metrics files
    # SQLAlchemy URL, e.g. postgresql+psycopg://user:pass@db:5432/exchange; default: SQLite under var_dir
    database_url: str = ""
    # a folder, file:// URL or s3://bucket/prefix (create it with `exchange blobs init`); default: var_dir/blobs
    blob_url: str = ""
    s3_endpoint_url: str = ""  # URL of an S3-compatible store (MinIO, Ceph, moto); path-style addressing then
    # --- security --------------------------------------------------------------------------
    secret_key: str = "dev-insecure-secret-change-me"  # **set it**: encrypts stored secrets, signs web sessions
    old_secret_keys: str = ""  # comma-separated keys that still decrypt (rotation)
    allow_private_urls: bool = False  # allow loopback/private endpoint URLs (demo, tests); keep false in production
    session_cookie_secure: bool = False  # send the web session cookie over HTTPS only; true behind TLS
    operator_emails: str = ""  # comma-separated web users who review endpoint applications (/operator/applications)
    # --- limits ----------------------------------------------------------------------------
    max_json_bytes: int = 1_048_576  # largest JSON request body (413 beyond)
    max_upload_bytes: int = 5 * 1024**3  # largest CSV upload body (match the proxy's limit)
    max_decompressed_bytes: int = 20 * 1024**3  # largest decompressed upload or fetched source (zip bombs)
    max_inflate_ratio: float = 100.0  # a gzip upload may inflate at most this many times its size (past 16 MiB; 0: off)
    rate_limit_per_minute: int = 6000  # requests per API key per minute (429 + Retry-After beyond)
    # where rate-limit buckets live, shared by every web process: database | redis | memory (this process
    # only); default: redis when broker_url is redis://, else database
    rate_limit_store: str = ""
    rate_limit_redis_url: str = ""  # Redis for the rate-limit buckets; default: broker_url
    # a web process reuses an API key it authenticated this many seconds ago without a query (0: off);
    # a key revoked or deleted through another process keeps working there for at most this long
    api_key_cache_seconds: float = 5.0
    # GET /v1/jobs/{id} by a cached key is answered in front of Flask (same body and headers; see
    # exchange/api/fastpath.py); false: every call goes through the full app
    api_status_fast_path: bool = True
    failed_auth_limit: int = 20  # failed API authentications per address and per key prefix per window (then 429)
    failed_auth_window_seconds: int = 60  # the failed-authentication window; valid keys are never refused
    login_attempts: int = 10  # web sign-in attempts per account and address per window (then 429 with the wait)
    login_window_seconds: int = 300  # the sign-in window; attempts come back steadily, never an indefinite lockout
    # --- jobs ------------------------------------------------------------------------------
    executor: str = "process"  # process (child processes) | thread | celery | inline
    workers: int = 4  # job workers of the embedded executor; unused with celery (use --concurrency)
    # idle job workers look for runnable jobs this often; a job queued by any process of this host
    # (web worker, scheduler) wakes them at once over a UNIX socket in EXCHANGE_VAR_DIR/run/wake
    job_poll_seconds: float = 0.5
    broker_url: str = ""  # Celery broker, redis://host:6379/0 or amqp://user:pass@host:5672//
    scheduler: bool = True  # run the scheduler in this process's runner (one leader is elected)
    catalog_refresh_seconds: int = 3600  # PULL producers' catalogs are re-read this often
    source_wait_seconds: int = 600  # bound on a producer answering 202
    ack_deadline_seconds: int = 86400  # PULL consumer / 202 consumer must ack within
    retention_days: int = 30  # job artifacts (sources, outputs, rejects) are deleted after this
    temp_part_max_age_seconds: int = 300  # at start, partial blob writes untouched this long are removed
    http_connect_timeout: float = 5.0  # seconds to connect to an endpoint or partner
    http_read_timeout: float = 60.0  # seconds to wait for an endpoint or partner to answer
    http_total_timeout: float = 300.0  # seconds one whole outbound call may take, however slowly bytes come (0: none)
    max_attempts: int = 5  # attempts per outbound call (rate-limit waits do not count)
    lease_seconds: int = 10  # a dead worker's job is taken over after this; running jobs renew it every third
    scheduler_lease_seconds: int = 15  # a dead scheduler leader is replaced after this
    destination_concurrency: int = 2  # running jobs per destination endpoint (0: no limit)
    partner_concurrency: int = 4  # running jobs per partner account: an account's endpoints of one adapter (0: none)
    fair_slice_seconds: float = 30.0  # a job running this long gives its worker to a waiting share (0: never)
    yield_pause_seconds: float = 2.0  # a job that gave its worker up is due again this much later
    # --- webhooks (the outbox) -------------------------------------------------------------
    webhook_retry_base_seconds: float = 5.0  # first retry delay; doubles each attempt
    webhook_retry_max_delay_seconds: int = 21600  # the doubling stops at this delay (6 h)
    webhook_retry_window_seconds: int = 259200  # a message is retried this long (3 days), then failed
    webhook_timeout_seconds: float = 10.0  # per delivery attempt
    # JSON {"adapter type": "base URL"} or {"adapter type": {"host role": "base URL"}} (roles: GET
    # /v1/adapters → hosts): point partner adapters at a sandbox, a proxy or a test fake
    adapter_base_urls: str = ""
    # --- server ----------------------------------------------------------------------------
    host: str = "127.0.0.1"  # default interface of `exchange serve --host`
    port: int = 8080  # default port of `exchange serve --port`
    public_url: str = ""  # the external base URL, e.g. https://exchange.example.com
    proxy_hops: int = 0  # trusted reverse proxies in front (X-Forwarded-For/-Proto/-Host/-Port/-Prefix)
    log_level: str = "INFO"  # DEBUG | INFO | WARNING | ERROR, for web, runner and worker processes
    log_format: str = "plain"  # plain | json (one JSON object per line)
    shutdown_grace_seconds: int = 5  # on SIGTERM, requests and job steps in flight get this long, then exit
    testing: bool = False

    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Config:
        env = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f"EXCHANGE_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls, f.name, "")) if not isinstance(f.default, Path) else Path
            if kind is bool:
                values[f.name] = _bool(raw)
            elif kind is int:
                values[f.name] = int(raw)
            elif kind is float:
                values[f.name] = float(raw)
            elif kind is Path:
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        values.update(overrides)
        cfg = cls(**values)
        cfg.var_dir = Path(cfg.var_dir)
        if not cfg.database_url:
            cfg.database_url = f"sqlite:///{(cfg.var_dir / 'exchange.db').resolve()}"
        if not cfg.blob_url:
            cfg.blob_url = str((cfg.var_dir / "blobs").resolve())
        return cfg

    def adapter_base_url(self, adapter_type: str) -> str | dict | None:
        """The host override for one adapter type (a URL, or a role -> URL map); the adapter validates it."""
        import json

        from .errors import ConfigError

        try:
            overrides = json.loads(self.adapter_base_urls or "{}")
        except ValueError:
            raise ConfigError("EXCHANGE_ADAPTER_BASE_URLS must be a JSON object, e.g. "
                              '{"batch": "https://sandbox.example"}') from None
        if not isinstance(overrides, dict):
            raise ConfigError("EXCHANGE_ADAPTER_BASE_URLS must be a JSON object keyed by adapter type")
        return overrides.get(adapter_type)

    @property
    def secret_keys(self) -> list[str]:
        return [self.secret_key] + [k for k in self.old_secret_keys.split(",") if k.strip()]
