"""Creating, reading, changing and removing places, always within the caller's scope."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, insert, or_, select

from cityweave.authz.policy import Action, Resource, Unauthorized, allows, check, scope_clause
from cityweave.context import Call
from cityweave.errors import Conflict, Invalid, NotFound
from cityweave.listing import Page, PageRequest, paginate
from cityweave.people.models import HouseholdMember
from cityweave.places.models import ALLOWED_PARENTS, Place, PlaceKind
from cityweave.places.schemas import PlaceCreate, PlaceUpdate

POINT_KINDS = {PlaceKind.BUILDING, PlaceKind.FACILITY}
AREA_KINDS = {PlaceKind.CITY, PlaceKind.DISTRICT, PlaceKind.STREET, PlaceKind.COMMUNITY, PlaceKind.GRID}

SORTABLE = {"id": Place.id, "name": Place.name, "kind": Place.kind, "created_at": Place.created_at}


def get_place(call: Call, place_id: str, action: Action = Action.READ) -> Place:
    """The place, if the caller may see it (404 otherwise) and may ``action`` it (403 otherwise)."""
    place = call.session.execute(
        select(Place).where(Place.id == place_id, scope_clause(call.principal, Resource.PLACE, Action.READ))
    ).scalar_one_or_none()
    if place is None:
        raise NotFound(f"no place {place_id!r}")
    if action is not Action.READ:
        check(call.principal, Resource.PLACE, action, [place.path])
    return place


def list_places(
    call: Call,
    page: PageRequest,
    *,
    kind: PlaceKind | None = None,
    parent_id: str | None = None,
    within: str | None = None,
    q: str | None = None,
) -> Page[Place]:
    stmt = select(Place).where(scope_clause(call.principal, Resource.PLACE, Action.READ))
    if kind:
        stmt = stmt.where(Place.kind == kind)
    if parent_id:
        stmt = stmt.where(Place.parent_id == parent_id)
    if within:
        ancestor = get_place(call, within)
        stmt = stmt.where(Place.path.startswith(ancestor.path, autoescape=True), Place.id != ancestor.id)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Place.name.ilike(like), Place.name_en.ilike(like), Place.id.ilike(like)))
    return paginate(call.session, stmt, page, SORTABLE, "id")


def create_place(call: Call, data: PlaceCreate) -> Place:
    parent: Place | None = None
    if data.parent_id is not None:
        try:
            parent = get_place(call, data.parent_id)
        except NotFound:
            raise Invalid.field("/parent_id", f"no place {data.parent_id!r}") from None
    _validate_shape(data, parent)
    path = (parent.path if parent else "/") + data.id + "/"
    if not allows(call.principal, Resource.PLACE, Action.CREATE, [path]):
        raise Unauthorized("not allowed to create places here")
    if call.session.get(Place, data.id) is not None:
        raise Conflict(f"a place with id {data.id!r} already exists")
    now = call.now()
    place = Place(
        id=data.id,
        kind=data.kind,
        parent_id=data.parent_id,
        path=path,
        name=data.name,
        name_en=data.name_en,
        code=data.code,
        facility_type=data.facility_type,
        geometry=data.geometry.model_dump() if data.geometry else None,
        attributes=data.attributes,
        created_at=now,
        updated_at=now,
    )
    call.session.add(place)
    call.session.flush()
    call.audit("place.create", "place", place.id, place_path=path, details={"kind": str(data.kind)})
    return place


def insert_checked(call: Call, places: Sequence[tuple[PlaceCreate, str]], *, audit: bool = True) -> int:
    """Insert places whose parent, shape and scope the caller has already checked, as
    ``(data, path)`` pairs with parents before children: the bulk path of the spreadsheet
    importer and the demo loader. One multi-row INSERT instead of a lookup and a flush per
    place; with ``audit`` each place still gets its own ``place.create`` record."""
    now = call.now()
    rows = []
    for data, path in places:
        row = data.model_dump(exclude={"geometry"})
        row.update(path=path, geometry=data.geometry.model_dump() if data.geometry else None,
                   created_at=now, updated_at=now)
        rows.append(row)
    if rows:
        call.session.execute(insert(Place), rows)
    if audit:
        for data, path in places:
            call.audit("place.create", "place", data.id, place_path=path, details={"kind": str(data.kind)})
    return len(rows)


def update_place(call: Call, place_id: str, data: PlaceUpdate) -> Place:
    place = get_place(call, place_id, Action.UPDATE)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise Invalid.field("/name", "a place must keep a name")
    if data.geometry is not None:
        _validate_geometry(place.kind, data.geometry.type, "/geometry")
    for name, value in changes.items():
        if name == "attributes" and value is None:
            value = {}
        setattr(place, name, value)
    place.updated_at = call.now()
    call.audit("place.update", "place", place.id, place_path=place.path, details={"fields": sorted(changes)})
    return place


def delete_place(call: Call, place_id: str) -> None:
    place = get_place(call, place_id, Action.DELETE)
    has_children = call.session.execute(select(exists().where(Place.parent_id == place.id))).scalar()
    has_members = call.session.execute(
        select(exists().where(HouseholdMember.household_id == place.id))
    ).scalar()
    if has_children or has_members:
        raise Conflict("the place still has places or residents under it; move or remove them first")
    call.session.delete(place)
    call.audit("place.delete", "place", place.id, place_path=place.path)


def ancestors(call: Call, place: Place) -> Sequence[Place]:
    ids = [part for part in place.path.strip("/").split("/")][:-1]
    if not ids:
        return []
    rows = call.session.execute(select(Place).where(Place.id.in_(ids))).scalars().all()
    order = {pid: i for i, pid in enumerate(ids)}
    return sorted(rows, key=lambda p: order[p.id])


def _validate_shape(data: PlaceCreate, parent: Place | None) -> None:
    allowed = ALLOWED_PARENTS[data.kind]
    parent_kind = parent.kind if parent else None
    if parent_kind not in allowed:
        names = ", ".join(k.value if k else "none" for k in allowed)
        raise Invalid.field("/parent_id", f"a {data.kind.value} must sit under: {names}")
    if data.kind is PlaceKind.FACILITY and data.facility_type is None:
        raise Invalid.field("/facility_type", "a facility needs a facility_type")
    if data.kind is not PlaceKind.FACILITY and data.facility_type is not None:
        raise Invalid.field("/facility_type", "only facilities have a facility_type")
    if data.geometry is not None:
        _validate_geometry(data.kind, data.geometry.type, "/geometry")


def _validate_geometry(kind: PlaceKind, geometry_type: str, pointer: str) -> None:
    if kind in POINT_KINDS and geometry_type != "Point":
        raise Invalid.field(pointer, f"a {kind.value} is located by a Point")
    if kind in AREA_KINDS and geometry_type != "Polygon":
        raise Invalid.field(pointer, f"a {kind.value} is outlined by a Polygon")
    if kind in (PlaceKind.UNIT, PlaceKind.HOUSEHOLD):
        raise Invalid.field(pointer, f"a {kind.value} takes its location from its building")
