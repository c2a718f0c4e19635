"""Export places or residents in the template layout, so that an export imports again.

What a caller may export is what they may read: their scope, nothing more. Personal data is
masked (张**, 138****1234) unless the caller may reveal it for that person, by the same rule
as the reveal endpoint (``people.service.Visibility``). Every unmasked person is audited as a
personal-data view (``person.reveal`` with ``via: export``), and each export once more as a
whole, so that "who saw my phone number" has an answer even when it left in a spreadsheet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import selectinload

from cityweave.authz.policy import Action, Principal, Resource, Unauthorized, allows, scope_clause
from cityweave.context import Call
from cityweave.i18n import DEFAULT_LOCALE
from cityweave.people import service as people
from cityweave.people.models import CareTagKind, HouseholdMember, Person
from cityweave.places import service as places
from cityweave.places.models import Place
from cityweave.security.masking import mask_id_number, mask_name, mask_phone
from cityweave.transfer.importer import common_path
from cityweave.transfer.tables import (
    CSV_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    FileFormat,
    Value,
    write_csv,
    write_xlsx,
)
from cityweave.transfer.templates import (
    CARE_TAG,
    FACILITY,
    GENDER,
    HELP_TITLE,
    KIND,
    ROLE,
    SHEETS,
    SheetKind,
    help_rows,
)

_BATCH = 1000  # persons per query: bounded memory however large the district
_TAG_ORDER = list(CareTagKind)  # the order the template lists them in


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    media_type: str
    filename: str
    rows: int


def export_sheet(
    call: Call,
    kind: SheetKind,
    fmt: FileFormat,
    *,
    within: str | None = None,
    locale: str = DEFAULT_LOCALE,
) -> ExportFile:
    """The caller's places or residents (inside ``within`` if given) as a CSV or XLSX file."""
    anchor = places.get_place(call, within) if within else None
    if kind is SheetKind.PLACES:
        rows, paths = _place_rows(call, anchor, locale)
    else:
        rows, paths = _resident_rows(call, anchor, locale)
    sheet = SHEETS[kind]
    if fmt is FileFormat.CSV:
        content, media_type = write_csv(sheet.headers, rows), CSV_MEDIA_TYPE
    else:
        content = write_xlsx(sheet.title, sheet.headers, rows, extra_sheets=[(HELP_TITLE, help_rows(sheet))])
        media_type = XLSX_MEDIA_TYPE
    call.audit(f"export.{kind.value}", "place" if kind is SheetKind.PLACES else "person", within,
               place_path=anchor.path if anchor else common_path(paths),
               details={"rows": len(rows), "format": fmt.value, "within": within})
    stamp = call.now().strftime("%Y%m%d")
    return ExportFile(content, media_type, f"{kind.value}-{within or 'all'}-{stamp}.{fmt.value}", len(rows))


def _ordered(values: dict[str, Value], kind: SheetKind) -> list[Value]:
    return [values.get(column.key) for column in SHEETS[kind].columns]


# -- places -----------------------------------------------------------------------------------------
def _place_rows(call: Call, anchor: Place | None, locale: str) -> tuple[list[list[Value]], list[str]]:
    principal = call.principal
    if not principal.may(Resource.PLACE, Action.READ):
        raise Unauthorized("your role may not read places")
    stmt = select(Place).where(_inside_scope(principal))
    if anchor is not None:
        stmt = stmt.where(Place.path.startswith(anchor.path, autoescape=True), Place.id != anchor.id)
    found = list(call.session.execute(stmt).scalars())
    # Parents before children, whatever the database's collation: the import needs that order.
    found.sort(key=lambda p: p.path.strip("/").split("/"))
    return [_ordered(_place_values(p, locale), SheetKind.PLACES) for p in found], [p.path for p in found]


def _inside_scope(principal: Principal) -> ColumnElement[bool]:
    """Places *inside* the caller's scope. Reading also reaches the places enclosing it (for
    breadcrumbs), but those are not the caller's to export: they would not import back."""
    paths = principal.scope_paths(Resource.PLACE, Action.READ)
    if paths is None:
        return true()
    return or_(*(Place.path.startswith(p, autoescape=True) for p in paths))


