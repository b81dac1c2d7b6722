"""Shares (standing instructions), jobs (their runs), job events and deliveries."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_id, utcnow

TERMINAL_STATES = frozenset({"succeeded", "partially_succeeded", "failed", "cancelled"})


def empty_counts() -> dict:
    return {k: 0 for k in ("received", "valid", "rejected", "duplicates", "added", "removed",
                           "delivered", "acknowledged", "hashed", "passed_through")}


class Share(Base):
    __tablename__ = "shares"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    audience_id: Mapped[str] = mapped_column(ForeignKey("audiences.id", ondelete="CASCADE"), index=True)
    destination_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    destination_audience: Mapped[str] = mapped_column(String(255))
    mapping: Mapped[list] = mapped_column(JSON)
    mode: Mapped[str] = mapped_column(String(16))
    schedule: Mapped[dict] = mapped_column(JSON)
    delta: Mapped[bool] = mapped_column(Boolean, default=False)
    reject_threshold: Mapped[float] = mapped_column(Float, default=0.1)
    default_country: Mapped[str | None] = mapped_column(String(2), default=None)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | paused
    next_run_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    last_scheduled_for: Mapped[datetime | None] = mapped_column(default=None)
    anchor_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    snapshot_key: Mapped[str | None] = mapped_column(Text, default=None)
    snapshot_job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    # at most one run per (share, scheduled time), even with several schedulers
    __table_args__ = (UniqueConstraint("share_id", "scheduled_for"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    share_id: Mapped[str | None] = mapped_column(ForeignKey("shares.id", ondelete="SET NULL"), index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    scheduled_for: Mapped[datetime | None] = mapped_column(default=None)
    state: Mapped[str] = mapped_column(String(24), default="queued", index=True)
    mode: Mapped[str] = mapped_column(String(16), default="add")
    counts: Mapped[dict] = mapped_column(JSON, default=empty_counts)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    timings: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[dict | None] = mapped_column(JSON, default=None)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)  # resumable delivery state
    source_version: Mapped[str | None] = mapped_column(String(255), default=None)
    snapshot_base_job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    source_key: Mapped[str | None] = mapped_column(Text, default=None)
    output_key: Mapped[str | None] = mapped_column(Text, default=None)
    rejects_key: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)  # the lease holder's last renewal
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # state | info | warning | error
    state: Mapped[str | None] = mapped_column(String(24), default=None)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON, default=None)


class Delivery(Base):
    """A file handed to a consumer: downloaded and acked (PULL) or pushed and acked later (202)."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    destination_audience: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="ready")  # ready | acknowledged | expired
    mode: Mapped[str] = mapped_column(String(16))
    columns: Mapped[list] = mapped_column(JSON, default=list)
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    blob_key: Mapped[str | None] = mapped_column(Text, default=None)
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    accepted: Mapped[int | None] = mapped_column(BigInteger, default=None)
    rejected: Mapped[int | None] = mapped_column(BigInteger, default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acked_at: Mapped[datetime | None] = mapped_column(default=None)


class SchedulerLease(Base):
    """A named lease held by one process at a time (the scheduler's leader election)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column()
