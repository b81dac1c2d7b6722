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
    var_dir: Path = Path("var")
    database_url: str = ""  # default: sqlite under var_dir
    blob_url: str = ""  # default: var_dir / "blobs"; or s3://bucket/prefix
    s3_endpoint_url: str = ""  # for S3-compatible stores (moto, MinIO)
    # --- security --------------------------------------------------------------------------
    secret_key: str = "dev-insecure-secret-change-me"
    old_secret_keys: str = ""  # comma-separated keys that still decrypt (rotation)
    allow_private_urls: bool = False
    session_cookie_secure: bool = False
    # --- limits ----------------------------------------------------------------------------
    max_json_bytes: int = 1_048_576
    max_upload_bytes: int = 5 * 1024**3
    max_decompressed_bytes: int = 20 * 1024**3
    max_inflate_ratio: float = 100.0  # a gzip upload may inflate at most this many times (past 16 MiB)
    rate_limit_per_minute: int = 6000
    # where rate-limit buckets live: "" (redis when broker_url is redis://, else database) | database
    # | redis | memory (this process only)
    rate_limit_store: str = ""
    rate_limit_redis_url: str = ""  # default: broker_url
    failed_auth_limit: int = 20  # failed API authentications per address and per key prefix ...
    failed_auth_window_seconds: int = 60  # ... per this window; then 429 for failures (valid keys pass)
    login_attempts: int = 10  # web sign-in attempts per account and address ...
    login_window_seconds: int = 300  # ... per this window; then 429 with the wait (never indefinite)
    # --- jobs ------------------------------------------------------------------------------
    executor: str = "process"  # process (child processes) | thread | celery | inline
    workers: int = 4
    broker_url: str = ""
    scheduler: bool = True
    catalog_refresh_seconds: int = 3600
    source_wait_seconds: int = 600  # bound on a producer answering 202
    ack_deadline_seconds: int = 86400  # PULL consumer / 202 consumer must ack within
    retention_days: int = 30
    temp_part_max_age_seconds: int = 300  # at start, partial blob writes untouched this long are removed
    http_connect_timeout: float = 5.0
    http_read_timeout: float = 60.0
    http_total_timeout: float = 300.0  # bound on one whole outbound call, however the bytes trickle (0: none)
    max_attempts: int = 5
    lease_seconds: int = 60  # a crashed worker's job is picked up again after this
    destination_concurrency: int = 2  # running jobs per destination endpoint (0: no limit)
    partner_concurrency: int = 4  # running jobs per partner account (account + adapter type; 0: no limit)
    fair_slice_seconds: float = 30.0  # a job running this long gives its worker to a waiting share (0: never)
    yield_pause_seconds: float = 2.0  # ... and is due again this much later, resuming where it stopped
    scheduler_lease_seconds: int = 15  # a dead scheduler is replaced after this
    # JSON {"adapter type": "base URL"}: point partner adapters at a sandbox, a proxy or a test fake
    adapter_base_urls: str = ""
    # --- server ----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    proxy_hops: int = 0  # trusted reverse proxies in front (X-Forwarded-For/-Proto/-Host/-Port/-Prefix)
    log_level: str = "INFO"
    shutdown_grace_seconds: int = 5  # on SIGTERM: requests and job steps in flight get this long
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

    def adapter_base_url(self, adapter_type: str) -> str | None:
        import json

        return json.loads(self.adapter_base_urls or "{}").get(adapter_type)

    @property
    def secret_keys(self) -> list[str]:
        return [self.secret_key] + [k for k in self.old_secret_keys.split(",") if k.strip()]
