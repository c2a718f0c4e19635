"""Analysis of work orders: how fast, how well, where, and what is rising.

All figures are computed in the database (one grouped query each), over the caller's READ scope,
so a grid worker's statistics cover the grid and a city operator's the city. Durations are
taken as seconds between two timestamp columns, which needs one expression per backend.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.sql import ColumnElement

from cityweave.authz import policy
from cityweave.authz.policy import Action
from cityweave.context import Call
from cityweave.places.models import Place
from cityweave.workorders.models import OPEN_STATUSES, Category, WorkOrder


class GroupBy(enum.StrEnum):
    CATEGORY = "category"
    GRID = "grid"
    DEPARTMENT = "department"
    WEEK = "week"
    DAY = "day"


class Row(BaseModel):
    key: str | None
    label: str | None = None
    total: int
    open: int
    resolved: int
    overdue_open: int
    response_minutes_avg: float | None
    resolution_hours_avg: float | None
    on_time_rate: float | None  # of the resolved ones, share resolved by their deadline
    satisfaction_avg: float | None
    satisfaction_count: int


class Statistics(BaseModel):
    by: GroupBy
    days: int
    rows: list[Row]
    total: Row


class Hotspot(BaseModel):
    grid_id: str
    name: str | None
    lon: float | None
    lat: float | None
    count: int
    open: int


class Trend(BaseModel):
    category_id: str
    name: str
    name_en: str
    this_week: int
    last_week: int
    change: float | None  # +0.5 = half as many again; None when last week had none


def _seconds(call: Call, later: Any, earlier: Any) -> ColumnElement[float]:
    if call.session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _period(call: Call, by: GroupBy) -> ColumnElement[str]:
    if call.session.get_bind().dialect.name == "postgresql":
        return func.to_char(WorkOrder.created_at, "IYYY-\"W\"IW" if by is GroupBy.WEEK else "YYYY-MM-DD")
    return func.strftime("%Y-W%W" if by is GroupBy.WEEK else "%Y-%m-%d", WorkOrder.created_at)


def _metrics(call: Call) -> list[Any]:
    resolved = WorkOrder.resolved_at.is_not(None)
    on_time = case((WorkOrder.resolved_at <= WorkOrder.resolve_due_at, 1.0), else_=0.0)
    return [
        func.count().label("total"),
        func.sum(case((WorkOrder.status.in_(OPEN_STATUSES), 1), else_=0)).label("open"),
        func.sum(case((resolved, 1), else_=0)).label("resolved"),
        func.sum(case((WorkOrder.status.in_(OPEN_STATUSES) & (WorkOrder.escalation >= 2), 1), else_=0))
        .label("overdue_open"),
        func.avg(_seconds(call, WorkOrder.accepted_at, WorkOrder.created_at) / 60.0).label("response"),
        func.avg(_seconds(call, WorkOrder.resolved_at, WorkOrder.created_at) / 3600.0).label("resolution"),
        func.avg(case((resolved, on_time), else_=None)).label("on_time"),
        func.avg(cast(WorkOrder.satisfaction, Float)).label("satisfaction"),
        func.count(WorkOrder.satisfaction).label("rated"),
    ]


def _row(key: str | None, label: str | None, r: Any) -> Row:
    def num(v: Any, digits: int = 2) -> float | None:
        return None if v is None else round(float(v), digits)

    return Row(key=key, label=label, total=r.total or 0, open=r.open or 0, resolved=r.resolved or 0,
               overdue_open=r.overdue_open or 0, response_minutes_avg=num(r.response),
               resolution_hours_avg=num(r.resolution), on_time_rate=num(r.on_time, 4),
               satisfaction_avg=num(r.satisfaction), satisfaction_count=r.rated or 0)


def _scope(call: Call, days: int, place_id: str | None) -> list[ColumnElement[bool]]:
    where = [policy.work_order_clause(call.principal, Action.READ),
             WorkOrder.created_at >= call.now() - timedelta(days=days)]
    if place_id:
        place = call.session.get(Place, place_id)
        where.append(WorkOrder.place_path.startswith(place.path if place else "\x00"))
    return where


def summarise(call: Call, *, by: GroupBy, days: int, place_id: str | None = None) -> Statistics:
    where = _scope(call, days, place_id)
    key: ColumnElement[Any] = {
        GroupBy.CATEGORY: WorkOrder.category_id, GroupBy.GRID: WorkOrder.grid_id,
        GroupBy.DEPARTMENT: WorkOrder.department_id,
    }.get(by) or _period(call, by)
    rows = call.session.execute(
        select(key.label("key"), *_metrics(call)).where(*where).group_by(key).order_by(key)
    ).all()
    labels = _labels(call, by, [r.key for r in rows])
    total = call.session.execute(select(*_metrics(call)).where(*where)).one()
    return Statistics(by=by, days=days, rows=[_row(r.key, labels.get(r.key), r) for r in rows],
                      total=_row(None, None, total))


def _labels(call: Call, by: GroupBy, keys: list[Any]) -> dict[Any, str]:
    zh = call.principal.locale.startswith("zh")
    if by is GroupBy.CATEGORY:
        rows = call.session.execute(select(Category.id, Category.name, Category.name_en)
                                    .where(Category.id.in_(keys))).all()
        return {i: (n if zh else e) for i, n, e in rows}
    if by is GroupBy.GRID:
        rows = call.session.execute(select(Place.id, Place.name, Place.name_en).where(Place.id.in_(keys))).all()
        return {i: (n if zh or not e else e) for i, n, e in rows}
    return {}


def hotspots(call: Call, *, days: int) -> list[Hotspot]:
    where = [*_scope(call, days, None), WorkOrder.grid_id.is_not(None)]
    rows = call.session.execute(
        select(WorkOrder.grid_id, func.count(),
               func.sum(case((WorkOrder.status.in_(OPEN_STATUSES), 1), else_=0)))
        .where(*where).group_by(WorkOrder.grid_id).order_by(func.count().desc())
    ).all()
    places = {p.id: p for p in call.session.execute(
        select(Place).where(Place.id.in_([r[0] for r in rows]))).scalars()}
    out = []
    for grid_id, count, open_count in rows:
        place = places.get(grid_id)
        lon, lat = _centre(place.geometry if place else None)
        out.append(Hotspot(grid_id=grid_id, name=place.name if place else None, lon=lon, lat=lat,
                           count=count, open=open_count or 0))
    return out


def _centre(geometry: dict[str, Any] | None) -> tuple[float | None, float | None]:
    if not geometry:
        return None, None
    if geometry.get("type") == "Point":
        lon, lat = geometry["coordinates"][:2]
        return float(lon), float(lat)
    ring = geometry.get("coordinates", [[]])[0][:-1] or geometry.get("coordinates", [[]])[0]
    if not ring:
        return None, None
    return (round(sum(p[0] for p in ring) / len(ring), 6), round(sum(p[1] for p in ring) / len(ring), 6))


def rising(call: Call) -> list[Trend]:
    """Categories with more reports in the last 7 days than in the 7 before, biggest rise first."""
    now = call.now()
    this_start, last_start = now - timedelta(days=7), now - timedelta(days=14)
    where = [policy.work_order_clause(call.principal, Action.READ), WorkOrder.created_at >= last_start]
    rows = call.session.execute(
        select(WorkOrder.category_id,
               func.sum(case((WorkOrder.created_at >= this_start, 1), else_=0)),
               func.sum(case((WorkOrder.created_at < this_start, 1), else_=0)))
        .where(*where).group_by(WorkOrder.category_id)
    ).all()
    names = {c.id: c for c in call.session.execute(select(Category)).scalars()}
    trends = []
    for category_id, this_week, last_week in rows:
        this_week, last_week = int(this_week or 0), int(last_week or 0)
        if this_week <= last_week:
            continue
        category = names[category_id]
        trends.append(Trend(category_id=category_id, name=category.name, name_en=category.name_en,
                            this_week=this_week, last_week=last_week,
                            change=round((this_week - last_week) / last_week, 4) if last_week else None))
    return sorted(trends, key=lambda t: (t.this_week - t.last_week, t.this_week), reverse=True)
