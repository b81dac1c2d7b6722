"""token buckets shared across web processes (issue 15)

Revision ID: i15_rate_buckets
Revises: i16_applications
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i15_rate_buckets"
down_revision = "i16_applications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_buckets")),
    )
    op.create_index(op.f("ix_rate_buckets_updated"), "rate_buckets", ["updated"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_buckets_updated"), table_name="rate_buckets")
    op.drop_table("rate_buckets")
