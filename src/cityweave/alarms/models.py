"""The alarm tables: one row per alarm (an incident with an occurrence count) and its history.

Exactly one *open* alarm per cause: ``open_key`` equals ``cause_key`` while the alarm is open and
is NULL once it is resolved or cleared. A UNIQUE index on ``open_key`` (NULLs are distinct on
SQLite and PostgreSQL) lets ``INSERT … ON CONFLICT (open_key) DO UPDATE`` fold concurrent raises
of one cause into one row; a raise after the alarm closed opens a new row.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cityweave.db.base import Base, StrEnumColumn


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INFO = "info"


# Higher is more severe: a repeated raise may raise the severity, never lower it.
SEVERITY_RANK: dict[Severity, int] = {
    Severity.INFO: 1, Severity.WARNING: 2, Severity.MINOR: 3, Severity.MAJOR: 4, Severity.CRITICAL: 5,
}


class AlarmStatus(enum.StrEnum):
    RAISED = "raised"  # waiting for somebody to acknowledge it (escalation runs)
    ACKNOWLEDGED = "acknowledged"  # somebody took it; escalation stopped
    DISPATCHED = "dispatched"  # people are on their way
    RESOLVED = "resolved"  # closed by a person, with a note
    CLEARED = "cleared"  # closed because the condition went away


OPEN: frozenset[AlarmStatus] = frozenset({AlarmStatus.RAISED, AlarmStatus.ACKNOWLEDGED, AlarmStatus.DISPATCHED})
CLOSED: frozenset[AlarmStatus] = frozenset({AlarmStatus.RESOLVED, AlarmStatus.CLEARED})


class Alarm(Base):
    __tablename__ = "alarms"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # alm-<16 hex>
    cause_key: Mapped[str] = mapped_column(String(200), index=True)  # rule key + ":" + source
    # = cause_key while open, NULL once closed: the unique index makes "one open alarm per cause".
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    severity: Mapped[Severity] = mapped_column(StrEnumColumn(Severity, 16))
    status: Mapped[AlarmStatus] = mapped_column(StrEnumColumn(AlarmStatus, 16), index=True)
    count: Mapped[int] = mapped_column(default=1)
    rule_key: Mapped[str | None] = mapped_column(String(100))
    device_id: Mapped[str | None] = mapped_column(String(40), index=True)
    place_id: Mapped[str] = mapped_column(ForeignKey("places.id", ondelete="RESTRICT"), index=True)
    # A copy of the place's path (places never move): scope checks and roll-ups are prefix matches.
    place_path: Mapped[str] = mapped_column(String(600), index=True)
    title: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"zh-CN": ..., "en": ...}
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the latest triggering value
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    # [{"audience": "family", "ack_within_s": 120}, ...]; the current step and its deadline.
    escalation: Mapped[list[Any]] = mapped_column(default=list)
    escalation_step: Mapped[int] = mapped_column(default=0)
    escalation_due_at: Mapped[datetime | None] = mapped_column(index=True)
    work_order_requested: Mapped[bool] = mapped_column(default=False)
    work_order_ref: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlarmEvent(Base):
    """One step in an alarm's life: who, when, what, with a note. Repeats are counted, not logged."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    alarm_id: Mapped[str] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)  # the notifications' catch-up reads recent steps
    action: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(40))  # user id; NULL for the platform
    actor: Mapped[str] = mapped_column(String(100))  # username or the platform's label
    note: Mapped[str | None] = mapped_column(String(1000))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
