"""Automations through the API: saved RuleSpecs checked against the household, dry runs that show
what a rule watches and would command, loops refused, changes audited and announced."""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.context import AppContext
from cityweave.devices.registry.models import DeviceCommand
from cityweave.rules import automations
from tests.conftest import auth
from tests.rules.homes import HOME, furnish
from tests.world import World

BASE = f"/api/v1/households/{HOME}/automations"


def night_light(motion_id: str | None = None) -> dict[str, Any]:
    trigger: dict[str, Any] = {"type": "state", "capability": "motion", "to": True}
    if motion_id:
        trigger["device_id"] = motion_id
    return {
        "key": "night-light", "name": {"zh-CN": "夜灯", "en": "Night light"}, "trigger": trigger,
        "conditions": [{"type": "time_window", "start": "22:00", "end": "06:00"}, {"type": "mode", "in": ["sleep"]}],
        "actions": [{"type": "command", "target": {"device_type": "light", "names": ["玄关"]},
                     "capability": "brightness", "value": 10}],
        "cooldown_seconds": 300,
    }


def test_dry_run_shows_what_the_rule_watches_and_would_command(client: TestClient, world: World,
                                                                ctx: AppContext) -> None:
    devices = furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))
    r = client.post(f"{BASE}/dry-run", json=night_light(), headers=resident)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["watches"]["capabilities"] == ["motion"]
    assert [d["id"] for d in body["watches"]["devices"]] == [devices["motion"]["id"]]
    [effect] = body["effects"]
    assert effect["device_id"] == devices["hall"]["id"] and json.loads(effect["payload"]) == {"brightness": 25}
    assert body["problems"] == [] and body["warnings"] == []
    assert body["spec"]["trigger"] == {"type": "state", "capability": "motion", "to": True, "from": None,
                                       "endpoint": None, "device_id": None}
    # A schedule watches no device but says when.
    schedule = {**night_light(), "trigger": {"type": "schedule", "at": "23:30", "days": ["sun", "sat"]}}
    body = client.post(f"{BASE}/dry-run", json=schedule, headers=resident).json()
    assert body["watches"]["schedule"]["days"] == ["sat", "sun"] and body["watches"]["devices"] == []
    with ctx.db.session() as session:
        assert session.execute(select(DeviceCommand)).scalars().all() == []
        assert session.execute(select(AuditRecord).where(AuditRecord.object_kind == "automation")).first() is None
    # Malformed rules are 422 even in a dry run.
    bad = night_light()
    bad["trigger"]["capability"] = "teleport"
    r = client.post(f"{BASE}/dry-run", json=bad, headers=resident)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/trigger/capability"


def test_crud_audited_and_announced(client: TestClient, world: World, ctx: AppContext) -> None:
    devices = furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))
    changes: list[automations.AutomationsChanged] = []
    ctx.bus.subscribe(automations.AutomationsChanged, changes.append)
    r = client.post(BASE, json=night_light(devices["motion"]["id"]), headers=resident)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key"] == "night-light" and created["enabled"] and created["spec"]["cooldown_seconds"] == 300
    assert client.post(BASE, json=night_light(), headers=resident).status_code == 409
    listed = client.get(BASE, headers=resident).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == created["id"]

    dry = client.post(f"{BASE}/{created['id']}/dry-run", headers=resident)
    assert dry.status_code == 200 and dry.json()["watches"]["devices"][0]["id"] == devices["motion"]["id"]
    assert dry.json()["problems"] == []
    changed = night_light()
    changed["enabled"] = False
    r = client.put(f"{BASE}/{created['id']}", json=changed, headers=resident)
    assert r.status_code == 200 and r.json()["enabled"] is False
    with ctx.db.session() as session:
        assert automations.enabled_rules(session, HOME) == []
    assert client.get(f"{BASE}/{created['id']}", headers=auth(world.token(Role.GRID_WORKER))).status_code == 200
    assert client.delete(f"{BASE}/{created['id']}", headers=auth(world.token(Role.GRID_WORKER))).status_code == 403
    assert client.delete(f"{BASE}/{created['id']}", headers=resident).status_code == 204
    assert client.get(f"{BASE}/{created['id']}", headers=resident).status_code == 404
    assert [c.household_id for c in changes] == [HOME, HOME, HOME]
    with ctx.db.session() as session:
        actions = [a.action for a in session.execute(select(AuditRecord).where(
            AuditRecord.object_kind == "automation").order_by(AuditRecord.seq)).scalars()]
    assert actions == ["automation.create", "automation.update", "automation.delete"]


