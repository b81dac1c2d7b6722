"""Safe outbound HTTP for every call the exchange makes: endpoints, webhooks and partner APIs.

* :mod:`.urls` — which URLs/addresses may be called (registration-time syntax check, full check).
* :mod:`.session` — :class:`OutboundSession`, enforcing the address policy at connect time.
* :mod:`.outcomes` — one table from statuses/exceptions to ok / retry / fail / credentials.
* :mod:`.retry` — the one retry loop (tenacity): equal-jitter backoff, Retry-After, rate limits as waits.
* :mod:`.webhooks` — Standard Webhooks signatures.
"""
from __future__ import annotations

from exchange.net.outcomes import (
    Outcome,
    RateLimitedTransferError,
    Resolution,
    classify,
    error_for,
    is_rate_limit,
    parse_retry_after,
    raise_for_outcome,
    resolve_status,
)
from exchange.net.retry import (
    WAIT_RATE_LIMIT,
    WAIT_RETRY,
    RateLimitBudget,
    RetryPolicy,
    Wait,
    backoff_delays,
    call_with_retries,
)
from exchange.net.session import GuardedAdapter, OutboundSession, default_user_agent
from exchange.net.urls import address_problem, check_url, check_url_syntax, redact_text, redact_url
from exchange.net.webhooks import generate_webhook_secret, sign_webhook, verify_webhook, webhook_headers

__all__ = [
    "WAIT_RATE_LIMIT",
    "WAIT_RETRY",
    "GuardedAdapter",
    "OutboundSession",
    "Outcome",
    "RateLimitBudget",
    "RateLimitedTransferError",
    "Resolution",
    "RetryPolicy",
    "Wait",
    "address_problem",
    "backoff_delays",
    "call_with_retries",
    "check_url",
    "check_url_syntax",
    "classify",
    "default_user_agent",
    "error_for",
    "generate_webhook_secret",
    "is_rate_limit",
    "parse_retry_after",
    "raise_for_outcome",
    "redact_text",
    "redact_url",
    "resolve_status",
    "sign_webhook",
    "verify_webhook",
    "webhook_headers",
]
