"""Alarms: list, read, history, the people's steps (acknowledge, dispatch, resolve), the emergency
call and the roll-up summary. Changes are handed to ``app.state.alarm_listeners`` after commit."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from cityweave.alarms import service
from cityweave.alarms.events import AlarmChange
from cityweave.alarms.models import Alarm, Severity
from cityweave.alarms.schemas import (
    AlarmDispatchIn,
    AlarmEventOut,
    AlarmOut,
    AlarmStepIn,
    AlarmSummaryOut,
    EmergencyCallIn,
    SeverityCounts,
    StatusFilter,
    SummaryLevel,
    SummaryRowOut,
)
from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem
from cityweave.context import Call
from cityweave.db.engine import on_commit

router = APIRouter(
    prefix="/api/v1/alarms",
    tags=["alarms"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
AlarmIdPath = Annotated[str, Path(max_length=40)]
PlaceQuery = Annotated[str | None, Query(max_length=64, description="only alarms at or inside this place")]


def publish_after_commit(request: Request, call: Call, change: AlarmChange) -> None:
    """Hand the change to every listener on ``app.state.alarm_listeners`` once the request's
    transaction has committed (never for a rolled-back one). No listeners, nothing to do."""
    listeners: list[Callable[[AlarmChange], None]] = list(getattr(request.app.state, "alarm_listeners", None) or ())
    for listener in listeners:
        on_commit(call.session, partial(listener, change))


def _out(call: Call, change: AlarmChange) -> AlarmOut:
    alarm = call.session.get(Alarm, change.alarm_id)
    assert alarm is not None
    call.session.flush()
    call.session.refresh(alarm)
    return AlarmOut.model_validate(alarm)


@router.get("", response_model=PageOut[AlarmOut])
def list_alarms(
    call: CallDep,
    page: PageDep,
    status_: Annotated[StatusFilter | None, Query(alias="status")] = None,
    severity: Severity | None = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    place_id: PlaceQuery = None,
    device_id: Annotated[str | None, Query(max_length=40)] = None,
) -> PageOut[AlarmOut]:
    """Sort keys: last_at (default, newest first: `-last_at`), first_at, severity, count, kind, status."""
    result = service.list_alarms(call, page, status=status_.value if status_ else None, severity=severity,
                                 kind=kind, place_id=place_id, device_id=device_id)
    return PageOut[AlarmOut](items=[AlarmOut.model_validate(a) for a in result.items], total=result.total,
                             limit=result.limit, offset=result.offset)


@router.get("/summary", response_model=AlarmSummaryOut)
def summary(
    call: CallDep,
    by: SummaryLevel = SummaryLevel.COMMUNITY,
    place_id: PlaceQuery = None,
) -> AlarmSummaryOut:
    """Open alarms the caller may see, counted by severity per household, building or community."""
    rows = service.summary(call, by=by.value, place_id=place_id)
    totals = SeverityCounts()
    items = []
    for row in rows:
        counts = SeverityCounts(**row.counts)
        for key, value in row.counts.items():
            setattr(totals, key, getattr(totals, key) + value)
        items.append(SummaryRowOut(place_id=row.place_id, place_path=row.place_path, name=row.name,
                                   total=row.total, counts=counts))
    return AlarmSummaryOut(by=by, place_id=place_id, total=sum(r.total for r in rows), counts=totals, items=items)


@router.post("/emergency", response_model=AlarmOut, status_code=status.HTTP_201_CREATED)
def emergency_call(call: CallDep, request: Request, response: Response, body: EmergencyCallIn) -> AlarmOut:
    """A resident's one-tap emergency call: a critical alarm with the elderly escalation chain
    (family, then the grid worker, then the community's duty staff). 201 when it opened the alarm,
    200 when an emergency call of the household was already open (its count grows)."""
    change = service.emergency_call(call, body.household_id, body.note)
    if change.change != "raised":
        response.status_code = status.HTTP_200_OK
    publish_after_commit(request, call, change)
    return _out(call, change)


@router.get("/{alarm_id}", response_model=AlarmOut)
def get_alarm(call: CallDep, alarm_id: AlarmIdPath) -> AlarmOut:
    return AlarmOut.model_validate(service.get_alarm(call, alarm_id))


@router.get("/{alarm_id}/history", response_model=PageOut[AlarmEventOut])
def alarm_history(call: CallDep, alarm_id: AlarmIdPath, page: PageDep) -> PageOut[AlarmEventOut]:
    """Raised, acknowledged, dispatched, resolved, cleared, escalated: who, when, with which note."""
    result = service.history(call, alarm_id, page)
    return PageOut[AlarmEventOut](items=[AlarmEventOut.model_validate(e) for e in result.items],
                                  total=result.total, limit=result.limit, offset=result.offset)


StepBody = Annotated[AlarmStepIn | None, Body()]


@router.post("/{alarm_id}/acknowledge", response_model=AlarmOut, responses={409: {"model": Problem}})
def acknowledge(call: CallDep, request: Request, alarm_id: AlarmIdPath, body: StepBody = None) -> AlarmOut:
    """raised → acknowledged; the escalation chain stops."""
    change = service.acknowledge(call, alarm_id, body.note if body else None)
    publish_after_commit(request, call, change)
    return _out(call, change)


@router.post("/{alarm_id}/dispatch", response_model=AlarmOut, responses={409: {"model": Problem}})
def dispatch(call: CallDep, request: Request, alarm_id: AlarmIdPath,
             body: Annotated[AlarmDispatchIn | None, Body()] = None) -> AlarmOut:
    """raised or acknowledged → dispatched (people on their way), optionally asking for a work order."""
    body = body or AlarmDispatchIn()
    change = service.dispatch(call, alarm_id, body.note, work_order=body.work_order,
                              opener=getattr(request.app.state, "work_order_opener", None))
    publish_after_commit(request, call, change)
    return _out(call, change)


@router.post("/{alarm_id}/resolve", response_model=AlarmOut, responses={409: {"model": Problem}})
def resolve(call: CallDep, request: Request, alarm_id: AlarmIdPath, body: StepBody = None) -> AlarmOut:
    """Any open status → resolved, with a note."""
    change = service.resolve(call, alarm_id, body.note if body else None)
    publish_after_commit(request, call, change)
    return _out(call, change)
