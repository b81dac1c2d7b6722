"""Gathering audience metadata from PULL producers (placeholder until the catalog lands)."""
from __future__ import annotations


def gather_on_registration(rt, endpoint_id: str) -> None:
    return None
