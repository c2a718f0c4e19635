"""Spreadsheet import: read the file, check every row, then write all rows or none.

A community's register arrives with typos in it. Writing the good rows and rejecting the rest
would leave a half-imported register that is hard to fix, so the importer first checks every
row (values, references, duplicates, the caller's scope) and reports *all* problems at once,
with the row number and header the person sees. Only a file without a single problem is
written, through the same domain code as the API, inside a savepoint: a failure while writing
(a concurrent change) still leaves nothing behind.

Bad input never raises: it comes back as an :class:`ImportReport` with ``ok=False``. The one
exception is a caller whose role may not import this sheet anywhere (``Unauthorized``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from cityweave.authz.policy import Action, Resource, Unauthorized, allows, scope_clause
from cityweave.context import Call
from cityweave.errors import CityWeaveError, Invalid
from cityweave.geo import Geometry
from cityweave.i18n import DEFAULT_LOCALE, translate
from cityweave.people import service as people
from cityweave.people.models import HouseholdMember, MembershipRole, Person
from cityweave.people.schemas import MembershipIn, PersonCreate
from cityweave.places import service as places
from cityweave.places.models import ALLOWED_PARENTS, Place, PlaceKind
from cityweave.places.schemas import PlaceCreate
from cityweave.security.masking import mask_id_number
from cityweave.transfer.cells import CONTROL, REPORTED, Issue, Issues, Label, RowReader
from cityweave.transfer.tables import (
    Cell,
    Formula,
    Table,
    TableError,
    detect_format,
    read_table,
)
from cityweave.transfer.templates import (
    CARE_TAG,
    FACILITY,
    GENDER,
    KIND,
    MAX_ROWS,
    ROLE,
    SHEETS,
    Sheet,
    SheetKind,
    normalise,
)

#: A report lists at most this many problems (the count says how many there were in all).
MAX_REPORTED_ERRORS = 1_000
#: Headers people add for themselves (row numbers, remarks); their columns are not imported.
IGNORED_HEADERS = frozenset({"序号", "no", "no.", "#", "备注", "说明", "note", "notes", "remark", "remarks"})

_GEOMETRY = TypeAdapter(Geometry)
_CHUNK = 500  # ids per IN (...) query: well under every backend's parameter limit

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` with phase ``"check"`` or ``"write"``."""

log = logging.getLogger(__name__)


# -- the report -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowError:
    """One problem. ``row`` is the spreadsheet row (the header row for column problems, None for
    the file as a whole); ``column`` is the header as written in the file; ``field`` the column key."""

    row: int | None
    column: str | None
    field: str | None
    code: str
    message: str


@dataclass
class ImportReport:
    sheet: SheetKind
    ok: bool
    dry_run: bool
    message: str
    counts: dict[str, int]
    errors: list[RowError]
    error_count: int

    @property
    def truncated(self) -> bool:
        return self.error_count > len(self.errors)


# -- messages, in the reader's language ---------------------------------------------------------
def _render(issue: Issue, headers: dict[str, str], sheet: Sheet, locale: str) -> RowError:
    params = {k: (v.render(locale) if isinstance(v, Label) else v) for k, v in issue.params.items()}
    if "message_key" in params:  # a file problem wraps a second message
        params["message"] = _translate(str(params["message_key"]), locale, params)
    column = issue.column
    if column is None and issue.field is not None:
        column = headers.get(issue.field) or sheet.column(issue.field).header
    if column is not None:
        params.setdefault("column", column)  # what {column} in a message means
    return RowError(issue.row, column, issue.field, issue.code, _translate(issue.code, locale, params))


def _translate(code: str, locale: str, params: dict[str, object]) -> str:
    """Translate; a placeholder the parameters lack is logged and shown as '?', never raised:
    a catalogue typo must not turn an error report into a server error."""
    params = dict(params)
    for _ in range(10):
        try:
            return translate(code, locale, **params)
        except KeyError as exc:
            log.error("message %s needs the parameter %s", code, exc.args[0])
            params[str(exc.args[0])] = "?"
    return code


