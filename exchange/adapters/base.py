"""The partner adapter contract: what a plug-in declares and the few hooks it overrides.

An adapter is a small class (singer-sdk / action-destinations style) that *declares* its name,
settings schema, accepted identifiers, native modes, batch size and rate limit, and overrides
``check``, ``prepare``, ``deliver_batch`` and ``finish``. It never loops, sleeps or retries: the
engine-side driver (:mod:`exchange.adapters.driver`) owns batching, pacing, retries and counts.
Every HTTP request goes through :meth:`Adapter.request`, which calls the driver's pacer first, so
the rate limit holds per request even when a hook sends two (a token, then a create).

Secrets: every settings field flagged ``secret`` is ``load_only`` (never dumped) and its value is
scrubbed from every message an adapter builds and from urllib3's debug log lines (which print
request paths, and Batch puts its API key in the path).
"""
from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import requests
from marshmallow import RAISE, Schema, ValidationError, fields

from exchange.errors import ExchangeError, InvalidCredentials, ValidationFailed
from exchange.net.outcomes import Outcome, Resolution, classify, error_for, is_rate_limit, resolve_status
from exchange.net.outcomes import parse_retry_after as _parse_retry_after
from exchange.net.retry import RetryPolicy

__all__ = ["Adapter", "BatchResult", "SegmentContext", "error_for_status", "is_rate_limited", "parse_retry_after"]

Op = Literal["add", "remove"]
MODES = frozenset({"add", "remove", "replace"})
DEFAULT_TIMEOUT = (5.0, 60.0)  # connect, read: partners can be slow to index a 10k batch


@dataclass(frozen=True)
class SegmentContext:
    """Where a delivery goes, as the seeds name it (resolved by the caller, see SPEC §9)."""

    site_id: str  # the adapter setting ``site_id``, or the account id when unset
    segment_id: str  # the share's destination id, or the source audience id
    segment_name: str  # the destination audience name chosen on the share
    job_id: str


