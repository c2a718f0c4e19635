"""Writing the demo district into a database, once, fast, as the platform.

Speed matters because ``cityweave demo`` loads on first start while the user waits. So:

* places (about 1,200) go in as one bulk ``INSERT`` per batch, after the same validation the
  place service applies (schema, allowed parent kind) but without a query and an audit record
  per row;
* persons (about 2,000) are built by :func:`cityweave.people.service.new_person`, which
  encrypts and indexes them exactly as every other path does, into a staging area that the
  session flushes once per batch (a flush per person costs a round trip per row);
* the nine demo accounts go through :func:`cityweave.accounts.service.create_user`: few
  enough that Argon2 hashing and per-account audit records cost well under a second;
* one audit record says what was loaded, by whom, with which seed.

Everything happens in one transaction: a load that fails half-way leaves no half district,
and :func:`is_loaded` can then simply look for the city.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.accounts import service as accounts
from cityweave.accounts.schemas import GrantIn, UserCreate
from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.demo import workorders as demo_workorders
from cityweave.demo.generator import (
    CITY_ID,
    DEFAULT_SEED,
    AccountSpec,
    DemoDistrict,
    PlaceSpec,
    ResidentSpec,
    generate,
)
from cityweave.errors import Conflict
from cityweave.people.schemas import MembershipIn, PersonCreate
from cityweave.people.service import new_person
from cityweave.places.models import ALLOWED_PARENTS, Place, PlaceKind
from cityweave.places.schemas import PlaceCreate
from cityweave.places.service import insert_checked

# (stage, done, total): called after each batch; the CLI draws a Rich progress bar from it.
Progress = Callable[[str, int, int], None]

BATCH = 500
STAGES = ("places", "residents", "accounts")

T = TypeVar("T")


# The community whose season of work orders the demo back-fills (幸福里).
DEMO_COMMUNITY_PATH = "/sz/ns/ns-yh/xfl/"


@dataclass(frozen=True)
class LoadReport:
    seed: int
    places: int
    residents: int
    care_tags: int
    accounts: int
    seconds: float
    work_orders: int = 0


def is_loaded(session: Session) -> bool:
    """Whether the demo district is in the database: its city, created first, marked as demo.

    The mark matters: a real Shenzhen deployment may well have a city "sz", and must never be
    taken for the demo (which ``--reset`` deletes).
    """
    city = session.get(Place, CITY_ID)
    return city is not None and city.attributes.get("demo") is True


def holds_other_data(session: Session) -> bool:
    """Whether the database has places that are not the demo's: then it is somebody's real
    data, and neither loading invented residents into it nor resetting it is acceptable."""
    return not is_loaded(session) and session.execute(select(Place.id).limit(1)).first() is not None


def loaded_seed(session: Session) -> int | None:
    city = session.get(Place, CITY_ID)
    return city.attributes.get("seed") if city is not None and is_loaded(session) else None


def load(
    ctx: AppContext,
    district: DemoDistrict | None = None,
    *,
    seed: int = DEFAULT_SEED,
    progress: Progress | None = None,
) -> LoadReport | None:
    """Load the district (by default the one for ``seed``, aged as of today); ``None`` when the
    database already holds it, so that every start can call this. Refuses (:class:`Conflict`)
    to mix the demo into a database that already holds other places."""
    started = time.perf_counter()
    report = _noop if progress is None else progress
    with ctx.db.session() as session:
        if is_loaded(session):
            return None
        if holds_other_data(session):
            raise Conflict("the database already holds places; the demo loads only into an empty database")
        district = district or generate(seed, ctx.clock.now().date())
        call = Call(ctx, session, Principal.system("demo"))
        load_places(call, district.places, report)
        load_residents(call, district.residents, report)
        load_accounts(call, district.accounts, report)
        counts = {
            "places": len(district.places),
            "residents": len(district.residents),
            "care_tags": sum(len(r.care_tags) for r in district.residents),
            "accounts": len(district.accounts),
        }
        # One record for the whole load instead of one per row: who loaded what, with which seed.
        call.audit("demo.load", "place", CITY_ID, place_path=f"/{CITY_ID}/",
                   details={"seed": district.seed, **counts})
    # A transaction of its own: the session above holds thousands of objects, and every
    # autoflush of the work-order service would walk them all.
    report("work orders", 0, 1)
    with ctx.db.session() as session:
        work_orders = demo_workorders.load(ctx, session, district.seed, DEMO_COMMUNITY_PATH)
    report("work orders", 1, 1)
    return LoadReport(seed=district.seed, seconds=round(time.perf_counter() - started, 2), work_orders=work_orders,
                      **counts)


# -- places -----------------------------------------------------------------------------------------
def load_places(call: Call, places: Sequence[PlaceSpec], progress: Progress) -> None:
    """Validate each place as the API would, then insert in batches, parents first (one
    summary audit record for the whole load, written by :func:`load`)."""
    kinds: dict[str, PlaceKind] = {}
    checked = [_checked_place(spec, kinds) for spec in places]
    done = 0
    for batch in _batches(checked, BATCH):
        insert_checked(call, batch, audit=False)
        done += len(batch)
        progress("places", done, len(checked))


def _checked_place(spec: PlaceSpec, kinds: dict[str, PlaceKind]) -> tuple[PlaceCreate, str]:
    data = PlaceCreate.model_validate({
        "id": spec.id, "kind": spec.kind, "parent_id": spec.parent_id, "name": spec.name,
        "name_en": spec.name_en, "code": spec.code, "facility_type": spec.facility_type,
        "geometry": spec.geometry, "attributes": spec.attributes,
    })
    parent_kind = kinds[spec.parent_id] if spec.parent_id else None
    if parent_kind not in ALLOWED_PARENTS[spec.kind]:
        raise ValueError(f"demo place {spec.id}: a {spec.kind.value} cannot sit under {parent_kind}")
    if (spec.kind is PlaceKind.FACILITY) != (spec.facility_type is not None):
        raise ValueError(f"demo place {spec.id}: facilities, and only they, have a facility_type")
    kinds[spec.id] = spec.kind
    return data, spec.path


# -- residents --------------------------------------------------------------------------------------
def load_residents(call: Call, residents: Sequence[ResidentSpec], progress: Progress) -> None:
    households = _households(call.session, {r.household_id for r in residents})
    done = 0
    for batch in _batches(residents, BATCH):
        # One flush per batch, not per person: multi-row INSERTs instead of ~6,000 round trips.
        persons = [
            new_person(call.session, call.cipher, _person_create(resident),
                       [households[resident.household_id]], now=call.now(),
                       person_id=resident.id, flush=False)
            for resident in batch
        ]
        call.session.flush()
        for person in persons:  # nothing reads them back: keep the identity map small
            call.session.expunge(person)
        done += len(batch)
        progress("residents", done, len(residents))


def _households(session: Session, ids: Iterable[str]) -> dict[str, Place]:
    """All households in one query (not one per resident)."""
    wanted = set(ids)
    rows = session.execute(select(Place).where(Place.kind == PlaceKind.HOUSEHOLD)).scalars()
    found = {p.id: p for p in rows if p.id in wanted}
    if missing := wanted - found.keys():
        raise ValueError(f"demo residents refer to unknown households: {sorted(missing)[:5]}")
    return found


def _person_create(resident: ResidentSpec) -> PersonCreate:
    return PersonCreate(
        name=resident.name,
        phone=resident.phone,
        id_number=resident.id_number,
        gender=resident.gender,
        birth_date=resident.birth_date,
        households=[MembershipIn(household_id=resident.household_id, role=resident.role, since=resident.since)],
        care_tags=list(resident.care_tags),
    )


# -- accounts ---------------------------------------------------------------------------------------
def load_accounts(call: Call, specs: Sequence[AccountSpec], progress: Progress) -> None:
    for done, spec in enumerate(specs, 1):
        account = spec.account
        accounts.create_user(call, UserCreate(
            username=account.username,
            password=account.password,
            display_name=spec.display_name,
            person_id=spec.person_id,
            grants=[GrantIn(role=account.role, place_id=account.place_id,
                            categories=list(account.categories) or None)],
        ))
        progress("accounts", done, len(specs))


# -- helpers ----------------------------------------------------------------------------------------
def _batches(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _noop(_stage: str, _done: int, _total: int) -> None:
    """The default progress: tests and library callers stay quiet."""
