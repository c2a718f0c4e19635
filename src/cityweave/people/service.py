"""Persons, household memberships and care tags, with personal data encrypted and masked."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cityweave.authz.policy import (
    SELF_ACTIONS,
    Action,
    Principal,
    Resource,
    allows,
    check,
    scope_clause,
)
from cityweave.context import Call
from cityweave.db.base import new_id
from cityweave.errors import Conflict, FieldError, Invalid, NotFound
from cityweave.listing import Page, PageRequest, paginate
from cityweave.people.identity_numbers import (
    birth_date_from_id,
    gender_from_id,
    id_number_problem,
    phone_problem,
)
from cityweave.people.models import CareTag, CareTagKind, HouseholdMember, Person
from cityweave.people.schemas import (
    CareTagIn,
    MembershipIn,
    MembershipOut,
    PersonalData,
    PersonCreate,
    PersonOut,
    PersonUpdate,
)
from cityweave.places.models import Place, PlaceKind
from cityweave.security.crypto import FieldCipher
from cityweave.security.masking import (
    mask_id_number,
    mask_name,
    mask_phone,
    normalise_id_number,
    normalise_phone,
)

NAME, PHONE, ID_NUMBER, CARE_NOTE = "persons.name", "persons.phone", "persons.id_number", "care_tags.note"

SORTABLE = {"id": Person.id, "created_at": Person.created_at, "birth_date": Person.birth_date}


# -- reading ----------------------------------------------------------------------------------------
def get_person(call: Call, person_id: str, action: Action = Action.READ) -> Person:
    person = call.session.execute(
        select(Person)
        .options(selectinload(Person.memberships), selectinload(Person.care_tags))
        .where(Person.id == person_id, scope_clause(call.principal, Resource.PERSON, Action.READ))
    ).scalar_one_or_none()
    if person is None:
        raise NotFound(f"no person {person_id!r}")
    is_self = person.id == call.principal.person_id and action in SELF_ACTIONS
    if action is not Action.READ and not is_self:
        check(call.principal, Resource.PERSON, action, household_paths(person))
    return person


def list_persons(
    call: Call,
    page: PageRequest,
    *,
    household_id: str | None = None,
    within: str | None = None,
    phone: str | None = None,
    id_number: str | None = None,
    care_tag: CareTagKind | None = None,
) -> Page[Person]:
    # No eager loading here: to_out_many fetches memberships and tags for the whole page in two
    # plain queries, several times faster than populating ORM collections for 1,000 persons.
    stmt = select(Person).where(scope_clause(call.principal, Resource.PERSON, Action.READ))
    if household_id:
        stmt = stmt.where(
            Person.memberships.any(HouseholdMember.household_id == household_id)
        )
    if within:
        place = call.session.get(Place, within)
        if place is None:
            raise Invalid.field("within", f"no place {within!r}")
        stmt = stmt.where(
            Person.memberships.any(HouseholdMember.household_path.startswith(place.path, autoescape=True))
        )
    # Exact-match search on encrypted data through the keyed hash: no row is decrypted.
    if phone:
        stmt = stmt.where(Person.phone_index == phone_index(call.cipher, phone))
    if id_number:
        stmt = stmt.where(Person.id_number_index == id_number_index(call.cipher, id_number))
    if care_tag:
        if not may_read_care_tags(call.principal):
            raise Invalid.field("care_tag", "your role may not filter by care tags")
        stmt = stmt.where(
            Person.care_tags.any(CareTag.tag == care_tag),
            Person.care_tags.any(scope_clause(call.principal, Resource.CARE_TAG, Action.READ)),
        )
    return paginate(call.session, stmt, page, SORTABLE, "id")


def may_read_care_tags(principal: Principal) -> bool:
    """Whether the caller's role reads care tags anywhere at all (filters, the console's care
    columns and welfare figures); whose tags exactly: the CARE_TAG scope and :class:`Visibility`."""
    return principal.may(Resource.CARE_TAG, Action.READ)


@dataclass(frozen=True)
class Visibility:
    """What a caller may see of one person, beyond the masked basics. The one rule used by the
    API views, the reveal endpoint and the spreadsheet export."""

    contact: bool  # full name and phone
    id_number: bool
    care_tags: bool

    @classmethod
    def of(cls, principal: Principal, person_id: str, household_paths: list[str]) -> Visibility:
        own = person_id == principal.person_id
        contact = own or allows(principal, Resource.PERSON, Action.REVEAL_CONTACT, household_paths)
        return cls(
            contact=contact,
            id_number=contact and (own or allows(principal, Resource.PERSON, Action.REVEAL_ID, household_paths)),
            care_tags=own or allows(principal, Resource.CARE_TAG, Action.READ, household_paths),
        )


def to_out(call: Call, person: Person) -> PersonOut:
    """The masked view of one person (see :func:`to_out_many`)."""
    return _out(call, person, list(person.memberships), [t.tag for t in person.care_tags])


def to_out_many(call: Call, persons: Sequence[Person]) -> list[PersonOut]:
    """Masked views of a page of persons, with memberships and tags fetched in two queries."""
    ids = [p.id for p in persons]
    memberships: dict[str, list[HouseholdMember]] = defaultdict(list)
    tags: dict[str, list[CareTagKind]] = defaultdict(list)
    if ids:
        for member in call.session.execute(
            select(HouseholdMember).where(HouseholdMember.person_id.in_(ids)).order_by(HouseholdMember.id)
        ).scalars():
            memberships[member.person_id].append(member)
        for person_id, tag in call.session.execute(
            select(CareTag.person_id, CareTag.tag).where(CareTag.person_id.in_(ids))
        ):
            tags[person_id].append(tag)
    return [_out(call, p, memberships[p.id], tags[p.id]) for p in persons]


def _out(call: Call, person: Person, memberships: list[HouseholdMember], tags: list[CareTagKind]) -> PersonOut:
    """Masked basics; care tags only for callers whose role may read them for this person."""
    cipher = call.cipher
    seen = Visibility.of(call.principal, person.id, [m.household_path for m in memberships])
    return PersonOut(
        id=person.id,
        name=mask_name(cipher.decrypt(person.name_enc, NAME)) or "",
        phone=mask_phone(cipher.decrypt_optional(person.phone_enc, PHONE)),
        id_number=mask_id_number(cipher.decrypt_optional(person.id_number_enc, ID_NUMBER)),
        gender=person.gender,
        birth_year=person.birth_date.year if person.birth_date else None,
        households=[MembershipOut(household_id=m.household_id, role=m.role, since=m.since) for m in memberships],
        care_tags=sorted(tags) if seen.care_tags else None,
        created_at=person.created_at,
    )


def reveal(call: Call, person_id: str) -> PersonalData:
    """Unmasked personal data. Contact needs REVEAL_CONTACT; the ID number needs REVEAL_ID."""
    person = get_person(call, person_id, Action.REVEAL_CONTACT)
    paths = household_paths(person)
    show_id = Visibility.of(call.principal, person.id, paths).id_number
    call.audit(
        "person.reveal",
        "person",
        person.id,
        place_path=paths[0] if paths else None,
        details={"fields": ["name", "phone"] + (["id_number"] if show_id else [])},
    )
    return PersonalData(
        id=person.id,
        name=call.cipher.decrypt(person.name_enc, NAME),
        phone=call.cipher.decrypt_optional(person.phone_enc, PHONE),
        id_number=call.cipher.decrypt_optional(person.id_number_enc, ID_NUMBER) if show_id else None,
    )


# -- writing ----------------------------------------------------------------------------------------
def create_person(call: Call, data: PersonCreate) -> Person:
    households = [_household_for(call, m, f"/households/{i}/household_id") for i, m in enumerate(data.households)]
    paths = [h.path for h in households]
    if not paths and call.principal.scope_paths(Resource.PERSON, Action.CREATE) is not None:
        raise Invalid.field("/households", "a person must belong to a household in your scope")
    check(call.principal, Resource.PERSON, Action.CREATE, paths or ["/"])
    if data.care_tags:
        check(call.principal, Resource.CARE_TAG, Action.CREATE, paths or ["/"])
    person = new_person(call.session, call.cipher, data, households, now=call.now())
    call.audit(
        "person.create",
        "person",
        person.id,
        place_path=paths[0] if paths else None,
        details={"households": [h.id for h in households], "care_tags": [str(t) for t in data.care_tags]},
    )
    return person


def new_person(
    session: Session,
    cipher: FieldCipher,
    data: PersonCreate,
    households: list[Place],
    *,
    now,
    person_id: str | None = None,
    flush: bool = True,
) -> Person:
    """Build and add a person without scope checks: for callers that checked already
    (the service above, the importer, the demo loader). Bulk loaders pass ``flush=False``
    and flush once per batch, so SQLAlchemy sends multi-row INSERTs."""
    phone, id_number = _validated_identifiers(data.phone, data.id_number)
    gender, birth_date = data.gender, data.birth_date
    if id_number:
        gender = gender or gender_from_id(id_number)
        birth_date = birth_date or birth_date_from_id(id_number)
    person = Person(
        id=person_id or new_id("p"),
        name_enc=cipher.encrypt(data.name.strip(), NAME),
        phone_enc=cipher.encrypt_optional(phone, PHONE),
        phone_index=phone_index(cipher, phone) if phone else None,
        id_number_enc=cipher.encrypt_optional(id_number, ID_NUMBER),
        id_number_index=id_number_index(cipher, id_number) if id_number else None,
        gender=gender,
        birth_date=birth_date,
        created_at=now,
        updated_at=now,
    )
    for household, membership in zip(households, data.households, strict=True):
        person.memberships.append(
            HouseholdMember(
                household_id=household.id,
                household_path=household.path,
                role=membership.role,
                since=membership.since,
            )
        )
    for tag in dict.fromkeys(data.care_tags):
        person.care_tags.append(CareTag(tag=tag, created_at=now))
    session.add(person)
    if flush:
        session.flush()
    return person


def update_person(call: Call, person_id: str, data: PersonUpdate) -> Person:
    person = get_person(call, person_id, Action.UPDATE)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and not changes["name"]:
        raise Invalid.field("/name", "a person must keep a name")
    phone, id_number = _validated_identifiers(changes.get("phone"), changes.get("id_number"))
    cipher = call.cipher
    if "name" in changes:
        person.name_enc = cipher.encrypt(data.name.strip(), NAME)  # type: ignore[union-attr]
    if "phone" in changes:
        person.phone_enc = cipher.encrypt_optional(phone, PHONE)
        person.phone_index = phone_index(cipher, phone) if phone else None
    if "id_number" in changes:
        person.id_number_enc = cipher.encrypt_optional(id_number, ID_NUMBER)
        person.id_number_index = id_number_index(cipher, id_number) if id_number else None
    for name in ("gender", "birth_date"):
        if name in changes:
            setattr(person, name, changes[name])
    person.updated_at = call.now()
    paths = household_paths(person)
    # Field names only: the audit trail must not become a second copy of personal data.
    call.audit("person.update", "person", person.id, place_path=paths[0] if paths else None,
               details={"fields": sorted(changes)})
    return person


def delete_person(call: Call, person_id: str) -> None:
    person = get_person(call, person_id, Action.DELETE)
    paths = household_paths(person)
    call.session.delete(person)
    call.audit("person.delete", "person", person_id, place_path=paths[0] if paths else None)


def add_membership(call: Call, person_id: str, data: MembershipIn) -> HouseholdMember:
    person = get_person(call, person_id)
    household = _household_for(call, data, "/household_id")
    check(call.principal, Resource.MEMBERSHIP, Action.CREATE, [household.path])
    if any(m.household_id == household.id for m in person.memberships):
        raise Conflict("the person already belongs to this household")
    member = HouseholdMember(
        household_id=household.id, household_path=household.path, role=data.role, since=data.since
    )
    person.memberships.append(member)
    call.session.flush()
    call.audit("membership.create", "person", person.id, place_path=household.path,
               details={"household_id": household.id, "role": str(data.role)})
    return member


def remove_membership(call: Call, person_id: str, household_id: str) -> None:
    person = get_person(call, person_id)
    member = next((m for m in person.memberships if m.household_id == household_id), None)
    if member is None:
        raise NotFound("the person does not belong to this household")
    check(call.principal, Resource.MEMBERSHIP, Action.DELETE, [member.household_path])
    person.memberships.remove(member)
    call.audit("membership.delete", "person", person.id, place_path=member.household_path,
               details={"household_id": household_id})


def add_care_tag(call: Call, person_id: str, data: CareTagIn) -> CareTag:
    person = get_person(call, person_id)
    paths = household_paths(person)
    check(call.principal, Resource.CARE_TAG, Action.CREATE, paths,
          visible=allows(call.principal, Resource.CARE_TAG, Action.READ, paths))
    if any(t.tag == data.tag for t in person.care_tags):
        raise Conflict(f"the person already has the care tag {data.tag.value!r}")
    tag = CareTag(tag=data.tag, note_enc=call.cipher.encrypt_optional(data.note, CARE_NOTE), created_at=call.now())
    person.care_tags.append(tag)
    call.session.flush()
    call.audit("care_tag.create", "person", person.id, place_path=paths[0] if paths else None,
               details={"tag": data.tag.value})
    return tag


def remove_care_tag(call: Call, person_id: str, tag: CareTagKind) -> None:
    person = get_person(call, person_id)
    paths = household_paths(person)
    check(call.principal, Resource.CARE_TAG, Action.DELETE, paths,
          visible=allows(call.principal, Resource.CARE_TAG, Action.READ, paths))
    existing = next((t for t in person.care_tags if t.tag == tag), None)
    if existing is None:
        raise NotFound(f"the person has no care tag {tag.value!r}")
    person.care_tags.remove(existing)
    call.audit("care_tag.delete", "person", person.id, place_path=paths[0] if paths else None,
               details={"tag": tag.value})


# -- helpers ----------------------------------------------------------------------------------------
def household_paths(person: Person) -> list[str]:
    return [m.household_path for m in person.memberships]


def phone_index(cipher: FieldCipher, phone: str) -> str:
    return cipher.blind_index(normalise_phone(phone), PHONE)


def id_number_index(cipher: FieldCipher, id_number: str) -> str:
    return cipher.blind_index(normalise_id_number(id_number), ID_NUMBER)


def _validated_identifiers(phone: str | None, id_number: str | None) -> tuple[str | None, str | None]:
    errors = []
    if phone:
        phone = normalise_phone(phone)
        if problem := phone_problem(phone):
            errors.append(FieldError("/phone", problem))
    if id_number:
        id_number = normalise_id_number(id_number)
        if problem := id_number_problem(id_number):
            errors.append(FieldError("/id_number", problem))
    if errors:
        raise Invalid(errors)
    return phone or None, id_number or None


def _household_for(call: Call, membership: MembershipIn, pointer: str) -> Place:
    household = call.session.execute(
        select(Place).where(
            Place.id == membership.household_id,
            scope_clause(call.principal, Resource.PLACE, Action.READ),
        )
    ).scalar_one_or_none()
    if household is None or household.kind is not PlaceKind.HOUSEHOLD:
        raise Invalid.field(pointer, f"no household {membership.household_id!r}")
    return household


def principal_households(session: Session, principal: Principal) -> Iterable[str]:
    if not principal.person_id:
        return []
    return session.execute(
        select(HouseholdMember.household_id).where(HouseholdMember.person_id == principal.person_id)
    ).scalars().all()