@dataclass
class BatchResult:
    """What the partner did with one batch: counts, refused rows with reasons, events to record."""

    accepted: int
    rejected: list[tuple[dict, str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Limit:
    """One partner limit the adapter honours, with where the number comes from.

    ``status`` says how sure we are: ``documented`` (the partner's or the integrating platform's
    own docs or code), ``observed`` (a third party's client or probe) or ``assumed`` (nothing
    published; the adapter stays below it and the fake makes it configurable).
    """

    name: str
    value: float
    unit: str
    status: Literal["documented", "observed", "assumed"]
    source: str

    def as_dict(self) -> dict[str, Any]:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return {"name": self.name, "value": value, "unit": self.unit, "status": self.status,
                "source": self.source}


class AdapterSettingsSchema(Schema):
    """Settings every adapter shares; subclasses add their own fields."""

    class Meta:
        unknown = RAISE

    site_id = fields.String(
        load_default=None,
        allow_none=True,
        metadata={
            "title": "Site id",
            "description": "Used in partner segment ids and descriptions; defaults to the account id.",
        },
    )
    hosts = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        load_default=dict,
        metadata={
            "title": "Partner hosts",
            "description": "Override the partner's base URLs by role (sandbox, proxy), e.g. "
                           '{"api": "https://sandbox.example"}; roles are listed under "hosts" in GET /v1/adapters.',
        },
    )


def secret(field_obj: fields.Field) -> fields.Field:
    """Mark a settings field as a secret: load-only, flagged for the UI and for scrubbing."""
    field_obj.load_only = True
    field_obj.metadata = {**field_obj.metadata, "secret": True}
    return field_obj


def secret_names(schema_cls: type[Schema]) -> list[str]:
    return [name for name, f in schema_cls().fields.items() if f.metadata.get("secret")]


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP date, capped like every outbound call's)."""
    return _parse_retry_after(value)


# What partner statuses mean where they differ from the exchange's one table (exchange.net.outcomes):
# partners answer 403 for a refused operation (Batch: API_MISUSE), not for bad credentials.
PARTNER_STATUS_OVERRIDES: Mapping[int, Resolution] = {403: Resolution.FAIL}


def error_for_status(
    status: int, *, detail: str, retry_after: float | None = None, auth_setting: str | None = None,
    overrides: Mapping[int, Resolution] | None = None,
) -> ExchangeError | None:
    """The error for a partner's answer, through the exchange's one status table (None when OK)."""
    resolution = resolve_status(status, PARTNER_STATUS_OVERRIDES if overrides is None else overrides)
    if resolution is Resolution.OK:
        return None
    exc = error_for(Outcome(resolution, detail, status=status, retry_after=retry_after),
                    credential_setting=auth_setting, hint=False)
    # Not passed as ``status=``: that would become the status of *our* problem document.
    exc.partner_status = status  # type: ignore[attr-defined]
    return exc


def is_rate_limited(exc: BaseException) -> bool:
    return is_rate_limit(exc)


class Adapter:
    """Base class of partner adapters. Subclasses declare the class attributes and hooks."""

    name: ClassVar[str]
    title: ClassVar[str]
    settings_schema: ClassVar[type[Schema]] = AdapterSettingsSchema
    identifiers: ClassVar[tuple[str, ...]] = ()
    native_modes: ClassVar[frozenset[str]] = frozenset({"add", "remove"})
    batch_size: ClassVar[int] = 1000
    rate_limit: ClassVar[float] = 10.0  # requests per second
    concurrency: ClassVar[int] = 1  # requests in flight at once, within rate_limit
    requires_snapshot: ClassVar[bool] = True  # replace = adds + removes computed from snapshots
    auth_setting: ClassVar[str] = ""  # the setting blamed when the partner answers 401
    # Outbound hosts by role -> default base URL. One shape for every adapter: each role can be
    # overridden by the ``hosts`` setting of an endpoint, or by the deployment's
    # EXCHANGE_ADAPTER_BASE_URLS ({"type": "url"} for every role, or {"type": {"role": "url"}}).
    hosts: ClassVar[dict[str, str]] = {}
    limits: ClassVar[tuple[Limit, ...]] = ()  # the partner's limits, as published in GET /v1/adapters
    # Only what differs from the exchange's one outbound policy: statuses with another meaning, and
    # the retry numbers (partners index slowly: backoff from 1 s up to 60 s, 15 min of 429 waits).
    status_overrides: ClassVar[Mapping[int, Resolution]] = PARTNER_STATUS_OVERRIDES
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy(max_attempts=5, base=1.0, cap=60.0, max_rate_limit_wait=900.0)

    def __init__(
        self,
        settings: dict,
        context: SegmentContext,
        session: requests.Session,
        base_url: str | dict | None = None,
    ) -> None:
        self.settings = self.load_settings(settings)
        self.context = context
        self.session = session
        self._host_overrides = {**self.deployment_hosts(base_url), **self.settings.get("hosts", {})}
        self.runtime_secrets: list[str] = []  # secrets learnt while running (e.g. an OAuth token)
        # Called before every HTTP request; the driver installs its rate pacer here, so a hook that
        # needs two requests (a token, then a create) is paced per request, not per call.
        self.pace: Callable[[], None] = _no_pacing
        _LIVE.add(self)

    # -- declarations helpers -------------------------------------------------------------
    @classmethod
    def load_settings(cls, settings: dict) -> dict:
        """Validate and complete settings; errors are keyed ``adapter.settings.<field>``."""
        try:
            loaded = cls.settings_schema().load(settings or {})
        except ValidationError as err:
            messages = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
            errors = {f"adapter.settings.{key}": _as_list(msgs) for key, msgs in messages.items()}
            raise ValidationFailed(f"Invalid settings for the {cls.__name__} adapter", errors=errors) from None
        hosts, errors = {}, {}
        for role, url in (loaded.get("hosts") or {}).items():
            problem = cls.host_problem(role, url)
            if problem:
                errors[f"adapter.settings.hosts.{role}"] = [problem]
            else:
                hosts[role] = url.rstrip("/")
        if errors:
            raise ValidationFailed(f"Invalid settings for the {cls.__name__} adapter", errors=errors)
        loaded["hosts"] = hosts
        return loaded

    @classmethod
    def host_problem(cls, role: str, url: Any) -> str | None:
        """Why ``url`` cannot serve as the ``role`` host, or None."""
        if role not in cls.hosts:
            known = ", ".join(sorted(cls.hosts)) or "none"
            return f"Unknown host role '{role}' for {cls.__name__} (roles: {known})."
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            return "Must be an http(s) base URL, e.g. https://sandbox.example.com."
        if parts.query or parts.fragment or parts.username or parts.password:
            return "Must be a base URL without query, fragment or credentials."
        return None

    @classmethod
    def deployment_hosts(cls, base_url: str | dict | None, setting: str = "EXCHANGE_ADAPTER_BASE_URLS") -> dict:
        """Host overrides from the deployment (one URL for every role, or a role -> URL map)."""
        if not base_url:
            return {}
        pairs = base_url.items() if isinstance(base_url, dict) else ((role, base_url) for role in cls.hosts)
        hosts, errors = {}, {}
        for role, url in pairs:
            problem = cls.host_problem(role, url)
            if problem:
                errors[f"{setting}.{getattr(cls, 'name', cls.__name__)}.{role}"] = [problem]
            else:
                hosts[role] = url.rstrip("/")
        if errors:
            raise ValidationFailed(f"Invalid host override for the {cls.__name__} adapter", errors=errors)
        return hosts

    def default_host(self, role: str) -> str:
        """The partner's own base URL for ``role``; subclasses pick by region or setting."""
        return self.hosts[role]

    @property
    def base_url(self) -> str:
        """The ``api`` host: kept for plug-ins written before host roles (one base URL each)."""
        return self.host("api") if "api" in self.hosts else ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("base_url_default")
        if legacy and "hosts" not in cls.__dict__:  # a plug-in declaring one base URL: the ``api`` role
            cls.hosts = {"api": legacy}

    def host(self, role: str) -> str:
        """The base URL to use for ``role``: endpoint setting, then deployment, then the partner's."""
        return (self._host_overrides.get(role) or self.default_host(role)).rstrip("/")

    @staticmethod
    def rebase(url: str, base: str) -> str:
        """``url`` with its scheme and host (and any path prefix of ``base``) replaced by ``base``."""
        target, parts = urlsplit(base), urlsplit(url)
        return urlunsplit((target.scheme, target.netloc, target.path.rstrip("/") + parts.path, parts.query, ""))

    @classmethod
    def describe_limits(cls) -> list[dict[str, Any]]:
        return [limit.as_dict() for limit in cls.limits]

    def sample_row(self) -> dict[str, str]:
        """One clearly fake member for the smoke check (``exchange adapters check``)."""
        raise NotImplementedError

    def read_back(self) -> dict[str, Any]:
        """What the partner reports about the segment now (counts, states); {} when it tells nothing."""
        return {}

    # -- hooks ----------------------------------------------------------------------------
    def check(self) -> None:
        """One harmless authenticated call; raise InvalidCredentials(setting=...) when refused."""
        raise NotImplementedError

    def prepare(self) -> list[str]:
        """Run once before the first batch (e.g. create the segment idempotently); returns events."""
        return []

    def prefilter(self, row: dict[str, str]) -> str | None:
        """A reason to reject ``row`` before it is sent, or None to send it."""
        return None

    def deliver_batch(self, op: Op, rows: list[dict[str, str]]) -> BatchResult:
        """Send one batch in one request. Raise the error tree's transfer errors on failure."""
        raise NotImplementedError

    def finish(self) -> list[str]:
        """Run once after the last batch; returns events to record (e.g. partner-side counts)."""
        return []

    # -- helpers for subclasses -----------------------------------------------------------
    def secret_values(self) -> list[str]:
        """Every string that must never appear in a message or a log line."""
        values: list[str] = [v for v in self.runtime_secrets if v]
        for name in secret_names(self.settings_schema):
            value = self.settings.get(name)
            if not value:
                continue
            values.append(str(value))
            parts = urlsplit(str(value))
            # A URL that is a credential (Equals) leaks through its path in urllib3's log line.
            if parts.scheme and len(parts.path) > 1:
                values.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        return values

    def scrub(self, text: str) -> str:
        for value in sorted(self.secret_values(), key=len, reverse=True):
            if len(value) >= 4:
                text = text.replace(value, "***")
        return text

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        auth_setting: str | None = None,
        ok: tuple[int, ...] = (),
        paced: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; map transport failures and error statuses through the one table.

        ``what`` names the operation for messages (never the URL: it can hold a secret).
        Statuses listed in ``ok`` are returned to the caller instead of raising. ``paced=False``
        skips the rate pacer for a route the partner's limit does not cover (e.g. an OAuth token).
        """
        kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
        if paced:
            self.pace()
        try:
            response = self.session.request(method, url, **kwargs)
        except (requests.RequestException, OSError) as err:
            # Resolved by the one exception table; the exception text carries the URL: report only its kind.
            outcome = classify(err)
            raise error_for(Outcome(outcome.resolution, f"{self.title}: {what} failed ({type(err).__name__})"),
                            hint=False) from None
        if response.status_code in ok:
            return response
        detail = f"{self.title}: {what} answered HTTP {response.status_code}"
        partner_message = self.partner_message(response)
        if partner_message:
            detail += f": {partner_message}"
        exc = error_for_status(
            response.status_code,
            detail=self.scrub(detail),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            auth_setting=auth_setting or self.auth_setting,
            overrides=self.status_overrides,
        )
        if exc is not None:
            raise exc
        return response

    def partner_message(self, response: requests.Response) -> str:
        """The partner's own error text, shortened; subclasses know their error body shape."""
        return _short(response.text)

    def credentials_error(self, detail: str, setting: str | None = None) -> InvalidCredentials:
        setting = setting or self.auth_setting
        return InvalidCredentials(self.scrub(f"{detail} (check the setting '{setting}')"), setting=setting)


def _no_pacing() -> None:
    return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_list(messages: Any) -> list:
    return messages if isinstance(messages, list) else [messages]


# Adapters alive in this process: the log filter below scrubs their secrets.
_LIVE: weakref.WeakSet[Adapter] = weakref.WeakSet()


class SecretScrubbingFilter(logging.Filter):
    """Scrubs live adapters' secrets from log records (urllib3 logs full request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        adapters = list(_LIVE)
        if not adapters:
            return True
        message = record.getMessage()
        scrubbed = message
        for adapter in adapters:
            scrubbed = adapter.scrub(scrubbed)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_FILTER = SecretScrubbingFilter()
for _logger_name in ("urllib3.connectionpool", "exchange.adapters"):
    logging.getLogger(_logger_name).addFilter(_FILTER)
