"""What a destination can take, answered in one place for share validation and for delivery.

A :class:`Destination` is read from an endpoint row (and, for a partner, its adapter's declarations):
which identifiers and attributes it accepts, which modes it applies natively, whether a share to it
keeps a snapshot, and the limits delivery honours (rows per request, gzip, acknowledgement deadline,
rate limit). Services validate a share with it; the engine plans and delivers with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from ..adapters.registry import get_adapter
from ..models import Endpoint

Kind = Literal["push", "pull", "adapter"]


@dataclass(frozen=True)
class Destination:
    kind: Kind
    identifiers: tuple[str, ...]
    attributes: tuple[str, ...] | None  # None: any attribute
    native_modes: frozenset[str]
    batch_size: int  # rows per request (PUSH part, partner batch)
    gzip: bool = False
    ack_timeout_seconds: int | None = None
    rate_limit: float | None = None  # partner requests per second; None for endpoints
    requires_snapshot: bool = False  # a partner that computes every change from snapshots
    adapter_type: str | None = None

    @classmethod
    def of(cls, ep: Endpoint) -> Destination:
        """The destination an endpoint offers; for a partner, what its adapter declares."""
        if ep.adapter_type:
            adapter = get_adapter(ep.adapter_type)
            return cls(kind="adapter", identifiers=tuple(adapter.identifiers), attributes=None,
                       native_modes=frozenset(adapter.native_modes), batch_size=adapter.batch_size,
                       rate_limit=adapter.rate_limit, requires_snapshot=adapter.requires_snapshot,
                       adapter_type=ep.adapter_type)
        modes = {"add", "remove"} | ({"replace"} if ep.replace_native else set())
        return cls(kind="pull" if ep.consumer_transport == "pull" else "push",
                   identifiers=tuple(ep.identifiers or ()), attributes=tuple(ep.attributes or ()) or None,
                   native_modes=frozenset(modes), batch_size=ep.max_rows_per_request, gzip=bool(ep.consumer_gzip),
                   ack_timeout_seconds=ep.ack_timeout_seconds)

    @property
    def can_replace(self) -> bool:
        return "replace" in self.native_modes

    @property
    def can_remove(self) -> bool:
        return "remove" in self.native_modes

    def needs_snapshot(self, *, mode: str, delta: bool) -> bool:
        """Whether a share keeps a snapshot: for a delta, for a partner that needs one, or for a
        ``replace`` that a PUSH consumer or partner cannot apply natively (sent as adds + removes).
        A PULL consumer downloads a replace as one whole file, so it never needs one for that."""
        if delta or self.requires_snapshot:
            return True
        return mode == "replace" and not self.can_replace and self.kind != "pull"

    def ack_deadline(self, default_seconds: int) -> timedelta:
        """How long the consumer has to acknowledge (its own setting, else the exchange's default)."""
        return timedelta(seconds=self.ack_timeout_seconds or default_seconds)
