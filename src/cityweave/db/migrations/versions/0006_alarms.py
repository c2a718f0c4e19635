"""Alarms: one open alarm per cause (unique open_key), occurrence counts, lifecycle history

Revision ID: 0006_alarms
Revises: 0005
Create Date: 2026-11-22 02:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import cityweave.db.base

revision = "0006_alarms"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
UTC = cityweave.db.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("cause_key", sa.String(length=200), nullable=False),
        sa.Column("open_key", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("rule_key", sa.String(length=100), nullable=True),
        sa.Column("device_id", sa.String(length=40), nullable=True),
        sa.Column("place_id", sa.String(length=64), nullable=False),
        sa.Column("place_path", sa.String(length=600), nullable=False),
        sa.Column("title", JSON, nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("first_at", UTC(), nullable=False),
        sa.Column("last_at", UTC(), nullable=False),
        sa.Column("escalation", JSON, nullable=False),
        sa.Column("escalation_step", sa.Integer(), nullable=False),
        sa.Column("escalation_due_at", UTC(), nullable=True),
        sa.Column("work_order_requested", sa.Boolean(), nullable=False),
        sa.Column("work_order_ref", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", UTC(), nullable=True),
        sa.Column("dispatched_at", UTC(), nullable=True),
        sa.Column("closed_at", UTC(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["place_id"], ["places.id"], name=op.f("fk_alarms_place_id_places"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarms_cause_key"), ["cause_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_open_key"), ["open_key"], unique=True)
        batch_op.create_index(batch_op.f("ix_alarms_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_place_id"), ["place_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_place_path"), ["place_path"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_escalation_due_at"), ["escalation_due_at"], unique=False)

    op.create_table(
        "alarm_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alarm_id", sa.String(length=40), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_events_alarm_id_alarms"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_events")),
    )
    with op.batch_alter_table("alarm_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_events_alarm_id"), ["alarm_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alarm_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarm_events_alarm_id"))
    op.drop_table("alarm_events")
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        for column in ("escalation_due_at", "place_path", "place_id", "device_id", "status", "kind",
                       "open_key", "cause_key"):
            batch_op.drop_index(batch_op.f(f"ix_alarms_{column}"))
    op.drop_table("alarms")
