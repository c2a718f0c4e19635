"""Work orders: departments, categories (with the default catalogue), work orders, history, photos, rota

Revision ID: 0006_workorders
Revises: 0005
Create Date: 2026-11-22 02:30:00
"""

from datetime import UTC as _UTC
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import cityweave.db.base

revision = "0006_workorders"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
UTC = cityweave.db.base.UTCDateTime


def upgrade() -> None:
    departments = op.create_table(
        "departments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_departments")),
    )
    categories = op.create_table(
        "workorder_categories",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("description_en", sa.String(length=500), nullable=False),
        sa.Column("group", sa.String(length=40), nullable=False),
        sa.Column("keywords", JSON, nullable=False),
        sa.Column("department_id", sa.String(length=40), nullable=False),
        sa.Column("handler_role", sa.String(length=32), nullable=False),
        sa.Column("assignment", sa.String(length=16), nullable=False),
        sa.Column("default_priority", sa.String(length=16), nullable=False),
        sa.Column("accept_within_minutes", sa.Integer(), nullable=False),
        sa.Column("resolve_within_hours", sa.Integer(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"],
                                name=op.f("fk_workorder_categories_department_id_departments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workorder_categories")),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("category_id", sa.String(length=40), nullable=False),
        sa.Column("department_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("place_id", sa.String(length=64), nullable=True),
        sa.Column("place_path", sa.String(length=600), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("reporter_user_id", sa.String(length=40), nullable=True),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("contact_enc", sa.LargeBinary(), nullable=True),
        sa.Column("entered_by", sa.String(length=40), nullable=True),
        sa.Column("alarm_id", sa.String(length=40), nullable=True),
        sa.Column("assignee_user_id", sa.String(length=40), nullable=True),
        sa.Column("merged_into", sa.String(length=40), nullable=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("accept_due_at", UTC(), nullable=False),
        sa.Column("resolve_due_at", UTC(), nullable=False),
        sa.Column("escalation", sa.Integer(), nullable=False),
        sa.Column("next_check_at", UTC(), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("feedback", sa.String(length=1000), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("accepted_at", UTC(), nullable=True),
        sa.Column("resolved_at", UTC(), nullable=True),
        sa.Column("confirmed_at", UTC(), nullable=True),
        sa.Column("closed_at", UTC(), nullable=True),
        sa.ForeignKeyConstraint(["category_id"], ["workorder_categories.id"],
                                name=op.f("fk_work_orders_category_id_workorder_categories")),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"],
                                name=op.f("fk_work_orders_department_id_departments")),
        sa.ForeignKeyConstraint(["place_id"], ["places.id"], name=op.f("fk_work_orders_place_id_places")),
        sa.ForeignKeyConstraint(["reporter_user_id"], ["users.id"],
                                name=op.f("fk_work_orders_reporter_user_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["assignee_user_id"], ["users.id"],
                                name=op.f("fk_work_orders_assignee_user_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["merged_into"], ["work_orders.id"],
                                name=op.f("fk_work_orders_merged_into_work_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_work_orders_number")),
    )
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        for column in ("category_id", "department_id", "status", "place_path", "grid_id", "reporter_user_id",
                       "alarm_id", "assignee_user_id", "next_check_at", "created_at"):
            batch_op.create_index(batch_op.f(f"ix_work_orders_{column}"), [column], unique=False)
        batch_op.create_index("ix_work_orders_dup", ["category_id", "place_id", "created_at"], unique=False)
    op.create_table(
        "work_order_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("work_order_id", sa.String(length=40), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["work_order_id"], ["work_orders.id"],
                                name=op.f("fk_work_order_events_work_order_id_work_orders"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
    )
    with op.batch_alter_table("work_order_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_order_events_work_order_id"), ["work_order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_order_events_at"), ["at"], unique=False)
    op.create_table(
        "work_order_photos",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("work_order_id", sa.String(length=40), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["work_order_id"], ["work_orders.id"],
                                name=op.f("fk_work_order_photos_work_order_id_work_orders"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_photos")),
    )
    with op.batch_alter_table("work_order_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_order_photos_work_order_id"), ["work_order_id"], unique=False)
    op.create_table(
        "workorder_rota",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("last_user_id", sa.String(length=40), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_workorder_rota")),
    )
    _load_catalogue(departments, categories)


def _load_catalogue(departments: sa.Table, categories: sa.Table) -> None:
    # The shipped defaults as of this revision (see workorders/catalogue.py).
    from cityweave.workorders.catalogue import CATEGORIES_V1, DEPARTMENTS_V1

    now = datetime.now(_UTC)
    op.bulk_insert(departments, [{"id": d.id, "name": d.name, "name_en": d.name_en, "active": True}
                                 for d in DEPARTMENTS_V1])
    op.bulk_insert(categories, [{
        "id": c.id, "name": c.name, "name_en": c.name_en, "description": c.description,
        "description_en": c.description_en, "group": c.group, "keywords": [], "department_id": c.department_id,
        "handler_role": c.handler_role.value, "assignment": c.assignment.value,
        "default_priority": c.priority.value, "accept_within_minutes": c.accept_within_minutes,
        "resolve_within_hours": c.resolve_within_hours, "public": c.public, "active": True, "updated_at": now,
    } for c in CATEGORIES_V1])


def downgrade() -> None:
    op.drop_table("workorder_rota")
    op.drop_table("work_order_photos")
    op.drop_table("work_order_events")
    op.drop_table("work_orders")
    op.drop_table("workorder_categories")
    op.drop_table("departments")
