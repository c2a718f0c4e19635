"""Household mode through the API: residents arm and disarm their own home, staff read, audited."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.context import AppContext
from cityweave.rules import modes
from cityweave.rules.model import Mode
from tests.conftest import auth
from tests.world import World

HOME, NEIGHBOUR, OTHER_COMMUNITY = "ca-b1-u1-101", "ca-b1-u1-102", "cb-b1-u1-101"


def test_a_resident_arms_and_disarms_their_home(client: TestClient, world: World, ctx: AppContext) -> None:
    resident = auth(world.token(Role.RESIDENT))
    r = client.get(f"/api/v1/households/{HOME}/mode", headers=resident)
    assert r.status_code == 200 and r.json() == {"household_id": HOME, "mode": "home", "changed_at": None,
                                                 "changed_by": None}
    events: list[modes.ModeChanged] = []
    ctx.bus.subscribe(modes.ModeChanged, events.append)
    r = client.put(f"/api/v1/households/{HOME}/mode", json={"mode": "armed"}, headers=resident)
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "armed" and r.json()["changed_by"] == "resident_a"
    assert [(e.household_id, e.mode, e.previous) for e in events] == [(HOME, Mode.ARMED, Mode.HOME)]
    r = client.put(f"/api/v1/households/{HOME}/mode", json={"mode": "home"}, headers=resident)
    assert r.json()["mode"] == "home"
    with ctx.db.session() as session:
        assert modes.current(session, HOME) is Mode.HOME
        assert modes.modes_of(session, [HOME, NEIGHBOUR]) == {HOME: Mode.HOME, NEIGHBOUR: Mode.HOME}
        audited = session.execute(select(AuditRecord).where(AuditRecord.action == "household.mode")
                                  .order_by(AuditRecord.seq)).scalars().all()
    assert [(a.object_id, a.details["mode"], a.details["previous"]) for a in audited] == [
        (HOME, "armed", "home"), (HOME, "home", "armed")]
    assert all(a.place_path and a.place_path.endswith(f"/{HOME}/") for a in audited)


def test_bad_modes_and_unknown_fields_are_422(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    r = client.put(f"/api/v1/households/{HOME}/mode", json={"mode": "party"}, headers=resident)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/mode"
    r = client.put(f"/api/v1/households/{HOME}/mode", json={"mode": "away", "pin": "1234"}, headers=resident)
    assert r.status_code == 422


def test_who_may_see_and_change_the_mode(client: TestClient, world: World) -> None:
    def status(role: Role, household: str, method: str = "get") -> int:
        url = f"/api/v1/households/{household}/mode"
        headers = auth(world.token(role))
        if method == "get":
            return client.get(url, headers=headers).status_code
        return client.put(url, json={"mode": "away"}, headers=headers).status_code

    assert status(Role.RESIDENT, NEIGHBOUR) == 404 and status(Role.RESIDENT, NEIGHBOUR, "put") == 404
    for role in (Role.GRID_WORKER, Role.PROPERTY_STAFF, Role.COMMUNITY_ADMIN):
        assert status(role, HOME) == 200, role
        assert status(role, HOME, "put") == 403, role
        assert status(role, OTHER_COMMUNITY) == 404, role
    assert status(Role.CITY_OPERATOR, HOME) == 403  # sees the place, not the home's automation
    assert status(Role.PLATFORM_ADMIN, OTHER_COMMUNITY, "put") == 200
    # Not a household: there is no mode to have.
    assert client.get("/api/v1/households/ca-b1/mode", headers=auth(world.token(Role.PLATFORM_ADMIN))).status_code == 404
