"""Raising, counting, clearing and walking alarms through their lifecycle.

System steps (:func:`raise_alarm`, :func:`clear_alarm`, :func:`escalate_due`) take a plain session
and run inside the caller's transaction (the ingest batch, the timer): they are audited with the
platform as the actor. People's steps take a :class:`~cityweave.context.Call`, are authorized by the
policy and audited with the caller. Every function returns :class:`AlarmChange` values for the
caller to publish after commit; nothing here talks to the web or to notification channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cityweave.alarms.escalation import ELDERLY_CHAIN, steps_of, to_json
from cityweave.alarms.events import AlarmChange, AlarmRaise, ChangeKind
from cityweave.alarms.history import MAX_NOTE, SYSTEM_ACTOR, log_event, system_audit
from cityweave.alarms.models import OPEN, SEVERITY_RANK, Alarm, AlarmEvent, AlarmStatus, Severity
from cityweave.alarms.workorders import WorkOrderOpener, needs_site_visit, request_work_order
from cityweave.authz.policy import Action, Resource, Unauthorized, allows, scope_clause
from cityweave.context import Call
from cityweave.db.base import JsonDocument, UTCDateTime, new_id
from cityweave.errors import Conflict, Invalid, NotFound
from cityweave.listing import Page, PageRequest, paginate
from cityweave.places.models import Place, PlaceKind
from cityweave.places.service import get_place

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
        "count": literal(max(1, int(request.occurrences))),
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
            "count": _T.c.count + stmt.excluded.count,
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
    first = row.count == max(1, int(request.occurrences))  # an update adds to a count >= 1
    change: ChangeKind = "raised" if first else "repeated"
    audience = None
    if first:
        audience = request.escalation[0].audience if request.escalation else None
        details = {"cause_key": request.cause_key, "kind": request.kind, "severity": str(request.severity),
                   "rule_key": request.rule_key, "device_id": request.device_id}
        log_event(session, row.id, now, "raised", None, SYSTEM_ACTOR, None, {"audience": audience} if audience else None)
        system_audit(session, "alarm.raise", row.id, row.place_path, now, details)
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
        log_event(session, alarm.id, now, "condition_cleared", None, SYSTEM_ACTOR, reason)
        return None
    _close(alarm, AlarmStatus.CLEARED, now)
    log_event(session, alarm.id, now, "cleared", None, SYSTEM_ACTOR, reason)
    system_audit(session, "alarm.clear", alarm.id, alarm.place_path, now, {"reason": reason, "count": alarm.count})
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


def current_step(alarm: Alarm) -> str | None:
    steps = steps_of(alarm.escalation)
    return steps[min(alarm.escalation_step, len(steps) - 1)].audience if steps else None




# -- reading ------------------------------------------------------------------------------------------
SORTABLE: dict[str, ColumnElement[Any]] = {
    "id": Alarm.id, "first_at": Alarm.first_at, "last_at": Alarm.last_at, "count": Alarm.count,
    "kind": Alarm.kind, "status": Alarm.status, "severity": _severity_rank(Alarm.severity),
    "created_at": Alarm.created_at, "updated_at": Alarm.updated_at,
}
EVENT_SORTABLE: dict[str, ColumnElement[Any]] = {"id": AlarmEvent.id, "at": AlarmEvent.at}
OPEN_FILTER = "open"  # the status filter that means raised, acknowledged or dispatched


def _visible(call: Call) -> ColumnElement[bool]:
    return scope_clause(call.principal, Resource.ALARM, Action.READ)


def get_alarm(call: Call, alarm_id: str, action: Action = Action.READ, *, lock: bool = False) -> Alarm:
    """The alarm if the caller may see it (404 otherwise) and may ``action`` it (403 otherwise)."""
    stmt = select(Alarm).where(Alarm.id == alarm_id, _visible(call))
    if lock:
        stmt = stmt.with_for_update()
    alarm = call.session.execute(stmt).scalar_one_or_none()
    if alarm is None:
        raise NotFound(f"no alarm {alarm_id!r}")
    if action is not Action.READ and not allows(call.principal, Resource.ALARM, action, [alarm.place_path]):
        raise Unauthorized(f"not allowed to {action} this alarm")
    return alarm


def list_alarms(
    call: Call,
    page: PageRequest,
    *,
    status: str | None = None,
    severity: Severity | None = None,
    kind: str | None = None,
    place_id: str | None = None,
    device_id: str | None = None,
) -> Page[Alarm]:
    """Alarms the caller may see; ``status="open"`` means raised, acknowledged or dispatched."""
    stmt = select(Alarm).where(_visible(call))
    if status == OPEN_FILTER:
        stmt = stmt.where(Alarm.status.in_(sorted(OPEN)))
    elif status is not None:
        stmt = stmt.where(Alarm.status == AlarmStatus(status))
    if severity is not None:
        stmt = stmt.where(Alarm.severity == severity)
    if kind:
        stmt = stmt.where(Alarm.kind == kind)
    if place_id:
        place = get_place(call, place_id)
        stmt = stmt.where(Alarm.place_path.startswith(place.path, autoescape=True))
    if device_id:
        stmt = stmt.where(Alarm.device_id == device_id)
    return paginate(call.session, stmt, page, SORTABLE, "-last_at")


def history(call: Call, alarm_id: str, page: PageRequest) -> Page[AlarmEvent]:
    """Who did what to the alarm and when, oldest first (repeats are counted on the alarm, not here)."""
    alarm = get_alarm(call, alarm_id)
    stmt = select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id)
    return paginate(call.session, stmt, page, EVENT_SORTABLE, "at")


# -- people's steps -----------------------------------------------------------------------------------
# step → (statuses it may start from, the status it leads to, the policy action it needs)
STEPS: dict[str, tuple[frozenset[AlarmStatus], AlarmStatus, Action]] = {
    "acknowledge": (frozenset({AlarmStatus.RAISED}), AlarmStatus.ACKNOWLEDGED, Action.UPDATE),
    "dispatch": (frozenset({AlarmStatus.RAISED, AlarmStatus.ACKNOWLEDGED}), AlarmStatus.DISPATCHED, Action.DISPATCH),
    "resolve": (OPEN, AlarmStatus.RESOLVED, Action.UPDATE),
}


def _step(call: Call, alarm_id: str, step: str, note: str | None,
          details: dict[str, Any] | None = None) -> tuple[Alarm, AlarmChange]:
    allowed_from, target, action = STEPS[step]
    alarm = get_alarm(call, alarm_id, action, lock=True)
    if alarm.status not in allowed_from:
        raise Conflict(f"alarm {alarm_id!r} is {alarm.status.value}; it cannot be {target.value} now",
                       current_status=alarm.status.value)
    now = call.now()
    before = alarm.status
    if target in OPEN:
        alarm.status = target
        alarm.escalation_due_at = None  # somebody took it: the escalation chain stops
        alarm.updated_at = now
    else:
        _close(alarm, target, now)
    if target is AlarmStatus.ACKNOWLEDGED:
        alarm.acknowledged_at = now
    elif target is AlarmStatus.DISPATCHED:
        alarm.dispatched_at = now
        alarm.acknowledged_at = alarm.acknowledged_at or now
    principal = call.principal
    log_event(call.session, alarm.id, now, target.value, principal.user_id, principal.username, note, details)
    call.audit(f"alarm.{step}", "alarm", alarm.id, place_path=alarm.place_path,
               details={"from": before.value, "note": note, **(details or {})})
    return alarm, change_of(alarm, target.value, now, actor=principal.username, note=note)  # type: ignore[arg-type]


def acknowledge(call: Call, alarm_id: str, note: str | None = None) -> AlarmChange:
    """raised → acknowledged: somebody took it; escalation stops."""
    return _step(call, alarm_id, "acknowledge", note)[1]


def dispatch(call: Call, alarm_id: str, note: str | None = None, *, work_order: bool | None = False,
             opener: WorkOrderOpener | None = None) -> AlarmChange:
    """raised or acknowledged → dispatched: people are on their way. ``work_order=True`` asks the
    opener for a work order, ``None`` asks when the alarm's kind needs a site visit by default."""
    alarm = get_alarm(call, alarm_id, Action.DISPATCH, lock=True)
    wanted = needs_site_visit(alarm) if work_order is None else work_order
    alarm, change = _step(call, alarm_id, "dispatch", note, {"work_order": wanted})
    if wanted:
        request_work_order(call.session, alarm, change.at, opener=opener, actor_id=call.principal.user_id,
                           actor=call.principal.username)
    return change


