"""The composition root: one object that owns the database, blob store, secrets and executor.

Both the web app and worker processes build a :class:`Runtime` from a :class:`Config`; nothing in
here imports Flask, so the job engine can run anywhere.
"""
from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import TYPE_CHECKING

from .config import Config
from .db import Database

if TYPE_CHECKING:
    from .models import Endpoint

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, config: Config):
        self.config = config
        self.db = Database(config.database_url)
        self._executor = None
        self._scheduler = None

    @cached_property
    def blobs(self):
        from .blobs import open_blob_store

        return open_blob_store(self.config.blob_url, s3_endpoint_url=self.config.s3_endpoint_url or None)

    @cached_property
    def secrets(self):
        from .secrets import SecretBox

        return SecretBox(self.config.secret_keys)

    def credential(self, ep: Endpoint) -> str | None:
        """The endpoint's outbound bearer credential, decrypted (never stored in the clear)."""
        return self.secrets.decrypt(ep.credential_enc) if ep.credential_enc else None

    def adapter_settings(self, ep: Endpoint) -> dict:
        """The endpoint's adapter settings with their secrets, decrypted."""
        return json.loads(self.secrets.decrypt(ep.adapter_settings_enc)) if ep.adapter_settings_enc else {}

    def http(self):
        """A new outbound HTTP session with the SSRF guard and default timeouts."""
        from .net import OutboundSession

        return OutboundSession(allow_private=self.config.allow_private_urls,
                               timeout=(self.config.http_connect_timeout, self.config.http_read_timeout))

    @property
    def executor(self):
        if self._executor is None:
            from .jobs.executor import make_executor

            self._executor = make_executor(self)
        return self._executor

    def start_background(self) -> None:
        """Start the worker pool and the scheduler (web process of the embedded deployment)."""
        self.executor.start()
        if self.config.scheduler:
            from .shares.scheduler import Scheduler

            self._scheduler = Scheduler(self)
            self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._executor is not None:
            self._executor.stop()
            self._executor = None
        self.db.dispose()
