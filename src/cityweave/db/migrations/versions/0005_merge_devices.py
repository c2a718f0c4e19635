"""Merge: the device registry (0002), telemetry (0003) and ingest receipts (0004) were written
in parallel off the foundation; from here on the history is one line again.

Revision ID: 0005
Revises: 0002, 0003, 0004
"""

revision = "0005"
down_revision = ("0002", "0003", "0004")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
