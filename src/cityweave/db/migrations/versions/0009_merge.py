"""Merge: alarms, device rooms, notifications, rules and work orders were written in parallel off
0005; from here on the history is one line again.

Revision ID: 0009_merge
Revises: 0006_devices_room, 0006_rules, 0006_workorders, 0007_alarm_events_at, 0008_rule_webhooks
"""

revision = "0009_merge"
down_revision = ("0006_devices_room", "0006_rules", "0006_workorders", "0007_alarm_events_at", "0008_rule_webhooks")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
