"""Work-order tables: departments, categories, work orders, their history and photos.

A work order copies the place path of where it happened (household, grid or community), like
devices and household members do, so that every scope check stays one indexed prefix match.
Reporter contact details given through Open311 or the hotline are personal data: stored only
encrypted, like persons' (``security/crypto``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cityweave.accounts.models import Role
from cityweave.db.base import Base, JsonDocument, StrEnumColumn


class Status(enum.StrEnum):
    SUBMITTED = "submitted"  # arrived; nobody has looked at it yet
    ACCEPTED = "accepted"  # the responsible unit took it on
    ASSIGNED = "assigned"  # a person is named to handle it
    IN_PROGRESS = "in_progress"  # the handler is on it
    RESOLVED = "resolved"  # the handler says it is done; waiting for the reporter
    CONFIRMED = "confirmed"  # the reporter agreed (or said nothing for N days)
    CLOSED = "closed"  # finished; rated or past the rating window
    REJECTED = "rejected"  # not for us, or not a real case; always with a reason
    MERGED = "merged"  # a duplicate, folded into another work order


OPEN_STATUSES = (Status.SUBMITTED, Status.ACCEPTED, Status.ASSIGNED, Status.IN_PROGRESS)
FINISHED_STATUSES = (Status.RESOLVED, Status.CONFIRMED, Status.CLOSED, Status.REJECTED, Status.MERGED)


class Priority(enum.StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Channel(enum.StrEnum):
    RESIDENT = "resident"  # a resident through the app or the web
    PATROL = "patrol"  # a grid worker's finding on patrol
    ALARM = "alarm"  # an alarm that needs people on site
    OPEN311 = "open311"  # an outside client through /open311/v2
    HOTLINE = "hotline"  # staff entering a phone call on someone's behalf


class Assignment(enum.StrEnum):
    ROTA = "rota"  # take turns among the candidates
    LEAST_LOAD = "least_load"  # whoever has the fewest open work orders


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)


class Category(Base):
    """A kind of community matter, with who answers for it and how fast."""

    __tablename__ = "workorder_categories"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # also the Open311 service_code
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    description_en: Mapped[str] = mapped_column(String(500), default="")
    group: Mapped[str] = mapped_column(String(40))  # Open311 "group": repairs, environment, ...
    keywords: Mapped[list[Any]] = mapped_column(default=list)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    # Who handles it: grid workers, property staff or the department's officers.
    handler_role: Mapped[Role] = mapped_column(StrEnumColumn(Role, 32))
    assignment: Mapped[Assignment] = mapped_column(StrEnumColumn(Assignment, 16), default=Assignment.LEAST_LOAD)
    default_priority: Mapped[Priority] = mapped_column(StrEnumColumn(Priority, 16), default=Priority.NORMAL)
    accept_within_minutes: Mapped[int]  # "response": from submitted to accepted
    resolve_within_hours: Mapped[int]  # from submitted to resolved
    public: Mapped[bool] = mapped_column(default=True)  # shown in public listings (not disputes)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime]


class WorkOrder(Base):
    __tablename__ = "work_orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # wo-<16 hex>; Open311 request id
    number: Mapped[str] = mapped_column(String(20), unique=True)  # WO20261122-0001: what people quote
    category_id: Mapped[str] = mapped_column(ForeignKey("workorder_categories.id"), index=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"), index=True)
    status: Mapped[Status] = mapped_column(StrEnumColumn(Status, 16), index=True)
    priority: Mapped[Priority] = mapped_column(StrEnumColumn(Priority, 16))
    channel: Mapped[Channel] = mapped_column(StrEnumColumn(Channel, 16))
    description: Mapped[str] = mapped_column(Text)
    # Where: a place (household, building, facility, grid ...) and/or a point and an address.
    place_id: Mapped[str | None] = mapped_column(ForeignKey("places.id"))
    place_path: Mapped[str] = mapped_column(String(600), index=True)
    grid_id: Mapped[str | None] = mapped_column(String(64), index=True)
    lon: Mapped[float | None]
    lat: Mapped[float | None]
    address: Mapped[str | None] = mapped_column(String(300))
    # Who: never shown in public listings. Anonymous reports have neither.
    reporter_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    anonymous: Mapped[bool] = mapped_column(default=False)
    contact_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted JSON {name, phone, email}
    entered_by: Mapped[str | None] = mapped_column(String(40))  # hotline staff user id
    alarm_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # Handling.
    assignee_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("work_orders.id"))
    reopen_count: Mapped[int] = mapped_column(default=0)
    # Deadlines; the timers are these columns, so they survive restarts.
    accept_due_at: Mapped[datetime]
    resolve_due_at: Mapped[datetime]
    escalation: Mapped[int] = mapped_column(default=0)  # 0 none, 1 at risk, 2 overdue
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    # Outcome.
    satisfaction: Mapped[int | None]
    feedback: Mapped[str | None] = mapped_column(String(1000))
    public: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_work_orders_dup", "category_id", "place_id", "created_at"),)


class WorkOrderEvent(Base):
    """One step in a work order's history. ``public`` steps are Open311 service request updates."""

    __tablename__ = "work_order_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    work_order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(40))  # user id, or "system"
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(2000))
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    public: Mapped[bool] = mapped_column(default=False)


class WorkOrderPhoto(Base):
    """A photo re-encoded without its metadata (no GPS position, no camera serial)."""

    __tablename__ = "work_order_photos"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int]
    height: Mapped[int]
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]


class RotaCursor(Base):
    """Who had the last turn, per rota (department + grid or community)."""

    __tablename__ = "workorder_rota"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_user_id: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime]