def test_rules_that_cannot_run_in_this_household_are_422(client: TestClient, world: World) -> None:
    devices = furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))
    neighbours_plug = world.device_of_household["ca-b1-u1-102"]

    def pointers(data: dict[str, Any]) -> list[str]:
        r = client.post(BASE, json=data, headers=resident)
        assert r.status_code == 422, r.text
        return [e["pointer"] for e in r.json()["errors"]]

    assert pointers(night_light(neighbours_plug)) == ["/trigger/device_id"]
    assert pointers(night_light(devices["hall"]["id"])) == ["/trigger/capability"]  # a light has no motion
    data = night_light()
    data["conditions"].append({"type": "device_state", "device_id": neighbours_plug, "capability": "on_off",
                               "op": "eq", "value": True})
    assert pointers(data) == ["/conditions/2/device_id"]
    data = night_light()
    data["actions"] = [{"type": "command", "target": devices["motion"]["id"], "capability": "on_off", "value": True}]
    assert pointers(data) == ["/actions/0"]  # the motion sensor has no switch
    data["actions"] = [{"type": "scene", "scene_id": "party"}]
    assert pointers(data) == ["/actions/0/scene_id"]
    # Selectors that match nothing today are saved, with a warning in the dry run.
    data["actions"] = [{"type": "command", "target": {"device_type": "curtain"}, "capability": "cover_control",
                        "value": "close"}]
    assert client.post(f"{BASE}/dry-run", json=data, headers=resident).json()["warnings"][0]["pointer"] == "/actions/0"
    assert client.post(BASE, json=data, headers=resident).status_code == 201


def test_loops_between_automations_are_refused(client: TestClient, world: World) -> None:
    furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))

    def rule(key: str, when_on: bool, then_on: bool, device_type: str = "light") -> dict[str, Any]:
        return {"key": key, "name": {"zh-CN": key, "en": key},
                "trigger": {"type": "state", "capability": "on_off", "to": when_on},
                "actions": [{"type": "command", "target": {"device_type": device_type}, "capability": "on_off",
                             "value": then_on}]}

    # Lights on → lights on fires itself.
    r = client.post(BASE, json=rule("self", True, True), headers=resident)
    assert r.status_code == 422 and "loop" in r.json()["errors"][0]["detail"]
    # on → off and off → on chase each other.
    assert client.post(BASE, json=rule("a", True, False), headers=resident).status_code == 201
    r = client.post(BASE, json=rule("b", False, True), headers=resident)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["pointer"] == "/actions"
    assert "b → a → b" in r.json()["errors"][0]["detail"]
    # Disabled, it cannot loop; the dry run still names the loop for the enabled version.
    disabled = {**rule("b", False, True), "enabled": False}
    assert client.post(BASE, json=disabled, headers=resident).status_code == 201
    dry = client.post(f"{BASE}/dry-run", json=rule("b", False, True), headers=resident).json()
    assert dry["problems"] and "loop" in dry["problems"][0]["detail"]
    # Through a scene: a scene switching the lights on, run when the lights go off.
    scene = client.post(f"/api/v1/households/{HOME}/scenes", headers=resident, json={
        "name": {"zh-CN": "开灯", "en": "Lights on"},
        "actions": [{"type": "command", "target": {"device_type": "light"}, "capability": "on_off", "value": True}]})
    via_scene = copy.deepcopy(rule("c", False, True))
    via_scene["actions"] = [{"type": "scene", "scene_id": scene.json()["id"]}]
    r = client.post(BASE, json=via_scene, headers=resident)
    assert r.status_code == 422 and "c → a → c" in r.json()["errors"][0]["detail"]
    # A scene used by an automation cannot be deleted.
    evening = {**via_scene, "key": "evening", "trigger": {"type": "schedule", "at": "19:00"}}
    assert client.post(BASE, json=evening, headers=resident).status_code == 201
    r = client.delete(f"/api/v1/households/{HOME}/scenes/{scene.json()['id']}", headers=resident)
    assert r.status_code == 409 and "evening" in r.json()["detail"]


def test_templates_and_scope(client: TestClient, world: World) -> None:
    r = client.get(f"{BASE}/templates", headers=auth(world.token(Role.RESIDENT)))
    assert r.status_code == 200 and {t["key"] for t in r.json()} >= {"energy-saving-night"}
    assert client.get("/api/v1/households/ca-b1-u1-102/automations",
                      headers=auth(world.token(Role.RESIDENT))).status_code == 404
    assert client.get(BASE, headers=auth(world.token(Role.DEPARTMENT_OFFICER))).status_code == 403
    assert client.post(BASE, json=night_light(), headers=auth(world.token(Role.COMMUNITY_ADMIN))).status_code == 403
    assert client.post(BASE, json=night_light(), headers=auth(world.token(Role.PLATFORM_ADMIN))).status_code == 201
