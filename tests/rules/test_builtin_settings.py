"""GET/PUT /api/v1/households/{id}/rules: the built-ins with their effective parameters, who may
adjust what, and the engine following the change."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from tests.conftest import auth
from tests.rules.support import (
    ELDERLY_HOME,
    OTHER_HOME,
    add_device,
    alarms,
    engine_for,
    observe,
    reading,
)
from tests.world import World

HOME = ELDERLY_HOME  # the resident account's household


def _items(response) -> dict:
    assert response.status_code == 200, response.text
    return {item["key"]: item for item in response.json()["items"]}


def test_resident_lists_and_adjusts_the_builtins(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    items = _items(client.get(f"/api/v1/households/{HOME}/rules", headers=resident))
    assert set(items) == {"fire", "gas", "water", "electricity", "intrusion", "elderly", "vital_signs",
                          "environment", "device_health"}
    assert items["fire"]["may_disable"] is False and items["water"]["may_disable"] is True
    pm25 = next(p for p in items["environment"]["params"] if p["name"] == "pm2_5_max")
    assert pm25["value"] == 50 and pm25["unit"] == "µg/m³"

    r = client.put(f"/api/v1/households/{HOME}/rules", headers=resident,
                   json={"gas": {"params": {"co_ppm_max": 80}}, "water": {"enabled": False}})
    items = _items(r)
    assert next(p for p in items["gas"]["params"] if p["name"] == "co_ppm_max")["value"] == 80
    assert items["water"]["enabled"] is False
    # back to the default with null
    items = _items(client.put(f"/api/v1/households/{HOME}/rules", headers=resident,
                              json={"gas": {"params": {"co_ppm_max": None}}}))
    assert next(p for p in items["gas"]["params"] if p["name"] == "co_ppm_max")["value"] == 100


def test_bad_changes_are_422_with_pointers_and_change_nothing(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    r = client.put(f"/api/v1/households/{HOME}/rules", headers=resident, json={
        "fire": {"enabled": False}, "gas": {"params": {"co_ppm_max": 5000, "close_valve": False, "nope": 1}},
        "water": {"enabled": False}, "unknown": {}})
    assert r.status_code == 422, r.text
    pointers = {e["pointer"] for e in r.json()["errors"]}
    assert pointers == {"/fire/enabled", "/gas/params/co_ppm_max", "/gas/params/close_valve", "/gas/params/nope",
                        "/unknown"}
    items = _items(client.get(f"/api/v1/households/{HOME}/rules", headers=resident))
    assert items["water"]["enabled"] is True, "nothing is written when anything is wrong"


def test_who_may_see_and_change(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    assert client.get(f"/api/v1/households/{OTHER_HOME}/rules", headers=resident).status_code == 404
    body = {"electricity": {"params": {"max_w": 3000}}}
    assert client.put(f"/api/v1/households/{OTHER_HOME}/rules", headers=resident, json=body).status_code == 404
    staff = auth(world.token(Role.PROPERTY_STAFF))
    assert client.put(f"/api/v1/households/{OTHER_HOME}/rules", headers=staff, json=body).status_code == 200
    grid = auth(world.token(Role.GRID_WORKER))
    assert client.get(f"/api/v1/households/{OTHER_HOME}/rules", headers=grid).status_code == 200
    assert client.put(f"/api/v1/households/{OTHER_HOME}/rules", headers=grid, json=body).status_code == 403
    city = auth(world.token(Role.CITY_OPERATOR))
    assert client.get(f"/api/v1/households/{OTHER_HOME}/rules", headers=city).status_code in (403, 404)
    assert client.get("/api/v1/households/ca-b1-u1/rules", headers=auth(world.token(Role.PLATFORM_ADMIN))
                      ).status_code == 404, "a unit is not a household"


def test_the_engine_follows_the_settings(ctx: AppContext, clock: ManualClock, client: TestClient,
                                         world: World) -> None:
    leak = add_device(ctx, HOME, [("water_leak", False)])
    smoke = add_device(ctx, HOME, [("smoke", False)])
    engine, _ = engine_for(ctx)
    client.app.state.rule_engine = engine
    resident = auth(world.token(Role.RESIDENT))
    r = client.put(f"/api/v1/households/{HOME}/rules", headers=resident, json={"water": {"enabled": False}})
    assert r.status_code == 200, r.text
    observe(ctx, engine, reading(leak, "water_leak", True, clock.now()), reading(smoke, "smoke", True, clock.now()))
    assert [a.kind for a in alarms(ctx)] == ["fire"], "the water rule is off here; fire never is"
