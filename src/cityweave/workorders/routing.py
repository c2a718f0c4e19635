"""Who answers a report: where it is (place, grid), which unit, which person.

Location: a household or any place gives its path directly; a point is matched against the grid
polygons (then community polygons) of the place tree; an address alone cannot be placed offline
(no geocoder) and lands at the top of the tree for staff to triage. The grid is what most
categories are handled by.

Candidates: active users holding the category's handler role on a scope that covers the place
(department officers: also holding the category). Among them, ``least_load`` picks whoever has
the fewest open work orders, ``rota`` the next one after whoever had the last turn. No candidate:
the work order waits in ``submitted`` for the unit's staff to assign it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityweave.accounts.models import RoleGrant, User
from cityweave.errors import Invalid
from cityweave.geo import point_in_polygon
from cityweave.places.models import Place, PlaceKind
from cityweave.workorders.models import OPEN_STATUSES, Assignment, Category, RotaCursor, WorkOrder


@dataclass(frozen=True)
class Location:
    place_id: str | None
    place_path: str
    grid_id: str | None


def ancestors(session: Session, path: str) -> list[Place]:
    """The places on ``path`` (``/a/b/c/``), outermost first."""
    ids = [part for part in path.strip("/").split("/") if part]
    rows = {p.id: p for p in session.execute(select(Place).where(Place.id.in_(ids))).scalars()}
    return [rows[i] for i in ids if i in rows]


def locate(session: Session, *, place: Place | None, lon: float | None, lat: float | None,
           root_path: str | None = None) -> Location:
    """Where a report belongs. ``root_path`` limits point matching (a caller's area)."""
    if place is not None:
        grid = next((p.id for p in ancestors(session, place.path) if p.kind is PlaceKind.GRID), None)
        return Location(place.id, place.path, grid)
    if lon is not None and lat is not None:
        for kind in (PlaceKind.GRID, PlaceKind.COMMUNITY):
            stmt = select(Place).where(Place.kind == kind, Place.geometry.is_not(None))
            if root_path:
                stmt = stmt.where(Place.path.startswith(root_path))
            for candidate in session.execute(stmt.order_by(Place.path)).scalars():
                geometry = candidate.geometry or {}
                if geometry.get("type") == "Polygon" and point_in_polygon(lon, lat, geometry):
                    return Location(candidate.id, candidate.path,
                                    candidate.id if kind is PlaceKind.GRID else None)
        raise Invalid.field("/lat", "the location is outside every community served here")
    # An address without coordinates: the outermost place (the city) until staff triage it.
    top = session.execute(select(Place).where(Place.parent_id.is_(None)).order_by(Place.id)).scalars().first()
    if top is None:
        raise Invalid.field("/address", "no place tree is loaded to file this report under")
    return Location(None, top.path, None)


def candidates(session: Session, category: Category, place_path: str) -> list[str]:
    """User ids that may handle ``category`` at ``place_path``, sorted."""
    rows = session.execute(
        select(RoleGrant.user_id, RoleGrant.place_path, RoleGrant.categories)
        .join(User, User.id == RoleGrant.user_id)
        .where(RoleGrant.role == category.handler_role, User.is_active.is_(True),
               User.is_service_account.is_(False))
    ).all()
    found = {
        user_id for user_id, grant_path, cats in rows
        if (grant_path is None or place_path.startswith(grant_path))
        and (category.handler_role != "department_officer" or category.id in (cats or ()))
    }
    return sorted(found)


def choose(session: Session, category: Category, location: Location, now: datetime) -> str | None:
    """Pick the handler for a new (or transferred) work order, or None."""
    people = candidates(session, category, location.place_path)
    if not people:
        return None
    if category.assignment is Assignment.ROTA:
        return _next_in_rota(session, f"{category.department_id}:{location.grid_id or location.place_path}",
                             people, now)
    loads = dict(session.execute(
        select(WorkOrder.assignee_user_id, func.count())
        .where(WorkOrder.assignee_user_id.in_(people), WorkOrder.status.in_(OPEN_STATUSES))
        .group_by(WorkOrder.assignee_user_id)
    ).all())
    return min(people, key=lambda user_id: (loads.get(user_id, 0), user_id))


def _next_in_rota(session: Session, key: str, people: list[str], now: datetime) -> str:
    cursor = session.get(RotaCursor, key, with_for_update=True)
    if cursor is None:
        chosen = people[0]
        session.add(RotaCursor(key=key, last_user_id=chosen, updated_at=now))
    else:
        chosen = next((p for p in people if p > cursor.last_user_id), people[0])
        cursor.last_user_id, cursor.updated_at = chosen, now
    return chosen
