"""Registered endpoints and the audiences their producers offer."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_id, utcnow


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    contact_url: Mapped[str | None] = mapped_column(Text, default=None)
    producer_transport: Mapped[str | None] = mapped_column(String(8), default=None)  # pull | push
    consumer_transport: Mapped[str | None] = mapped_column(String(8), default=None)
    max_rows_per_request: Mapped[int] = mapped_column(Integer, default=100_000)
    consumer_gzip: Mapped[bool] = mapped_column(Boolean, default=False)
    ack_timeout_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    replace_native: Mapped[bool] = mapped_column(Boolean, default=True)
    identifiers: Mapped[list] = mapped_column(JSON, default=list)
    attributes: Mapped[list] = mapped_column(JSON, default=list)
    credential_enc: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_secret_enc: Mapped[str | None] = mapped_column(Text, default=None)
    adapter_type: Mapped[str | None] = mapped_column(String(50), default=None)
    adapter_settings_enc: Mapped[str | None] = mapped_column(Text, default=None)
    adapter_settings_public: Mapped[dict | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    last_refresh_at: Mapped[datetime | None] = mapped_column(default=None)
    last_refresh_error: Mapped[str | None] = mapped_column(Text, default=None)
    # Click to Connect: the application this endpoint was connected from, and how its credential works
    application_id: Mapped[str | None] = mapped_column(
        ForeignKey("applications.id", ondelete="SET NULL"), index=True, default=None)
    credential_type: Mapped[str | None] = mapped_column(String(16), default=None)  # key | oauth2


class Audience(Base):
    __tablename__ = "audiences"
    __table_args__ = (UniqueConstraint("endpoint_id", "external_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    identifiers: Mapped[list] = mapped_column(JSON, default=list)
    attributes: Mapped[list] = mapped_column(JSON, default=list)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    source_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | gone
    gone_at: Mapped[datetime | None] = mapped_column(default=None)
    # latest data pushed by a PUSH producer
    data_key: Mapped[str | None] = mapped_column(Text, default=None)
    data_rows: Mapped[int | None] = mapped_column(BigInteger, default=None)
    data_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    data_columns: Mapped[list | None] = mapped_column(JSON, default=None)
    data_uploaded_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