# -- the entry point --------------------------------------------------------------------------------
def import_sheet(
    call: Call,
    kind: SheetKind,
    data: bytes,
    *,
    filename: str | None = None,
    locale: str = DEFAULT_LOCALE,
    dry_run: bool = False,
    max_rows: int = MAX_ROWS,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one sheet in the caller's transaction; see the module docstring for the rules."""
    _require_permission(call, kind)
    sheet = SHEETS[kind]
    issues = Issues()
    headers: dict[str, str] = {}
    fmt = detect_format(data, filename)
    try:
        table = read_table(data, fmt, max_rows=max_rows)
    except TableError as exc:
        issues.add(None, None, exc.code, **exc.params)
        return _report(sheet, issues, headers, locale, dry_run, {"rows": 0})
    positions, headers = _match_columns(sheet, table, issues)
    if issues:
        return _report(sheet, issues, headers, locale, dry_run, {"rows": len(table.rows)})
    rows = list(_rows(table, positions, issues, call.now().date()))
    planner = _place_plan if kind is SheetKind.PLACES else _resident_plan
    plan = planner(call, rows, issues, progress or _no_progress)
    counts = {"rows": len(rows), **plan.counts}
    if issues or dry_run:
        return _report(sheet, issues, headers, locale, dry_run, counts)
    if not _write(call, plan.steps, issues, progress or _no_progress):
        return _report(sheet, issues, headers, locale, dry_run, counts)
    call.audit(f"import.{kind.value}", plan.object_kind, None, place_path=common_path(plan.paths),
               details={"file": _file_label(filename), "format": fmt.value, **counts})
    return _report(sheet, issues, headers, locale, dry_run, counts)


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


def _require_permission(call: Call, kind: SheetKind) -> None:
    principal = call.principal
    if kind is SheetKind.PLACES and not principal.may(Resource.PLACE, Action.CREATE):
        raise Unauthorized("your role may not create places")
    if kind is SheetKind.RESIDENTS and not (
        principal.may(Resource.PERSON, Action.CREATE) and principal.may(Resource.MEMBERSHIP, Action.IMPORT)
    ):
        raise Unauthorized("your role may not import residents")


def _report(sheet: Sheet, issues: Issues, headers: dict[str, str], locale: str, dry_run: bool,
            counts: dict[str, int]) -> ImportReport:
    order = {c.key: i for i, c in enumerate(sheet.columns)}
    ranked = sorted(issues.items, key=lambda i: (i.row or 0, order.get(i.field or "", -1)))
    errors = [_render(i, headers, sheet, locale) for i in ranked[:MAX_REPORTED_ERRORS]]
    if errors and all(i.code in _FILE_CODES for i in issues.items):
        message = errors[0].message  # the file or its header: say what is wrong with it
    elif errors:
        message = translate("import.failed", locale, count=len(issues.rows))
    elif dry_run:
        message = translate("import.valid", locale, count=counts.get("rows", 0))
    else:
        message = translate("import.done", locale, count=counts.get("rows", 0))
    return ImportReport(sheet=sheet.kind, ok=not errors, dry_run=dry_run, message=message, counts=counts,
                        errors=errors, error_count=len(issues.items))


_FILE_CODES = frozenset({
    "import.bad_file", "import.too_many_rows", "import.too_many_columns", "import.cell_too_long",
    "import.missing_column", "import.unknown_column", "import.duplicate_column", "import.no_rows",
})


def _match_columns(sheet: Sheet, table: Table, issues: Issues) -> tuple[dict[int, str], dict[str, str]]:
    """Which file column holds which key; problems are reported on the header row."""
    positions: dict[int, str] = {}
    headers: dict[str, str] = {}
    for position, header in enumerate(table.headers):
        if header is None or normalise(header) in IGNORED_HEADERS:
            continue
        column = sheet.match(header)
        if column is None:
            issues.add(table.header_row, None, "import.unknown_column", column=header)
        elif column.key in headers:
            issues.add(table.header_row, column.key, "import.duplicate_column", column=header)
        else:
            positions[position] = column.key
            headers[column.key] = header
    for column in sheet.columns:
        if column.required and column.key not in headers:
            issues.add(table.header_row, column.key, "import.missing_column", column=column.header)
    if not issues and not table.rows:
        issues.add(None, None, "import.no_rows")
    return positions, headers


def _rows(table: Table, positions: dict[int, str], issues: Issues, today: date) -> Iterator[RowReader]:
    for row in table.rows:
        values: dict[str, Cell] = {}
        for position, key in positions.items():
            cell = row.cells[position] if position < len(row.cells) else None
            if isinstance(cell, Formula):
                issues.add(row.number, key, "import.formula")
                cell = REPORTED
            values[key] = cell
        yield RowReader(row.number, values, issues, today)


# -- plans: what to write, known only once every row checked out --------------------------------------
@dataclass
class _Step:
    row: int
    write: Callable[[], object]
    field: str  # where a failure while writing is reported


@dataclass
class _Plan:
    object_kind: str
    steps: list[_Step] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class _Abort(Exception):
    pass


def _write(call: Call, steps: Sequence[_Step], issues: Issues, progress: Progress) -> bool:
    """Run every step; on the first failure undo them all and report it on its row.

    Checks ran before, so a failure here means the data changed meanwhile (or a check is
    missing): the savepoint keeps the import all-or-nothing even if the caller commits.
    """
    try:
        with call.session.begin_nested():
            for done, step in enumerate(steps, start=1):
                try:
                    step.write()
                except (CityWeaveError, Unauthorized, SQLAlchemyError) as exc:
                    issues.add(step.row, step.field, "import.write_failed", detail=_failure_detail(exc))
                    raise _Abort from exc
                if done % 200 == 0 or done == len(steps):
                    progress("write", done, len(steps))
    except _Abort:
        return False
    return True


def _failure_detail(exc: Exception) -> str:
    if isinstance(exc, Invalid):
        return "; ".join(e.detail for e in exc.errors)
    if isinstance(exc, CityWeaveError):
        return exc.detail
    if isinstance(exc, SQLAlchemyError):
        return "the database refused the row (changed meanwhile?)"
    return str(exc)


def _checking(rows: Sequence[RowReader], progress: Progress) -> Iterator[RowReader]:
    for done, row in enumerate(rows, start=1):
        yield row
        if done % 200 == 0 or done == len(rows):
            progress("check", done, len(rows))


# -- places -----------------------------------------------------------------------------------------
@dataclass
class _PlaceRow:
    reader: RowReader
    id: str | None
    kind: PlaceKind | None
    parent_id: str | None
    create: PlaceCreate | None


_PLACE_COLUMNS = {"geometry": "geometry", "attributes": "attributes"}


def _parse_place(r: RowReader) -> _PlaceRow:
    place_id = r.place_id("id", required=True)
    kind_code = r.choice("kind", KIND, required=True, code="import.bad_kind")
    kind = PlaceKind(kind_code) if kind_code else None
    parent_id = r.place_id("parent_id")
    fields: dict[str, Any] = {
        "id": place_id,
        "kind": kind,
        "parent_id": parent_id,
        "name": r.text("name", max_len=200, required=True),
        "name_en": r.text("name_en", max_len=200),
        "code": r.text("code", max_len=64),
        "facility_type": r.choice("facility_type", FACILITY),
    }
    geometry, geometry_column = _place_geometry(r)
    fields["geometry"] = geometry
    fields["attributes"] = _place_attributes(r)
    if kind is not None:
        _check_place_shape(r, kind, fields, geometry_column)
    create = None
    if r.clean:
        create = r.model(PlaceCreate, {k: v for k, v in fields.items() if v is not None},
                         {**_PLACE_COLUMNS, "geometry": geometry_column})
    return _PlaceRow(r, place_id, kind, parent_id, create)


def _place_geometry(r: RowReader) -> tuple[dict[str, Any] | None, str]:
    """A point from longitude/latitude, or GeoJSON from the geometry column (areas)."""
    longitude = r.decimal("longitude", -180, 180)
    latitude = r.decimal("latitude", -90, 90)
    shape = r.json_object("geometry")
    has_point = r.has("longitude") or r.has("latitude")
    if r.has("longitude") != r.has("latitude"):
        r.error("latitude" if r.has("longitude") else "longitude", "import.coordinates_pair")
    if has_point and r.has("geometry"):
        r.error("geometry", "import.geometry_twice")
        return None, "geometry"
    if shape is not None:
        try:
            return _GEOMETRY.validate_python(shape).model_dump(), "geometry"
        except ValidationError:
            r.error("geometry", "import.bad_geometry")
            return None, "geometry"
    if longitude is not None and latitude is not None:
        return {"type": "Point", "coordinates": [longitude, latitude]}, "longitude"
    return None, "longitude" if has_point else "geometry"


def _place_attributes(r: RowReader) -> dict[str, Any]:
    attributes = r.json_object("attributes") or {}
    floor = r.integer("floor", -20, 500)
    area = r.decimal("area_m2", 0, 1_000_000_000)
    if floor is not None:
        attributes["floor"] = floor  # the dedicated column wins over the same key in the JSON
    if area is not None:
        attributes["area_m2"] = int(area) if area.is_integer() else area
    if len(attributes) > 50:
        r.error("attributes", "import.too_many_values", max=50)
    return attributes


def _check_place_shape(r: RowReader, kind: PlaceKind, fields: dict[str, Any], geometry_column: str) -> None:
    """The rules of places.service, checked here so that they come back translated, per row."""
    label = Label(KIND, (kind.value,))
    if kind is PlaceKind.FACILITY and fields["facility_type"] is None and not r.has("facility_type"):
        r.error("facility_type", "import.needs_facility_type")
    if kind is not PlaceKind.FACILITY and r.has("facility_type"):
        r.error("facility_type", "import.facility_type_only")
    geometry = fields["geometry"]
    if geometry is None:
        return
    if kind in (PlaceKind.UNIT, PlaceKind.HOUSEHOLD):
        r.error(geometry_column, "import.no_geometry", kind=label)
    elif kind in places.POINT_KINDS and geometry["type"] != "Point":
        r.error(geometry_column, "import.needs_point", kind=label)
    elif kind in places.AREA_KINDS and geometry["type"] != "Polygon":
        r.error(geometry_column, "import.needs_polygon", kind=label)


def _place_plan(call: Call, rows: Sequence[RowReader], issues: Issues, progress: Progress) -> _Plan:
    parsed = [_parse_place(r) for r in _checking(rows, progress)]
    first_row: dict[str, int] = {}
    for p in parsed:
        if p.id is None:
            continue
        if p.id in first_row:
            p.reader.error("id", "import.duplicate_id", value=p.id, other=first_row[p.id])
        else:
            first_row[p.id] = p.reader.number
    existing = _existing_place_ids(call, first_row)
    outside = {p.parent_id for p in parsed if p.parent_id and p.parent_id not in first_row}
    db_parents = _visible_places(call, outside)
    known: dict[str, tuple[PlaceKind | None, str | None]] = {}  # sheet places checked so far
    plan = _Plan("place")
    checked: list[tuple[int, PlaceCreate, str]] = []
    for p in parsed:
        path = _place_path(call, p, existing, known, db_parents)
        if p.id is not None and first_row[p.id] == p.reader.number:
            known[p.id] = (p.kind, path)
        if p.create is not None and path is not None:
            checked.append((p.reader.number, p.create, path))
            plan.paths.append(path)
    # Every row was checked above (parent, shape, scope), so the rows go in as bulk inserts of
    # a few hundred, parents first; a failure is reported on the first row of its batch.
    for start in range(0, len(checked), _PLACE_BATCH):
        batch = checked[start : start + _PLACE_BATCH]
        plan.steps.append(_Step(batch[0][0], _insert_places(call, [(d, path) for _, d, path in batch]), "id"))
    plan.counts = {"places": len(checked)}
    return plan


_PLACE_BATCH = 500


def _insert_places(call: Call, batch: list[tuple[PlaceCreate, str]]) -> Callable[[], object]:
    return lambda: places.insert_checked(call, batch)  # audits each place


def _place_path(
    call: Call,
    p: _PlaceRow,
    existing: set[str],
    known: dict[str, tuple[PlaceKind | None, str | None]],
    db_parents: dict[str, Place],
) -> str | None:
    """The new place's path, after checking its parent, its id and the caller's scope."""
    r = p.reader
    if p.id is not None and p.id in existing:
        r.error("id", "import.exists", value=p.id)
    if p.parent_id is None and r.has("parent_id"):
        return None  # the parent id itself was wrong; already reported
    if p.parent_id is None:
        parent_kind, parent_path = None, "/"
    elif p.parent_id in known:
        parent_kind, parent_path = known[p.parent_id]
    elif p.parent_id in db_parents:
        parent_kind, parent_path = db_parents[p.parent_id].kind, db_parents[p.parent_id].path
    else:
        r.error("parent_id", "import.unknown_parent", value=p.parent_id)
        return None
    if p.kind is not None and parent_kind not in ALLOWED_PARENTS[p.kind] and (
        parent_kind is not None or p.parent_id is None
    ):
        allowed = tuple(k.value for k in ALLOWED_PARENTS[p.kind] if k is not None)
        if allowed:
            r.error("parent_id", "import.bad_parent_kind", kind=Label(KIND, (p.kind.value,)),
                    parents=Label(KIND, allowed))
        else:
            r.error("parent_id", "import.top_level", kind=Label(KIND, (p.kind.value,)))
    if p.id is None or parent_path is None:
        return None
    path = parent_path + p.id + "/"
    if not allows(call.principal, Resource.PLACE, Action.CREATE, [path]):
        where = "parent_id" if p.parent_id else "id"
        r.error(where, "import.not_allowed", value=p.parent_id or p.id)
        return None
    return path


def _existing_place_ids(call: Call, ids: Iterable[str]) -> set[str]:
    """Ids already taken anywhere: ids are global, as in places.service.create_place."""
    found: set[str] = set()
    for chunk in _chunks(sorted(ids)):
        found.update(call.session.execute(select(Place.id).where(Place.id.in_(chunk))).scalars())
    return found


def _visible_places(call: Call, ids: Iterable[str]) -> dict[str, Place]:
    """Places the caller may see; others answer 'not found' so that ids cannot be probed."""
    found: dict[str, Place] = {}
    for chunk in _chunks(sorted(ids)):
        stmt = select(Place).where(Place.id.in_(chunk), scope_clause(call.principal, Resource.PLACE, Action.READ))
        found.update((p.id, p) for p in call.session.execute(stmt).scalars())
    return found


# -- residents --------------------------------------------------------------------------------------
@dataclass
class _ResidentRow:
    reader: RowReader
    name: str | None
    id_number: str | None
    households: list[str]
    care_tags: list[str]
    fields: dict[str, Any]
    roles: list[str]
    since: list[date]


_PERSON_COLUMNS = {"households": "household_id"}


def _parse_resident(r: RowReader) -> _ResidentRow:
    households = r.id_list("household_id", required=True, max_items=10)
    roles = r.choice_list("role", ROLE)
    since = r.date_values("since")
    for key, values in (("role", roles), ("since", since)):
        if len(values) > 1 and len(values) != len(households):
            r.error(key, "import.per_household", count=len(households))
    fields = {
        "name": r.personal_text("name", max_len=100, required=True),
        "phone": r.phone("phone"),
        "id_number": r.id_number("id_number"),
        "gender": r.choice("gender", GENDER),
        "birth_date": r.date_value("birth_date"),
        "care_tags": r.choice_list("care_tags", CARE_TAG),
    }
    return _ResidentRow(r, fields["name"], fields["id_number"], households, fields["care_tags"], fields,
                        roles, since)


def _person_create(p: _ResidentRow) -> PersonCreate | None:
    memberships = [
        {"household_id": household,
         "role": _nth(p.roles, i) or MembershipRole.FAMILY,
         "since": _nth(p.since, i)}
        for i, household in enumerate(p.households)
    ]
    fields = {k: v for k, v in p.fields.items() if v not in (None, [])}
    return p.reader.model(PersonCreate, {**fields, "households": [MembershipIn(**m) for m in memberships]},
                          _PERSON_COLUMNS)


def _nth(values: Sequence[Any], i: int) -> Any:
    if not values:
        return None
    return values[0] if len(values) == 1 else values[i]


def _resident_plan(call: Call, rows: Sequence[RowReader], issues: Issues, progress: Progress) -> _Plan:
    parsed = [_parse_resident(r) for r in _checking(rows, progress)]
    _check_resident_duplicates(parsed)
    households = _visible_places(call, {h for p in parsed for h in p.households})
    households = {k: v for k, v in households.items() if v.kind is PlaceKind.HOUSEHOLD}
    _check_existing_residents(call, parsed, households)
    plan = _Plan("person")
    for p in parsed:
        targets = _resident_households(call, p, households)
        if p.reader.clean and targets is not None:
            data = _person_create(p)
            if data is not None:
                plan.steps.append(_Step(p.reader.number, _new_person(call, data, targets), "name"))
                plan.paths.extend(h.path for h in targets)
    plan.counts = {
        "persons": len(plan.steps),
        "memberships": sum(len(p.households) for p in parsed),
        "care_tags": sum(len(p.care_tags) for p in parsed),
    }
    return plan


def _new_person(call: Call, data: PersonCreate, households: list[Place]) -> Callable[[], object]:
    # new_person skips the per-person checks and audit: scope was checked per row above, and
    # the import is audited once as a whole.
    return lambda: people.new_person(call.session, call.cipher, data, households, now=call.now())


def _resident_households(call: Call, p: _ResidentRow, households: dict[str, Place]) -> list[Place] | None:
    """The row's households, if they exist and the caller may import residents into each."""
    r, principal = p.reader, call.principal
    targets: list[Place] = []
    for household_id in p.households:
        place = households.get(household_id)
        if place is None:
            r.error("household_id", "import.unknown_household", value=household_id)
        elif not (allows(principal, Resource.PERSON, Action.CREATE, [place.path])
                  and allows(principal, Resource.MEMBERSHIP, Action.IMPORT, [place.path])):
            r.error("household_id", "import.not_allowed", value=household_id)
        else:
            targets.append(place)
    if len(targets) != len(p.households) or not targets:
        return None
    if p.care_tags and not allows(principal, Resource.CARE_TAG, Action.CREATE, [h.path for h in targets]):
        r.error("care_tags", "import.not_allowed", value=targets[0].id)
        return None
    return targets


def _check_resident_duplicates(parsed: Sequence[_ResidentRow]) -> None:
    """The same person twice in one sheet: by ID-card number, or by name within a household."""
    by_id_number: dict[str, int] = {}
    by_member: dict[tuple[str, str], int] = {}
    for p in parsed:
        row = p.reader.number
        if p.id_number:
            if p.id_number in by_id_number:
                p.reader.error("id_number", "import.duplicate_person", other=by_id_number[p.id_number])
            else:
                by_id_number[p.id_number] = row
        for household in p.households if p.name else ():
            key = (household, p.name or "")
            if key in by_member:
                p.reader.error("name", "import.duplicate_member", name=p.name, household=household,
                               other=by_member[key])
            else:
                by_member[key] = row


def _check_existing_residents(call: Call, parsed: Sequence[_ResidentRow], households: dict[str, Place]) -> None:
    """Importing the same file twice must not double the register: a person the caller can see
    with the same ID-card number, or of the same name in the same household, already exists."""
    wanted = {people.id_number_index(call.cipher, p.id_number): p for p in parsed if p.id_number}
    for chunk in _chunks(sorted(wanted)):
        stmt = select(Person.id_number_index).where(
            Person.id_number_index.in_(chunk), scope_clause(call.principal, Resource.PERSON, Action.READ)
        )
        for index in call.session.execute(stmt).scalars():
            p = wanted[index]
            p.reader.error("id_number", "import.exists", value=mask_id_number(p.id_number))
    members = _member_names(call, households)
    for p in parsed:
        for household in p.households:
            if p.name and (household, p.name) in members:
                p.reader.error("name", "import.already_member", name=p.name, household=household)


def _member_names(call: Call, households: dict[str, Place]) -> set[tuple[str, str]]:
    names: set[tuple[str, str]] = set()
    for chunk in _chunks(sorted(households)):
        stmt = (select(HouseholdMember.household_id, Person.name_enc)
                .join(Person, Person.id == HouseholdMember.person_id)
                .where(HouseholdMember.household_id.in_(chunk)))
        for household_id, name_enc in call.session.execute(stmt):
            names.add((household_id, call.cipher.decrypt(name_enc, people.NAME)))
    return names


# -- small helpers ----------------------------------------------------------------------------------
def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def common_path(paths: Sequence[str]) -> str | None:
    """The deepest place enclosing every written row, so scoped auditors see the import."""
    if not paths:
        return None
    parts = [p.strip("/").split("/") for p in paths]
    common: list[str] = []
    for segments in zip(*parts, strict=False):
        if len(set(segments)) != 1:
            break
        common.append(segments[0])
    return "/" + "/".join(common) + "/" if common else None


def _file_label(filename: str | None) -> str | None:
    if not filename:
        return None
    base = re.split(r"[\\/]", filename)[-1]
    return CONTROL.sub("", base)[:200] or None
