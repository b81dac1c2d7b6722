"""Token buckets shared by every web process when no Redis is configured (``api/ratelimit.py``)."""
from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class RateBucket(Base):
    """One token bucket: ``tokens`` left at ``updated`` (seconds since the epoch, wall clock)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, nullable=False)
    updated: Mapped[float] = mapped_column(Float, nullable=False, index=True)
