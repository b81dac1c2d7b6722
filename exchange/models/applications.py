"""Endpoint applications (defined once by a provider, reviewed by an operator) and Click to Connect state."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_id, utcnow


class Application(Base):
    """A provider's application. ``spec`` is the live (approved or not yet approved) definition;
    after the first approval, changes go to ``pending_spec`` (a new version) until reviewed."""

    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="draft")  # draft | in_review | approved | rejected
    version: Mapped[int] = mapped_column(Integer, default=1)
    spec: Mapped[dict] = mapped_column(default=dict)  # everything but the client secret
    client_secret_enc: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_secret_enc: Mapped[str | None] = mapped_column(Text, default=None)
    review_reason: Mapped[str | None] = mapped_column(Text, default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    # the next version of an approved application: draft | in_review | rejected, or None
    pending_state: Mapped[str | None] = mapped_column(String(16), default=None)
    pending_spec: Mapped[dict | None] = mapped_column(default=None)
    pending_client_secret_enc: Mapped[str | None] = mapped_column(Text, default=None)
    pending_reason: Mapped[str | None] = mapped_column(Text, default=None)
    pending_submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConnectState(Base):
    """One OAuth 2.0 authorization request in flight: single use, bound to an account and its user."""

    __tablename__ = "connect_states"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    actor: Mapped[str] = mapped_column(String(200))
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    application_version: Mapped[int] = mapped_column(Integer)
    code_verifier_enc: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(Text)
    return_to: Mapped[str | None] = mapped_column(Text, default=None)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
