"""SQLAlchemy models of the exchange; importing this package registers every table."""
from __future__ import annotations

from .accounts import Account, ApiKey, AuditEntry, IdempotencyRecord, User
from .applications import Application, ConnectState
from .base import Base, new_id, utcnow
from .endpoints import Audience, Endpoint
from .jobs import TERMINAL_STATES, Delivery, Job, JobEvent, SchedulerLease, Share, empty_counts
from .ratelimit import RateBucket
from .webhooks import WebhookMessage, WebhookSubscriber

__all__ = [
    "Account", "ApiKey", "AuditEntry", "IdempotencyRecord", "User", "Base", "new_id", "utcnow",
    "Audience", "Endpoint", "TERMINAL_STATES", "Delivery", "Job", "JobEvent", "SchedulerLease",
    "Share", "empty_counts", "WebhookMessage", "WebhookSubscriber", "Application", "ConnectState",
    "RateBucket",
]