def _place_values(place: Place, locale: str) -> dict[str, Value]:
    values: dict[str, Value] = {
        "id": place.id,
        "kind": KIND.label(place.kind, locale),
        "parent_id": place.parent_id,
        "name": place.name,
        "name_en": place.name_en,
        "code": place.code,
        "facility_type": FACILITY.label(place.facility_type, locale) if place.facility_type else None,
    }
    geometry = place.geometry
    if geometry and geometry.get("type") == "Point":
        values["longitude"], values["latitude"] = geometry["coordinates"][0], geometry["coordinates"][1]
    elif geometry:
        values["geometry"] = _json(geometry)
    attributes = dict(place.attributes or {})
    # Split out the common attributes only when the import would take them back as they are.
    if _is_whole(attributes.get("floor"), -20, 500):
        values["floor"] = attributes.pop("floor")
    if _is_number(attributes.get("area_m2"), 0, 1_000_000_000):
        values["area_m2"] = attributes.pop("area_m2")
    values["attributes"] = _json(attributes) if attributes else None
    return values


def _is_whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# -- residents --------------------------------------------------------------------------------------
def _resident_rows(call: Call, anchor: Place | None, locale: str) -> tuple[list[list[Value]], list[str]]:
    principal = call.principal
    if not principal.may(Resource.PERSON, Action.READ) and not principal.person_id:
        raise Unauthorized("your role may not read persons")
    keyed: list[tuple[tuple[str, str], list[Value]]] = []
    paths: list[str] = []
    for person in _persons(call, anchor):
        memberships = [m for m in sorted(person.memberships, key=lambda m: m.id)  # as imported
                       if person.id == principal.person_id
                       or allows(principal, Resource.MEMBERSHIP, Action.READ, [m.household_path])]
        seen = people.Visibility.of(principal, person.id, people.household_paths(person))
        keyed.append(((memberships[0].household_path if memberships else "", person.id),
                      _ordered(_resident_values(call, person, memberships, seen, locale), SheetKind.RESIDENTS)))
        paths.extend(m.household_path for m in memberships)
        if seen.contact:
            call.audit("person.reveal", "person", person.id,
                       place_path=memberships[0].household_path if memberships else None,
                       details={"fields": ["name", "phone"] + (["id_number"] if seen.id_number else []),
                                "via": "export"})
    keyed.sort(key=lambda item: item[0])
    return [row for _, row in keyed], paths


def _persons(call: Call, anchor: Place | None) -> Iterator[Person]:
    """Persons the caller may read, in batches by id (keyset), so memory stays bounded."""
    stmt = (
        select(Person)
        .options(selectinload(Person.memberships), selectinload(Person.care_tags))
        .where(scope_clause(call.principal, Resource.PERSON, Action.READ))
        .order_by(Person.id)
        .limit(_BATCH)
    )
    if anchor is not None:
        stmt = stmt.where(Person.memberships.any(
            HouseholdMember.household_path.startswith(anchor.path, autoescape=True)))
    last = ""
    while True:
        batch = list(call.session.execute(stmt.where(Person.id > last)).scalars())
        yield from batch
        if len(batch) < _BATCH:
            return
        last = batch[-1].id


def _resident_values(
    call: Call, person: Person, memberships: Sequence[HouseholdMember], seen: people.Visibility, locale: str
) -> dict[str, Value]:
    cipher = call.cipher
    name = cipher.decrypt(person.name_enc, people.NAME)
    phone = cipher.decrypt_optional(person.phone_enc, people.PHONE)
    id_number = cipher.decrypt_optional(person.id_number_enc, people.ID_NUMBER)
    birth = person.birth_date
    tags = {t.tag for t in person.care_tags}
    return {
        "name": name if seen.contact else mask_name(name),
        "phone": phone if seen.contact else mask_phone(phone),
        "id_number": id_number if seen.id_number else mask_id_number(id_number),
        "gender": GENDER.label(person.gender, locale) if person.gender in GENDER.labels else person.gender,
        # The masked view shows the year only, as the person list does.
        "birth_date": (birth.isoformat() if seen.contact else str(birth.year)) if birth else None,
        "household_id": ",".join(m.household_id for m in memberships) or None,
        "role": _one_or_each([ROLE.label(m.role, locale) for m in memberships]),
        "since": _one_or_each([_iso(m.since) for m in memberships]),
        "care_tags": ",".join(CARE_TAG.label(tag, locale) for tag in _TAG_ORDER if tag in tags)
        if seen.care_tags and tags else None,
    }


def _one_or_each(values: list[str | None]) -> str | None:
    """One value when all households share it (what people write), else one per household."""
    distinct = set(values)
    if not values or distinct == {None}:
        return None
    if len(distinct) == 1:
        return values[0]
    return ",".join(v or "" for v in values)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
