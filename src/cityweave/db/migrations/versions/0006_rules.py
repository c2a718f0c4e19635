"""Rules: household modes, scenes and automations (rules/models.py); the rule engine's tables
(rules/state.py: rule_state, household_rule_settings) belong in this revision too

Revision ID: 0006_rules
Revises: 0005
Create Date: 2026-11-22 02:40:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import cityweave.db.base

revision = "0006_rules"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
UTC = cityweave.db.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "household_modes",
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("changed_at", UTC(), nullable=False),
        sa.Column("changed_by", sa.String(length=40), nullable=True),
        sa.Column("changed_by_name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["places.id"],
                                name=op.f("fk_household_modes_household_id_places"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("household_id", name=op.f("pk_household_modes")),
    )
    op.create_table(
        "scenes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("household_path", sa.String(length=600), nullable=False),
        sa.Column("name", JSON, nullable=False),
        sa.Column("actions", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["places.id"],
                                name=op.f("fk_scenes_household_id_places"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenes")),
    )
    with op.batch_alter_table("scenes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scenes_household_id"), ["household_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_scenes_household_path"), ["household_path"], unique=False)
    op.create_table(
        "automations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("household_path", sa.String(length=600), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["places.id"],
                                name=op.f("fk_automations_household_id_places"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automations")),
        sa.UniqueConstraint("household_id", "key", name="uq_automations_household_key"),
    )
    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_automations_household_id"), ["household_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_automations_household_path"), ["household_path"], unique=False)
    # --- the rule engine's tables (rules/state.py) go below this line ---
    op.create_table(
        "rule_state",
        sa.Column("rule_key", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("due_at", UTC(), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("rule_key", "subject", name=op.f("pk_rule_state")),
    )
    with op.batch_alter_table("rule_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rule_state_due_at"), ["due_at"], unique=False)
    op.create_table(
        "household_rule_settings",
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("rule_key", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["household_id"], ["places.id"],
                                name=op.f("fk_household_rule_settings_household_id_places"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("household_id", "rule_key", name=op.f("pk_household_rule_settings")),
    )


def downgrade() -> None:
    op.drop_table("household_rule_settings")
    with op.batch_alter_table("rule_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_state_due_at"))
    op.drop_table("rule_state")
    # --- the rule engine's tables are dropped above this line ---
    op.drop_table("automations")
    op.drop_table("scenes")
    op.drop_table("household_modes")
