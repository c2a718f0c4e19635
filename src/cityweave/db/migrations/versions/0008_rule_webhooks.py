"""Rule webhooks through the outbox: a notifications row may belong to no user (user_id NULL) and
carry the address it goes to (a rule's webhook URL).

Revision ID: 0008_rule_webhooks
Revises: 0006_notifications
Create Date: 2026-12-05 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_rule_webhooks"
down_revision = "0006_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=500), nullable=True))
        batch_op.alter_column("user_id", existing_type=sa.String(length=40), nullable=True)


def downgrade() -> None:
    # Rows of no user (rule webhooks) cannot stay in a table whose rows all belong to users.
    op.execute(sa.text("UPDATE notifications SET digest_id = NULL WHERE digest_id IN "
                       "(SELECT id FROM notifications WHERE user_id IS NULL)"))
    op.execute(sa.text("DELETE FROM notifications WHERE user_id IS NULL"))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_column("address")
