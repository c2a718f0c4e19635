"""Device registry: devices, per-device credentials, the command log, the registry revision

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import cityweave.db.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')
UTC = cityweave.db.base.UTCDateTime


def upgrade() -> None:
    op.create_table('devices',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('adapter', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('aliases', JSON, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('device_type', sa.String(length=64), nullable=True),
    sa.Column('manufacturer', sa.String(length=200), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('firmware', sa.String(length=100), nullable=True),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('profile', JSON, nullable=False),
    sa.Column('capabilities', JSON, nullable=False),
    sa.Column('place_id', sa.String(length=64), nullable=True),
    sa.Column('place_path', sa.String(length=600), nullable=True),
    sa.Column('place_kind', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=True),
    sa.Column('last_seen_at', UTC(), nullable=True),
    sa.Column('claimed_at', UTC(), nullable=True),
    sa.Column('decommissioned_at', UTC(), nullable=True),
    sa.Column('created_at', UTC(), nullable=False),
    sa.Column('updated_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'], name=op.f('fk_devices_place_id_places'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices'))
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_place_id'), ['place_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_devices_place_path'), ['place_path'], unique=False)
        batch_op.create_index(batch_op.f('ix_devices_status'), ['status'], unique=False)
        batch_op.create_index(
            'uq_devices_adapter_address_live', ['adapter', 'address'], unique=True,
            sqlite_where=sa.text("status != 'decommissioned'"),
            postgresql_where=sa.text("status != 'decommissioned'"),
        )

    op.create_table('device_credentials',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTC(), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('revoked_at', UTC(), nullable=True),
    sa.Column('last_used_at', UTC(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_credentials_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_credentials')),
    sa.UniqueConstraint('prefix', name=op.f('uq_device_credentials_prefix'))
    )
    with op.batch_alter_table('device_credentials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_credentials_device_id'), ['device_id'], unique=False)

    op.create_table('device_commands',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=False),
    sa.Column('capability', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=100), nullable=True),
    sa.Column('value', JSON, nullable=True),
    sa.Column('requested_by', sa.String(length=40), nullable=True),
    sa.Column('requested_by_name', sa.String(length=100), nullable=False),
    sa.Column('requested_at', UTC(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('topic', sa.String(length=300), nullable=True),
    sa.Column('expected', JSON, nullable=True),
    sa.Column('deadline_at', UTC(), nullable=True),
    sa.Column('completed_at', UTC(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_commands_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_commands'))
    )
    with op.batch_alter_table('device_commands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_commands_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_device_commands_status'), ['status'], unique=False)

    op.create_table('device_registry_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_registry_state'))
    )
    # Exists from the start, so bumping the revision is always a plain UPDATE.
    op.execute("INSERT INTO device_registry_state (id, revision) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table('device_registry_state')
    with op.batch_alter_table('device_commands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_commands_status'))
        batch_op.drop_index(batch_op.f('ix_device_commands_device_id'))
    op.drop_table('device_commands')
    with op.batch_alter_table('device_credentials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_credentials_device_id'))
    op.drop_table('device_credentials')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('uq_devices_adapter_address_live')
        batch_op.drop_index(batch_op.f('ix_devices_status'))
        batch_op.drop_index(batch_op.f('ix_devices_place_path'))
        batch_op.drop_index(batch_op.f('ix_devices_place_id'))
    op.drop_table('devices')
