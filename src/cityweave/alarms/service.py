"""Raising, counting, clearing and walking alarms through their lifecycle.

System steps (:func:`raise_alarm`, :func:`clear_alarm`, :func:`escalate_due`) take a plain session
and run inside the caller's transaction (the ingest batch, the timer): they are audited with the
platform as the actor. People's steps take a :class:`~cityweave.context.Call`, are authorized by the
policy and audited with the caller. Every function returns :class:`AlarmChange` values for the
caller to publish after commit; nothing here talks to the web or to notification channels.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cityweave.alarms.escalation import steps_of, to_json
from cityweave.alarms.events import AlarmChange, AlarmRaise, ChangeKind
from cityweave.alarms.models import SEVERITY_RANK, Alarm, AlarmEvent, AlarmStatus, Severity
from cityweave.audit import trail
from cityweave.db.base import JsonDocument, UTCDateTime, new_id
from cityweave.errors import NotFound
from cityweave.places.models import Place

SYSTEM_ACTOR = "alarms"  # the audit trail's label for steps the platform takes by itself
MAX_NOTE = 1000

_T = Alarm.__table__


def _severity_rank(column: Any) -> Any:
    return case(*((column == s.value, rank) for s, rank in SEVERITY_RANK.items()), else_=0)


# -- raising and clearing (the platform: rules, the emergency button) -------------------------------
def raise_alarm(session: Session, request: AlarmRaise, now: datetime) -> AlarmChange:
    """Open the cause's alarm, or count one more occurrence of the open one, in ONE statement.

    ``INSERT … SELECT path FROM places … ON CONFLICT (open_key) DO UPDATE SET count = count + 1``:
    concurrent raises of one cause from several threads or processes collapse into one row whose
    count is the number of raises, on SQLite and PostgreSQL. A repeat may raise the severity (never
    lower it), refreshes ``details`` and moves ``last_at`` forward. Only the first raise is logged
    and audited: repeats are counted, or a smoke detector chattering at 10 Hz would flood the trail.
    """
    steps = to_json(request.escalation)
    due = now + timedelta(seconds=request.escalation[0].ack_within_s) if request.escalation else None
    values: dict[str, Any] = {
        "id": literal(new_id("alm"), _T.c.id.type),
        "cause_key": literal(request.cause_key, _T.c.cause_key.type),
        "open_key": literal(request.cause_key, _T.c.open_key.type),
        "kind": literal(request.kind, _T.c.kind.type),
        "severity": literal(Severity(request.severity).value, _T.c.cause_key.type),
        "status": literal(AlarmStatus.RAISED.value, _T.c.cause_key.type),
        "count": literal(1),
        "rule_key": literal(request.rule_key, _T.c.rule_key.type),
        "device_id": literal(request.device_id, _T.c.device_id.type),
        "place_id": Place.id,
        "place_path": Place.path,
        "title": literal(dict(request.title), JsonDocument),
        "details": literal(dict(request.details), JsonDocument),
        "first_at": literal(now, UTCDateTime()),
        "last_at": literal(now, UTCDateTime()),
        "escalation": literal(steps, JsonDocument),
        "escalation_step": literal(0),
        "escalation_due_at": literal(due, UTCDateTime()),
        "work_order_requested": literal(False),
        "created_at": literal(now, UTCDateTime()),
        "updated_at": literal(now, UTCDateTime()),
    }
    # WHERE also keeps SQLite's parser from reading ON CONFLICT as a join's ON.
    source = select(*values.values()).where(Place.id == request.place_id)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(_T).from_select(list(values), source)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_T.c.open_key],
        # The partial-index form is not needed: NULL open keys never conflict.
        set_={
            "count": _T.c.count + 1,
            "last_at": case((stmt.excluded.last_at > _T.c.last_at, stmt.excluded.last_at), else_=_T.c.last_at),
            "severity": case(
                (_severity_rank(stmt.excluded.severity) > _severity_rank(_T.c.severity), stmt.excluded.severity),
                else_=_T.c.severity,
            ),
            "details": stmt.excluded.details,
            "updated_at": stmt.excluded.updated_at,
        },
    ).returning(_T.c.id, _T.c.count, _T.c.severity, _T.c.status, _T.c.place_path, _T.c.title,
                _T.c.escalation, _T.c.escalation_step)
    row = session.execute(stmt).one_or_none()
    if row is None:
        raise NotFound(f"no place {request.place_id!r} to raise alarm {request.cause_key!r} at")
    first = row.count == 1
    change: ChangeKind = "raised" if first else "repeated"
    audience = None
    if first:
        audience = request.escalation[0].audience if request.escalation else None
        details = {"cause_key": request.cause_key, "kind": request.kind, "severity": str(request.severity),
                   "rule_key": request.rule_key, "device_id": request.device_id}
        _log(session, row.id, now, "raised", None, SYSTEM_ACTOR, None, {"audience": audience} if audience else None)
        _system_audit(session, "alarm.raise", row.id, row.place_path, now, details)
    return AlarmChange(
        alarm_id=row.id, cause_key=request.cause_key, kind=request.kind, severity=Severity(row.severity),
        status=AlarmStatus(row.status), count=row.count, place_path=row.place_path, place_id=request.place_id,
        at=now, change=change, audience=audience, title=dict(row.title or {}), device_id=request.device_id,
    )


def clear_alarm(session: Session, cause_key: str, now: datetime, *, reason: str) -> AlarmChange | None:
    """The condition went away: close the cause's open alarm as *cleared*. ``None`` if none is open.

    An alarm already *dispatched* is left open (people are on their way and close it with a note);
    the clearing is recorded in its history instead. Rules call this from the ingest transaction.
    """
    alarm = session.execute(
        select(Alarm).where(Alarm.open_key == cause_key).with_for_update()
    ).scalar_one_or_none()
    if alarm is None:
        return None
    reason = reason[:MAX_NOTE]
    if alarm.status is AlarmStatus.DISPATCHED:
        _log(session, alarm.id, now, "condition_cleared", None, SYSTEM_ACTOR, reason)
        return None
    _close(alarm, AlarmStatus.CLEARED, now)
    _log(session, alarm.id, now, "cleared", None, SYSTEM_ACTOR, reason)
    _system_audit(session, "alarm.clear", alarm.id, alarm.place_path, now, {"reason": reason, "count": alarm.count})
    return change_of(alarm, "cleared", now, note=reason)


# -- helpers ------------------------------------------------------------------------------------------
def _close(alarm: Alarm, status: AlarmStatus, now: datetime) -> None:
    alarm.status = status
    alarm.open_key = None
    alarm.escalation_due_at = None
    alarm.closed_at = alarm.updated_at = now


def change_of(alarm: Alarm, change: ChangeKind, at: datetime, *, audience: str | None = None,
              actor: str | None = None, note: str | None = None) -> AlarmChange:
    return AlarmChange(
        alarm_id=alarm.id, cause_key=alarm.cause_key, kind=alarm.kind, severity=Severity(alarm.severity),
        status=AlarmStatus(alarm.status), count=alarm.count, place_path=alarm.place_path,
        place_id=alarm.place_id, at=at, change=change, audience=audience, title=dict(alarm.title or {}),
        device_id=alarm.device_id, actor=actor, note=note,
    )


def _log(session: Session, alarm_id: str, at: datetime, action: str, actor_id: str | None, actor: str,
         note: str | None, details: dict[str, Any] | None = None) -> None:
    session.add(AlarmEvent(alarm_id=alarm_id, at=at, action=action, actor_id=actor_id, actor=actor[:100],
                           note=note, details=details or {}))


def _system_audit(session: Session, action: str, alarm_id: str, place_path: str, now: datetime,
                  details: dict[str, Any] | None = None) -> None:
    trail.append(session, actor=None, actor_label=SYSTEM_ACTOR, action=action, object_kind="alarm",
                 object_id=alarm_id, place_path=place_path, details=details, at=now)


def current_step(alarm: Alarm) -> str | None:
    steps = steps_of(alarm.escalation)
    return steps[min(alarm.escalation_step, len(steps) - 1)].audience if steps else None


__all__ = ["SYSTEM_ACTOR", "change_of", "clear_alarm", "raise_alarm"]
