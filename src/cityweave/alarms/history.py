"""Writing an alarm's history (``alarm_events``) and the platform's own audit records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cityweave.alarms.models import AlarmEvent
from cityweave.audit import trail

SYSTEM_ACTOR = "alarms"  # the label of steps the platform takes by itself (rules, timers)
MAX_NOTE = 1000


def log_event(session: Session, alarm_id: str, at: datetime, action: str, actor_id: str | None, actor: str,
              note: str | None, details: dict[str, Any] | None = None) -> None:
    session.add(AlarmEvent(alarm_id=alarm_id, at=at, action=action, actor_id=actor_id, actor=actor[:100],
                           note=note[:MAX_NOTE] if note else note, details=details or {}))


def system_audit(session: Session, action: str, alarm_id: str, place_path: str, now: datetime,
                 details: dict[str, Any] | None = None) -> None:
    """An audit record for a step the platform took (raise, clear, escalation), like the device
    registry's records for announcements and first readings."""
    trail.append(session, actor=None, actor_label=SYSTEM_ACTOR, action=action, object_kind="alarm",
                 object_id=alarm_id, place_path=place_path, details=details, at=now)
