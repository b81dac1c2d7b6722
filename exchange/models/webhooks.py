"""The webhook outbox: one row per message and subscriber, written with the job's state change."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class WebhookMessage(Base):
    """One notification to one subscriber; its id is the ``webhook-id`` of every attempt."""

    __tablename__ = "webhook_messages"
    __table_args__ = (Index("ix_webhook_messages_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_<32 hex>
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    subscriber: Mapped[str] = mapped_column(String(80), index=True)  # "account:<id>" | "endpoint:<id>"
    job_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body of every attempt
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)  # HTTP status of the last answer
    last_response: Mapped[str | None] = mapped_column(Text, default=None)  # its first 500 characters
    last_error: Mapped[str | None] = mapped_column(Text, default=None)  # or why there was no answer
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookSubscriber(Base):
    """Health of one subscriber (an account's or an endpoint's webhook URL)."""

    __tablename__ = "webhook_subscribers"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # "account:<id>" | "endpoint:<id>"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
