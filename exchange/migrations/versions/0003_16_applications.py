"""applications and Click to Connect (issue 16)

Revision ID: i16_applications
Revises: i18_webhook_outbox
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import exchange.models.base


revision = 'i16_applications'
down_revision = 'i18_webhook_outbox'
branch_labels = None
depends_on = None

UTC = exchange.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('applications',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('client_secret_enc', sa.Text(), nullable=True),
    sa.Column('webhook_secret_enc', sa.Text(), nullable=True),
    sa.Column('review_reason', sa.Text(), nullable=True),
    sa.Column('submitted_at', UTC, nullable=True),
    sa.Column('reviewed_at', UTC, nullable=True),
    sa.Column('pending_state', sa.String(length=16), nullable=True),
    sa.Column('pending_spec', sa.JSON(), nullable=True),
    sa.Column('pending_client_secret_enc', sa.Text(), nullable=True),
    sa.Column('pending_reason', sa.Text(), nullable=True),
    sa.Column('pending_submitted_at', UTC, nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_applications_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applications'))
    )
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_applications_account_id'), ['account_id'], unique=False)

    op.create_table('connect_states',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('application_id', sa.String(length=32), nullable=False),
    sa.Column('application_version', sa.Integer(), nullable=False),
    sa.Column('code_verifier_enc', sa.Text(), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('return_to', sa.Text(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('used_at', UTC, nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_connect_states_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_connect_states_application_id_applications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connect_states')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_connect_states_state_hash'))
    )
    with op.batch_alter_table('connect_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connect_states_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_connect_states_application_id'), ['application_id'], unique=False)

    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('application_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('credential_type', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_endpoints_application_id'), ['application_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_endpoints_application_id_applications'), 'applications',
                                    ['application_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_endpoints_application_id_applications'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_endpoints_application_id'))
        batch_op.drop_column('credential_type')
        batch_op.drop_column('application_id')
    op.drop_table('connect_states')
    op.drop_table('applications')
