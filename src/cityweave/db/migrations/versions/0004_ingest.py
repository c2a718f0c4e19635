"""Ingest delivery receipts (exactly-once storage across a crash between commit and PUBACK)

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-22 00:40:00
"""

import sqlalchemy as sa
from alembic import op

import cityweave.db.base

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_receipts",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("packet_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("stored_at", cityweave.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "packet_id", name=op.f("pk_ingest_receipts")),
    )


def downgrade() -> None:
    op.drop_table("ingest_receipts")
