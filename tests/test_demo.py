"""The demo district: deterministic, realistic, geometrically consistent, loadable on both
backends (once), and every demo account signs in and sees exactly its own scope."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from cityweave.accounts.models import Role, User
from cityweave.api.app import create_app
from cityweave.audit import trail
from cityweave.audit.models import AuditRecord
from cityweave.authz.policy import Principal
from cityweave.clock import ManualClock
from cityweave.context import AppContext, Call
from cityweave.db import migrate
from cityweave.demo import loader
from cityweave.demo.accounts import DEMO_ACCOUNTS, demo_account
from cityweave.demo.generator import (
    DEFAULT_SEED,
    REFERENCE_DAY,
    DemoDistrict,
    PlaceSpec,
    ResidentSpec,
    generate,
)
from cityweave.errors import Conflict
from cityweave.geo import point_in_polygon
from cityweave.people.identity_numbers import birth_date_from_id, gender_from_id, id_number_problem
from cityweave.people.models import CareTag, CareTagKind, Person
from cityweave.people.service import NAME
from cityweave.places import service as places
from cityweave.places.models import Place, PlaceKind
from cityweave.places.schemas import PlaceCreate
from cityweave.security.passwords import password_problems
from cityweave.workorders.models import Status, WorkOrder
from tests.conftest import _pg_available, _pg_exec, _pg_url, auth, make_settings, need_service

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@pytest.fixture(scope="module")
def district() -> DemoDistrict:
    return generate(DEFAULT_SEED, REFERENCE_DAY)


def _age(resident: ResidentSpec, today: date = REFERENCE_DAY) -> int:
    return resident.age(today)


def _household_sizes(d: DemoDistrict) -> Counter[str]:
    return Counter(r.household_id for r in d.residents)


# -- the generator ----------------------------------------------------------------------------------
def test_same_seed_same_district_other_seed_other_district(district: DemoDistrict) -> None:
    assert generate(DEFAULT_SEED, REFERENCE_DAY) == district
    other = generate(DEFAULT_SEED + 1, REFERENCE_DAY)
    assert other.residents != district.residents
    assert [r.name for r in other.residents[:50]] != [r.name for r in district.residents[:50]]
    # The place tree (ids) is the plan; only jitter, occupancy and people change with the seed.
    assert [p.id for p in other.places] == [p.id for p in district.places]


def test_ages_count_from_the_given_day_not_the_wall_clock(district: DemoDistrict) -> None:
    day = date(2031, 6, 1)
    later = generate(DEFAULT_SEED, day)
    assert later == generate(DEFAULT_SEED, day)
    youngest = max(r.birth_date for r in district.residents)
    assert max(r.birth_date for r in later.residents) > REFERENCE_DAY >= youngest
    for r in later.residents:
        assert r.birth_date < day and r.since < day
        assert (CareTagKind.ELDERLY in r.care_tags) == (r.age(day) >= 60)


def test_three_communities_and_the_largest_has_864_households(district: DemoDistrict) -> None:
    communities = district.places_of(PlaceKind.COMMUNITY)
    assert [c.id for c in communities] == ["xfl", "czy", "nfc"]
    households = [p for p in district.places_of(PlaceKind.HOUSEHOLD) if p.path.startswith("/sz/ns/ns-yh/xfl/")]
    assert len(households) == 12 * 18 * 4 == 864
    buildings = [p for p in district.places_of(PlaceKind.BUILDING) if "/xfl/" in p.path]
    assert len(buildings) == 12 and all(b.attributes["floors"] == 18 for b in buildings)
    assert 3 <= len([g for g in district.places_of(PlaceKind.GRID) if g.parent_id == "xfl"]) <= 4
    assert district.place("xfl-b03-u2-1801").attributes["floor"] == 18
    others = [len(district.residents_within(c)) for c in ("czy", "nfc")]
    assert all(50 < n < len(district.residents_within("xfl")) for n in others)


def test_every_facility_type_in_every_community(district: DemoDistrict) -> None:
    for community in ("xfl", "czy", "nfc"):
        inside = [p for p in district.places_of(PlaceKind.FACILITY) if f"/{community}/" in p.path]
        assert {str(p.facility_type) for p in inside} >= {
            "gate", "parking_lot", "parcel_locker", "charging_pile",
            "street_light", "waste_bin", "camera", "kiosk",
        }


def test_ids_paths_and_tree_order_are_valid(district: DemoDistrict) -> None:
    seen: dict[str, PlaceSpec] = {}
    for place in district.places:
        assert ID_PATTERN.match(place.id), place.id
        assert place.id not in seen
        parent = seen[place.parent_id] if place.parent_id else None  # parents come first
        assert place.path == (parent.path if parent else "/") + place.id + "/"
        seen[place.id] = place
        # What the API would accept, so the demo never holds data the API would refuse.
        PlaceCreate.model_validate({
            "id": place.id, "kind": place.kind, "parent_id": place.parent_id, "name": place.name,
            "name_en": place.name_en, "facility_type": place.facility_type, "geometry": place.geometry,
            "attributes": place.attributes,
        })
    assert len({r.id for r in district.residents}) == len(district.residents)


def test_about_two_thousand_residents_with_valid_numbers(district: DemoDistrict) -> None:
    residents = district.residents
    assert 1800 <= len(residents) <= 2400
    for r in residents:
        assert id_number_problem(r.id_number) is None, r.id_number
        assert birth_date_from_id(r.id_number) == r.birth_date
        assert gender_from_id(r.id_number) == r.gender
        assert r.phone is None or re.fullmatch(r"1[3-9]\d{9}", r.phone)
        assert 2 <= len(r.name) <= 4
        assert r.since >= r.birth_date
    assert len({r.id_number for r in residents}) == len(residents)
    phones = [r.phone for r in residents if r.phone]
    assert len(set(phones)) == len(phones) > 0.8 * len(residents)
    assert sum(r.id_number.startswith("440305") for r in residents) > 0.3 * len(residents)
    # Common surnames dominate, as they do in China: 王李张刘陈 are about a third of everybody.
    top5 = sum(r.name[0] in "王李张刘陈" for r in residents) / len(residents)
    assert 0.22 < top5 < 0.45


def test_household_composition_is_plausible(district: DemoDistrict) -> None:
    sizes = _household_sizes(district)
    households = district.places_of(PlaceKind.HOUSEHOLD)
    vacant = [h for h in households if h.id not in sizes]
    assert 0.05 < len(vacant) / len(households) < 0.2
    assert all(h.attributes["occupancy"] == "vacant" for h in vacant)
    assert all(h.attributes["occupancy"] != "vacant" for h in households if h.id in sizes)
    distribution = Counter(sizes.values())
    assert distribution[1] and distribution[2] and distribution[3] and distribution[4]
    assert max(distribution) <= 6
    for household_id in sizes:
        roles = Counter(str(r.role) for r in district.household_members(household_id))
        assert roles["owner"] + roles["tenant"] >= 1 and roles["owner"] <= 1


def test_care_tags_follow_age_and_living_alone_at_plausible_rates(district: DemoDistrict) -> None:
    sizes = _household_sizes(district)
    residents = district.residents
    for r in residents:
        age, alone = _age(r), sizes[r.household_id] == 1
        assert (CareTagKind.MINOR in r.care_tags) == (age < 18)
        assert (CareTagKind.ELDERLY in r.care_tags) == (age >= 60)
        assert (CareTagKind.ELDERLY_ALONE in r.care_tags) == (age >= 65 and alone)
    tags = Counter(t for r in residents for t in r.care_tags)
    older = [r for r in residents if _age(r) >= 60]
    chronic_of_older = sum(CareTagKind.CHRONIC_ILLNESS in r.care_tags for r in older) / len(older)
    assert 0.01 <= tags[CareTagKind.DISABLED] / len(residents) <= 0.05
    assert 0.05 <= chronic_of_older <= 0.2
    assert 0.10 <= len(older) / len(residents) <= 0.25
    assert 0.12 <= tags[CareTagKind.MINOR] / len(residents) <= 0.28
    assert 30 <= tags[CareTagKind.ELDERLY_ALONE] <= 150


def test_geometry_nests_building_in_grid_in_community(district: DemoDistrict) -> None:
    for building in district.places_of(PlaceKind.BUILDING):
        grid = district.place(building.parent_id or "")
        community = district.place(grid.parent_id or "")
        lon, lat = building.geometry["coordinates"]  # type: ignore[index]
        assert abs(lon - 113.93) < 0.02 and abs(lat - 22.52) < 0.02
        assert point_in_polygon(lon, lat, grid.geometry), building.id  # type: ignore[arg-type]
        assert point_in_polygon(lon, lat, community.geometry), building.id  # type: ignore[arg-type]
    for grid in district.places_of(PlaceKind.GRID):
        community = district.place(grid.parent_id or "")
        ring = grid.geometry["coordinates"][0]  # type: ignore[index]
        assert ring[0] == ring[-1]
        assert all(point_in_polygon(x, y, community.geometry) for x, y in ring)  # type: ignore[arg-type]
    for facility in district.places_of(PlaceKind.FACILITY):
        parent = district.place(facility.parent_id or "")
        area = district.place(parent.parent_id or "") if parent.kind is PlaceKind.BUILDING else parent
        lon, lat = facility.geometry["coordinates"]  # type: ignore[index]
        assert point_in_polygon(lon, lat, area.geometry), facility.id  # type: ignore[arg-type]


def test_communities_do_not_overlap(district: DemoDistrict) -> None:
    communities = district.places_of(PlaceKind.COMMUNITY)
    for a in communities:
        for b in communities:
            if a is not b:
                corners = a.geometry["coordinates"][0]  # type: ignore[index]
                assert not any(point_in_polygon(x, y, b.geometry) for x, y in corners)  # type: ignore[arg-type]


def test_demo_accounts_one_per_role_with_valid_passwords(district: DemoDistrict) -> None:
    assert {a.role for a in DEMO_ACCOUNTS} == set(Role)
    assert len({a.username for a in DEMO_ACCOUNTS}) == len(DEMO_ACCOUNTS)
    for account in DEMO_ACCOUNTS:
        assert password_problems(account.password) == [], account.username
        assert account.place_id is None or account.place_id in {p.id for p in district.places}
    specs = {s.account.username: s for s in district.accounts}
    family = district.household_members(demo_account("resident").place_id or "")
    assert len(family) == 3 and specs["resident"].person_id == family[0].id
    assert str(family[0].role) == "owner"
    (elder,) = district.household_members(demo_account("elder").place_id or "")
    assert specs["elder"].person_id == elder.id and CareTagKind.ELDERLY_ALONE in elder.care_tags
    # The grid worker's grid holds both residents' homes, so the demo shows one from both sides.
    grid_path = district.place(demo_account("grid").place_id or "").path
    for username in ("resident", "elder"):
        assert district.place(demo_account(username).place_id or "").path.startswith(grid_path)


# -- loading ----------------------------------------------------------------------------------------
@dataclass
class Loaded:
    ctx: AppContext
    district: DemoDistrict
    report: loader.LoadReport
    client: TestClient


def _fresh_database(backend: str, root: Path) -> tuple[str, str | None]:
    """An empty, migrated database (not a clone of the test world): the demo loads into nothing."""
    if backend == "sqlite":
        return f"sqlite:///{root / 'demo.sqlite3'}", None
    if problem := _pg_available():
        need_service("PostgreSQL", problem)
    name = f"cwdemo_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    return _pg_url(name), name


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           district: DemoDistrict) -> Iterator[Loaded]:
    root = tmp_path_factory.mktemp(f"demo-{request.param}")
    url, pg_name = _fresh_database(request.param, root)
    ctx = AppContext.build(make_settings(root, url), clock=ManualClock())
    try:
        migrate.upgrade(ctx.db.engine)
        # No district given: the loader generates it for the clock's day, which must be ours.
        report = loader.load(ctx)
        assert report is not None
        with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
            yield Loaded(ctx, district, report, client)
    finally:
        ctx.db.dispose()
        if pg_name:
            _pg_exec(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.mark.slow
def test_load_writes_everything_once_and_quickly(loaded: Loaded) -> None:
    d, report = loaded.district, loaded.report
    with loaded.ctx.db.session() as session:

        def count(model: type) -> int:
            return session.execute(select(func.count()).select_from(model)).scalar_one()

        assert count(Place) == len(d.places) == report.places
        assert count(Person) == len(d.residents) == report.residents
        assert count(CareTag) == sum(len(r.care_tags) for r in d.residents) == report.care_tags
        assert count(User) == len(DEMO_ACCOUNTS)
        summary = session.execute(select(AuditRecord).where(AuditRecord.action == "demo.load")).scalars().all()
        assert len(summary) == 1 and summary[0].details["residents"] == len(d.residents)
        # Bulk rows are not audited one by one: only the accounts and the summary are (the
        # back-filled work orders went through the service, and each of their steps is audited).
        audited = session.execute(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.object_kind != "work_order")).scalar_one()
        assert audited < 3 * len(DEMO_ACCOUNTS) + 5
        assert count(WorkOrder) == report.work_orders > 100
        statuses = set(session.execute(select(WorkOrder.status)).scalars())
        assert {Status.CLOSED, Status.ASSIGNED, Status.RESOLVED} <= statuses
        assert trail.verify(session).ok
        xfl = session.get(Place, "xfl-b03-u2-1801")
        assert xfl is not None and xfl.path == "/sz/ns/ns-yh/xfl/xfl-g1/xfl-b03/xfl-b03-u2/xfl-b03-u2-1801/"
        first = d.residents[0]
        person = session.get(Person, first.id)
        assert person is not None and loaded.ctx.cipher.decrypt(person.name_enc, NAME) == first.name


@pytest.mark.slow
def test_second_load_is_a_no_op(loaded: Loaded) -> None:
    assert loader.load(loaded.ctx) is None
    with loaded.ctx.db.session() as session:
        assert loader.is_loaded(session) and loader.loaded_seed(session) == DEFAULT_SEED
        persons = session.execute(select(func.count()).select_from(Person)).scalar_one()
        assert persons == len(loaded.district.residents)


def _sign_in(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token",
                    data={"username": username, "password": demo_account(username).password})
    assert r.status_code == 200, r.text
    return auth(r.json()["access_token"])


def _total(client: TestClient, headers: dict[str, str], url: str) -> int:
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["total"]


@pytest.mark.slow
def test_residents_see_their_own_household_only(loaded: Loaded) -> None:
    client, d = loaded.client, loaded.district
    for username in ("resident", "elder"):
        household = demo_account(username).place_id or ""
        headers = _sign_in(client, username)
        r = client.get("/api/v1/places?kind=household", headers=headers)
        assert [p["id"] for p in r.json()["items"]] == [household]
        persons = client.get("/api/v1/persons", headers=headers).json()
        assert {p["id"] for p in persons["items"]} == {m.id for m in d.household_members(household)}
    me = client.get("/api/v1/auth/me", headers=headers).json()
    elder = next(s for s in d.accounts if s.account.username == "elder")
    assert me["person_id"] == elder.person_id and me["display_name"] == elder.display_name


@pytest.mark.slow
def test_staff_see_exactly_their_scope(loaded: Loaded) -> None:
    client, d = loaded.client, loaded.district
    everybody = len(d.residents)
    expected_persons = {
        "grid": len(d.residents_within("xfl-g1")),
        "property": len(d.residents_within("xfl")),
        "community": len(d.residents_within("xfl")),
        "officer": 0,  # a department officer handles orders, not the register of residents
        "provider": 0,
        "city": everybody,
        "admin": everybody,
    }

    def households_in(place_id: str) -> int:
        return sum(p.path.startswith(d.place(place_id).path) for p in d.places_of(PlaceKind.HOUSEHOLD))

    expected_households = {
        "grid": households_in("xfl-g1"),
        "property": 864,
        "community": 864,
        "officer": households_in("ns-yh"),
        "provider": 0,
        "city": len(d.places_of(PlaceKind.HOUSEHOLD)),
        "admin": len(d.places_of(PlaceKind.HOUSEHOLD)),
    }
    for username, persons in expected_persons.items():
        headers = _sign_in(client, username)
        assert _total(client, headers, "/api/v1/persons?limit=1") == persons, username
        households = _total(client, headers, "/api/v1/places?kind=household&limit=1")
        assert households == expected_households[username], username
    # The community admin finds the elderly living alone of its community by care tag.
    headers = _sign_in(client, "community")
    alone = sum(CareTagKind.ELDERLY_ALONE in r.care_tags for r in d.residents_within("xfl"))
    assert _total(client, headers, "/api/v1/persons?care_tag=elderly_alone&limit=1") == alone


@pytest.mark.slow
def test_search_by_phone_finds_the_generated_resident(loaded: Loaded) -> None:
    resident = next(r for r in loaded.district.residents_within("xfl") if r.phone)
    headers = _sign_in(loaded.client, "community")
    r = loaded.client.get("/api/v1/persons", params={"phone": resident.phone}, headers=headers)
    assert [p["id"] for p in r.json()["items"]] == [resident.id]


def _real_database(settings_dir: Path, url: str | None) -> None:
    """A database with one real place: a Shenzhen deployment's own city "sz", not the demo's."""
    ctx = AppContext.build(make_settings(settings_dir, url), clock=ManualClock())
    migrate.upgrade(ctx.db.engine)
    with ctx.db.session() as session:
        places.create_place(Call(ctx, session, Principal.system("test")),
                            PlaceCreate(id="sz", kind=PlaceKind.CITY, name="深圳市"))
    ctx.db.dispose()


def test_loading_refuses_a_database_with_other_places(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'real.sqlite3'}"
    _real_database(tmp_path, url)
    ctx = AppContext.build(make_settings(tmp_path, url), clock=ManualClock())
    with ctx.db.session() as session:
        assert not loader.is_loaded(session) and loader.holds_other_data(session)
    with pytest.raises(Conflict):
        loader.load(ctx)
    with ctx.db.session() as session:
        assert session.execute(select(func.count()).select_from(Place)).scalar_one() == 1
    ctx.db.dispose()


# -- the command ------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CITYWEAVE_DATABASE_URL", "CITYWEAVE_SECRET_KEY", "CITYWEAVE_SECRET_KEY_FILE",
                 "CITYWEAVE_CONFIG_FILE", "CITYWEAVE_MODE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.slow
@pytest.mark.usefixtures("cli_env")
def test_demo_command_loads_once_prints_accounts_and_resets(tmp_path: Path) -> None:
    from cityweave.cli.main import app

    runner = CliRunner()
    data = tmp_path / "cityweave-data"
    first = runner.invoke(app, ["demo", "--load-only", "--data-dir", str(data)])
    assert first.exit_code == 0, first.output
    assert re.search(r"loaded [\d,]+ places, [\d,]+ residents", first.output)
    for account in DEMO_ACCOUNTS:
        assert account.username in first.output and account.password in first.output
    assert (data / "cityweave.sqlite3").exists() and (data / "secret.key").exists()
    again = runner.invoke(app, ["demo", "--load-only", "--data-dir", str(data), "--seed", "7"])
    assert again.exit_code == 0 and "already loaded (seed 20260101; --reset" in again.output
    reset = runner.invoke(app, ["demo", "--load-only", "--reset", "--seed", "7", "--data-dir", str(data)])
    assert reset.exit_code == 0, reset.output
    assert "removed the demo database" in reset.output and "seed 7" in reset.output


@pytest.mark.usefixtures("cli_env")
def test_demo_command_never_touches_a_real_database(tmp_path: Path) -> None:
    from cityweave.cli.main import app

    _real_database(tmp_path, None)
    runner = CliRunner()
    for args in (["--reset"], []):
        result = runner.invoke(app, ["demo", "--load-only", "--data-dir", str(tmp_path), *args])
        assert result.exit_code == 1, result.output
    assert (tmp_path / "cityweave.sqlite3").exists()
