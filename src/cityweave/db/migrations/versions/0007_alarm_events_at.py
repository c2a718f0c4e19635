"""Alarm history by time: an index on alarm_events.at for the notifications' catch-up sweep
(raised and escalated steps of the last minutes whose outbox rows are missing).

Revision ID: 0007_alarm_events_at
Revises: 0006_alarms
Create Date: 2026-11-22 09:35:00
"""

from alembic import op

revision = "0007_alarm_events_at"
down_revision = "0006_alarms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alarm_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_events_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alarm_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarm_events_at"))
