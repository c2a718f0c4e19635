"""Telemetry: latest state per series, raw readings, per-minute and per-hour rollups

A branch off 0001 parallel to 0002 (device registry); the merge revision joins them.
Time-series time columns are integer milliseconds since the epoch (see telemetry/models.py).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22 00:40:00
"""

import sqlalchemy as sa
from alembic import op

import cityweave.db.base

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None

# Byte-wise on PostgreSQL so that a path prefix is an index range (see telemetry/models.py).
PLACE_PATH = sa.String(length=600).with_variant(sa.String(length=600, collation='C'), 'postgresql')


def _series_key() -> list[sa.Column]:
    return [
        sa.Column('device_key', sa.String(length=128), nullable=False),
        sa.Column('capability', sa.String(length=64), nullable=False),
        sa.Column('endpoint', sa.String(length=64), nullable=False),
    ]


def _create_rollup(name: str) -> None:
    op.create_table(name,
    *_series_key(),
    sa.Column('bucket_ms', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('num_min', sa.Float(), nullable=True),
    sa.Column('num_max', sa.Float(), nullable=True),
    sa.Column('num_sum', sa.Float(), nullable=True),
    sa.Column('last_ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_num', sa.Float(), nullable=True),
    sa.Column('last_text', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('device_key', 'capability', 'endpoint', 'bucket_ms', name=op.f(f'pk_{name}')),
    sqlite_with_rowid=False,
    )
    op.create_index(f'ix_{name}_bucket_ms', name, ['bucket_ms'], unique=False)


def upgrade() -> None:
    op.create_table('device_state',
    *_series_key(),
    sa.Column('place_path', PLACE_PATH, nullable=True),
    sa.Column('value_type', sa.String(length=8), nullable=False),
    sa.Column('num', sa.Float(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('unit', sa.String(length=32), nullable=True),
    sa.Column('quality', sa.String(length=16), nullable=False),
    sa.Column('ts', cityweave.db.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', cityweave.db.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('device_key', 'capability', 'endpoint', name=op.f('pk_device_state')),
    sqlite_with_rowid=False,  # keyed upserts every batch: one clustered B-tree, not two
    )
    op.create_index('ix_device_state_place_path', 'device_state', ['place_path'], unique=False)

    op.create_table('readings',
    *_series_key(),
    sa.Column('ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('num', sa.Float(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('quality', sa.String(length=16), nullable=False),
    )
    op.create_index('ix_readings_series_ts', 'readings', ['device_key', 'capability', 'endpoint', 'ts_ms'], unique=False)

    _create_rollup('readings_1m')
    _create_rollup('readings_1h')

    if op.get_bind().dialect.name == 'postgresql':
        # Rows updated in place every batch: free space on each page lets PostgreSQL make those
        # updates HOT (no new index entries, no index bloat); the key columns never change.
        for table in ('device_state', 'readings_1m', 'readings_1h'):
            op.execute(f'ALTER TABLE {table} SET (fillfactor = 70)')

    op.create_table('telemetry_watermarks',
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('pruned_before_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('level', name=op.f('pk_telemetry_watermarks'))
    )


def downgrade() -> None:
    op.drop_table('telemetry_watermarks')
    op.drop_index('ix_readings_1h_bucket_ms', table_name='readings_1h')
    op.drop_table('readings_1h')
    op.drop_index('ix_readings_1m_bucket_ms', table_name='readings_1m')
    op.drop_table('readings_1m')
    op.drop_index('ix_readings_series_ts', table_name='readings')
    op.drop_table('readings')
    op.drop_index('ix_device_state_place_path', table_name='device_state')
    op.drop_table('device_state')
