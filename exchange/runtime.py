"""The composition root: one object that owns the database, blob store, secrets and executor.

Both the web app and worker processes build a :class:`Runtime` from a :class:`Config`; nothing in
here imports Flask, so the job engine can run anywhere.
"""
from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .config import Config
from .db import Database

if TYPE_CHECKING:
    from .blobs import BlobStore
    from .jobs.executor import Executor
    from .models import Endpoint
    from .net import OutboundSession
    from .secrets import SecretBox
    from .shares.scheduler import Scheduler

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, config: Config):
        self.config = config
        self.db = Database(config.database_url)
        self._executor: Executor | None = None
        self._scheduler: Scheduler | None = None

    @cached_property
    def blobs(self) -> BlobStore:
        from .blobs import open_blob_store

        return open_blob_store(self.config.blob_url, s3_endpoint_url=self.config.s3_endpoint_url or None)

    @cached_property
    def secrets(self) -> SecretBox:
        from .secrets import SecretBox

        return SecretBox(self.config.secret_keys)

    def credential(self, ep: Endpoint) -> Any:  # str | None, or an OAuthBearer (formats as the token)
        """The endpoint's outbound bearer credential, decrypted (never stored in the clear). For an
        endpoint connected by OAuth 2.0, an object whose ``str()`` is the current access token: refreshed
        first when about to expire, and once more on a 401 (``exchange.applications.tokens``)."""
        if ep.credential_type == "oauth2" and ep.credential_enc:
            from .applications.tokens import bearer

            return bearer(self, ep)
        return self.secrets.decrypt(ep.credential_enc) if ep.credential_enc else None

    def adapter_settings(self, ep: Endpoint) -> dict[str, Any]:
        """The endpoint's adapter settings with their secrets, decrypted."""
        if not ep.adapter_settings_enc:
            return {}
        settings: dict[str, Any] = json.loads(self.secrets.decrypt(ep.adapter_settings_enc))
        return settings

    def http(self) -> OutboundSession:
        """A new outbound HTTP session with the SSRF guard and default timeouts."""
        from .net import OutboundSession

        return OutboundSession(allow_private=self.config.allow_private_urls,
                               timeout=(self.config.http_connect_timeout, self.config.http_read_timeout),
                               total_timeout=self.config.http_total_timeout or None)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            from .jobs.executor import make_executor

            self._executor = make_executor(self)
        return self._executor

    def start_background(self) -> None:
        """Start the worker pool and the scheduler (web process of the embedded deployment)."""
        from .jobs.sweep import sweep_leftovers

        sweep_leftovers(self)  # what a killed process left: job working folders, partial blob writes
        self.executor.start()
        if self.config.scheduler:
            from .shares.scheduler import Scheduler

            scheduler = self._scheduler = Scheduler(self)
            scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._executor is not None:
            self._executor.stop()
            self._executor = None
        self.db.dispose()
