"""The identifier types the exchange knows (SPEC §4): defined here once, imported by every layer."""
from __future__ import annotations

IDENTIFIER_TYPES: tuple[str, ...] = (
    "email", "email_sha256", "phone_e164", "phone_sha256", "maid", "cookie_id", "customer_id",
)