def resolve(call: Call, alarm_id: str, note: str | None = None) -> AlarmChange:
    """Any open status → resolved, with a note (a resident's "I'm fine" resolves a false alarm)."""
    return _step(call, alarm_id, "resolve", note)[1]


EMERGENCY_TITLE = {"zh-CN": "紧急呼叫", "en": "Emergency call"}


def emergency_call(call: Call, household_id: str, note: str | None = None) -> AlarmChange:
    """A resident's one-tap emergency call: a critical ``emergency_call`` alarm on the household
    with the elderly escalation chain. Tapping again while it is open counts, not duplicates."""
    place = get_place(call, household_id)
    if place.kind is not PlaceKind.HOUSEHOLD:
        raise Invalid.field("/household_id", "an emergency call comes from a household")
    if not allows(call.principal, Resource.ALARM, Action.CREATE, [place.path]):
        raise Unauthorized("not allowed to raise an alarm for this household")
    now = call.now()
    principal = call.principal
    change = raise_alarm(call.session, AlarmRaise(
        cause_key=f"emergency_call:{place.id}", kind="emergency_call", severity=Severity.CRITICAL,
        place_id=place.id, rule_key="emergency_call", title=dict(EMERGENCY_TITLE),
        details={"source": "web", "called_by": principal.username, "note": note},
        escalation=ELDERLY_CHAIN,
    ), now)
    log_event(call.session, change.alarm_id, now, "emergency_call", principal.user_id, principal.username, note)
    call.audit("alarm.emergency_call", "alarm", change.alarm_id, place_path=change.place_path,
               details={"change": change.change, "count": change.count, "note": note})
    return change


