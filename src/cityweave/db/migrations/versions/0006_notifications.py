"""Notifications: the outbox (one row per recipient, channel and message) and channel preferences

Revision ID: 0006_notifications
Revises: 0005
Create Date: 2026-11-22 02:50:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import cityweave.db.base

revision = "0006_notifications"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
UTC = cityweave.db.base.UTCDateTime
STATUS = sa.Enum("pending", "sent", "failed", "suppressed", "digested", name="notificationstatus",
                 native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("subject_key", sa.String(length=100), nullable=False),
        sa.Column("body_key", sa.String(length=100), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("place_path", sa.String(length=600), nullable=True),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("sent_at", UTC(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["digest_id"], ["notifications.id"],
                                name=op.f("fk_notifications_digest_id_notifications"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    op.create_index(op.f("ix_notifications_user_id"), "notifications", ["user_id"], unique=False)
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"], unique=False)
    op.create_index("ix_notifications_recent", "notifications", ["user_id", "channel", "sent_at"], unique=False)
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("channels", JSON, nullable=False),
        sa.Column("webhook_url", sa.String(length=500), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_notification_preferences_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_preferences")),
    )


def downgrade() -> None:
    op.drop_table("notification_preferences")
    op.drop_index("ix_notifications_recent", table_name="notifications")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_index(op.f("ix_notifications_user_id"), table_name="notifications")
    op.drop_table("notifications")
