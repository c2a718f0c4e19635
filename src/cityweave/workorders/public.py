"""The public view of work orders: what anybody may read without signing in.

Used by the Open311 GeoReport v2 interface (``cityweave.api.open311``), whose GET methods need
no API key. The rule is one clause: only work orders marked ``public`` (a public category, not
an anonymous report; ``service.submit`` and ``service.transfer`` decide it) exist here; any other
id reads exactly like an id that does not exist. Of their history only the public steps are
shown. Nothing returned here names who reported: callers get the rows and must not show
``reporter_user_id``, ``contact_enc``, ``entered_by`` or ``assignee_user_id`` (the Open311
renderer has an explicit allow-list of fields).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from cityweave.errors import NotFound
from cityweave.places.models import Place, PlaceKind
from cityweave.workorders.models import Department, Status, WorkOrder, WorkOrderEvent

# Steps of a public history that are not "updates": the report itself, and photo uploads
# (photos are served to signed-in callers only, through the native API).
NOT_UPDATES = ("submitted", "photo_added")


def _visible() -> ColumnElement[bool]:
    return WorkOrder.public.is_(True)


def _key(key: str) -> ColumnElement[bool]:
    """A work order by its id (``wo-…``) or its number (``WO20261122-482913``)."""
    return or_(WorkOrder.id == key, WorkOrder.number == key)


def get(session: Session, key: str) -> WorkOrder:
    order = session.execute(select(WorkOrder).where(_key(key), _visible())).scalars().first()
    if order is None:
        raise NotFound(f"no public service request {key!r}")
    return order


def find(session: Session, keys: Sequence[str]) -> list[WorkOrder]:
    """The public work orders among ``keys`` (ids or numbers), newest first; unknown ones are left out."""
    if not keys:
        return []
    stmt = select(WorkOrder).where(or_(WorkOrder.id.in_(keys), WorkOrder.number.in_(keys)), _visible())
    return list(session.execute(stmt.order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())).scalars())


def search(session: Session, *, start: datetime, end: datetime, category_ids: Sequence[str] = (),
           statuses: Sequence[Status] = (), offset: int = 0, limit: int = 1000) -> list[WorkOrder]:
    """Public work orders reported in ``[start, end]``, newest first (a stable order for paging)."""
    stmt = select(WorkOrder).where(_visible(), WorkOrder.created_at >= start, WorkOrder.created_at <= end)
    if category_ids:
        stmt = stmt.where(WorkOrder.category_id.in_(list(category_ids)))
    if statuses:
        stmt = stmt.where(WorkOrder.status.in_(list(statuses)))
    stmt = stmt.order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc()).offset(offset).limit(limit)
    return list(session.execute(stmt).scalars())


def status_notes(session: Session, orders: Sequence[WorkOrder]) -> dict[str, str]:
    """Per work order, the note of the public step that led to its current status (a rejection's
    reason, a resolution's summary, "→ WO…" for a merged duplicate), if it had one."""
    if not orders:
        return {}
    current = {o.id: o.status.value for o in orders}
    stmt = (select(WorkOrderEvent.work_order_id, WorkOrderEvent.to_status, WorkOrderEvent.note)
            .where(WorkOrderEvent.work_order_id.in_(list(current)), WorkOrderEvent.public.is_(True),
                   WorkOrderEvent.note.is_not(None), WorkOrderEvent.action.not_in(NOT_UPDATES),
                   WorkOrderEvent.actor != "system",  # timers' notes are not explanations to the public
                   WorkOrderEvent.from_status.is_distinct_from(WorkOrderEvent.to_status))
            .order_by(WorkOrderEvent.at, WorkOrderEvent.id))
    notes: dict[str, str] = {}
    for order_id, to_status, note in session.execute(stmt):
        if to_status == current[order_id]:
            notes[order_id] = note  # the latest one wins
    return notes


def updates(session: Session, *, start: datetime, end: datetime, offset: int = 0,
            limit: int = 1000) -> list[WorkOrderEvent]:
    """Public steps and replies (after the report itself) of public work orders in ``[start, end]``,
    oldest first, as the service-request-updates extension lists them."""
    stmt = (select(WorkOrderEvent)
            .join(WorkOrder, WorkOrder.id == WorkOrderEvent.work_order_id)
            .where(_visible(), WorkOrderEvent.public.is_(True), WorkOrderEvent.action.not_in(NOT_UPDATES),
                   WorkOrderEvent.at >= start, WorkOrderEvent.at <= end)
            .order_by(WorkOrderEvent.at, WorkOrderEvent.id).offset(offset).limit(limit))
    return list(session.execute(stmt).scalars())


def place_ids(session: Session, orders: Sequence[WorkOrder]) -> dict[str, str | None]:
    """Per work order, the place to show publicly: a home (household or unit) would point at the
    family that reported, so it is shown as its building; other places (a building, a facility, a
    grid) as they are."""
    wanted = {o.place_id for o in orders if o.place_id}
    if not wanted:
        return {o.id: None for o in orders}
    kinds = dict(session.execute(select(Place.id, Place.kind).where(Place.id.in_(wanted))).all())
    private = (PlaceKind.HOUSEHOLD, PlaceKind.UNIT)
    enclosing = {seg for o in orders if o.place_id and kinds.get(o.place_id) in private
                 for seg in o.place_path.strip("/").split("/")}
    buildings = set(session.execute(select(Place.id).where(
        Place.id.in_(enclosing), Place.kind == PlaceKind.BUILDING)).scalars()) if enclosing else set()
    shown: dict[str, str | None] = {}
    for order in orders:
        if order.place_id and kinds.get(order.place_id) in private:
            segments = order.place_path.strip("/").split("/")
            shown[order.id] = next((s for s in reversed(segments) if s in buildings), None)
        else:
            shown[order.id] = order.place_id
    return shown


def departments(session: Session) -> dict[str, Department]:
    return {d.id: d for d in session.execute(select(Department)).scalars()}