# -- escalation ---------------------------------------------------------------------------------------
def escalate_due(session: Session, now: datetime, *, limit: int = 500) -> list[AlarmChange]:
    """Move every raised alarm whose acknowledgement deadline passed to its next step.

    The next step's audience is told (change ``escalated``) and gets its own deadline. Past the
    last step the alarm stays there and the last audience is reminded every ``ack_within_s`` of
    that step. Each move is a conditional UPDATE on the step and deadline it read, so two timers
    (threads or processes) never escalate the same deadline twice. On SQLite, run it in a session
    that began as a writer (``Database.write_first``)."""
    due = session.execute(
        select(Alarm).where(Alarm.status == AlarmStatus.RAISED, Alarm.escalation_due_at.is_not(None),
                            Alarm.escalation_due_at <= now)
        .order_by(Alarm.escalation_due_at, Alarm.id).limit(limit)
    ).scalars().all()
    changes: list[AlarmChange] = []
    for alarm in due:
        steps = steps_of(alarm.escalation)
        step, deadline = alarm.escalation_step, alarm.escalation_due_at
        if not steps:
            alarm.escalation_due_at = None
            continue
        last = len(steps) - 1
        following = min(step + 1, last)
        reminder = step >= last
        new_due = now + timedelta(seconds=steps[following].ack_within_s)
        moved = session.execute(
            update(Alarm)
            .where(Alarm.id == alarm.id, Alarm.status == AlarmStatus.RAISED, Alarm.escalation_step == step,
                   Alarm.escalation_due_at == deadline)
            .values(escalation_step=following, escalation_due_at=new_due, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            continue  # acknowledged or escalated by someone else meanwhile
        session.refresh(alarm)
        audience = steps[following].audience
        details = {"step": following, "audience": audience, "reminder": reminder,
                   "next_due_at": new_due.isoformat()}
        log_event(session, alarm.id, now, "escalated", None, SYSTEM_ACTOR, None, details)
        system_audit(session, "alarm.escalate", alarm.id, alarm.place_path, now, details)
        changes.append(change_of(alarm, "escalated", now, audience=audience))
    return changes


# -- roll-up --------------------------------------------------------------------------------------------
LEVELS: dict[str, PlaceKind] = {
    "household": PlaceKind.HOUSEHOLD, "building": PlaceKind.BUILDING, "community": PlaceKind.COMMUNITY,
}


@dataclass
class SummaryRow:
    place_id: str
    place_path: str
    name: str
    counts: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in Severity})

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def summary(call: Call, *, by: str = "community", place_id: str | None = None) -> list[SummaryRow]:
    """Open alarms the caller may see, counted by severity per household, building or community.

    Each alarm counts towards the place of that kind on its path (a household's alarm counts for
    its building and its community); facility alarms count at the community level, and at the
    building level when the facility is in a building. ``place_id`` limits to alarms inside it.
    Rows come in path order; places without open alarms are not listed."""
    level = LEVELS[by]
    stmt = (
        select(Alarm.place_path, Alarm.severity, func.count())
        .where(_visible(call), Alarm.status.in_(sorted(OPEN)))
        .group_by(Alarm.place_path, Alarm.severity)
    )
    if place_id:
        place = get_place(call, place_id)
        stmt = stmt.where(Alarm.place_path.startswith(place.path, autoescape=True))
    grouped = call.session.execute(stmt).all()
    segments = {seg for path, _, _ in grouped for seg in path.strip("/").split("/")}
    places = {
        pid: (kind, path, name)
        for pid, kind, path, name in call.session.execute(
            select(Place.id, Place.kind, Place.path, Place.name).where(Place.id.in_(sorted(segments)),
                                                                        Place.kind == level)
        )
    } if segments else {}
    rows: dict[str, SummaryRow] = {}
    for path, severity, count in grouped:
        owner = next((seg for seg in reversed(path.strip("/").split("/")) if seg in places), None)
        if owner is None:
            continue
        _, owner_path, name = places[owner]
        row = rows.setdefault(owner, SummaryRow(owner, owner_path, name))
        row.counts[Severity(severity).value] += count
    return sorted(rows.values(), key=lambda r: r.place_path)


__all__ = [
    "EMERGENCY_TITLE", "LEVELS", "OPEN_FILTER", "STEPS", "SYSTEM_ACTOR", "SummaryRow", "acknowledge",
    "change_of", "clear_alarm", "dispatch", "emergency_call", "escalate_due", "get_alarm", "history",
    "list_alarms", "raise_alarm", "resolve", "summary",
]
