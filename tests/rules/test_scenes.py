"""Scenes through the API: built-in and own scenes, dry runs against registered devices, runs that
log commands and publish them after the commit (and through the real Mosquitto)."""

from __future__ import annotations

import json
import queue
import socket

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.context import AppContext
from cityweave.devices.registry.models import DeviceCommand
from tests.conftest import auth, need_service
from tests.devices_registry.support import RecordingPublisher
from tests.devices_registry.test_mqtt import HOST, PORT, PahoPublisher, _client
from tests.rules.homes import HOME, furnish
from tests.world import World

BASE = f"/api/v1/households/{HOME}"


def test_built_in_scenes_are_offered_to_every_household(client: TestClient, world: World) -> None:
    r = client.get(f"/api/v1/households/{HOME}/scenes", headers=auth(world.token(Role.RESIDENT)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["id"] for s in body["items"]] == ["leave-home", "come-home", "sleep", "energy-saving"]
    assert body["items"][0]["name"] == {"zh-CN": "离家", "en": "Leave home"} and body["items"][0]["builtin"]
    admin = auth(world.token(Role.PLATFORM_ADMIN))
    assert client.get("/api/v1/households/cc-b1-u1-101/scenes", headers=admin).json()["total"] == 4
    assert client.put(f"{BASE}/scenes/sleep", json={"name": {"zh-CN": "x", "en": "x"}, "actions": []},
                      headers=auth(world.token(Role.RESIDENT))).status_code == 409
    assert client.delete(f"{BASE}/scenes/sleep", headers=auth(world.token(Role.RESIDENT))).status_code == 409


def test_dry_run_shows_the_devices_and_payloads_without_sending(client: TestClient, world: World,
                                                                 ctx: AppContext) -> None:
    devices = furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))
    r = client.post(f"{BASE}/scenes/leave-home/dry-run", headers=resident)
    assert r.status_code == 200, r.text
    effects = r.json()
    lights = [e for e in effects if e["type"] == "command" and e["capability"] == "on_off"]
    assert {e["device_id"] for e in lights} == {devices["hall"]["id"], devices["bedroom"]["id"]}
    assert all(json.loads(e["payload"]) == {"state": "OFF"} and e["topic"].endswith("/set") for e in lights)
    [ac] = [e for e in effects if e["capability"] == "hvac_mode"]
    assert ac["device_id"] == devices["ac"]["id"] and json.loads(ac["payload"]) == {"system_mode": "off"}
    assert [e["mode"] for e in effects if e["type"] == "set_mode"] == ["armed"]
    assert all(e["problem"] is None for e in effects)
    # come home lights only the hall (name words), sleep has no climate step
    come = client.post(f"{BASE}/scenes/come-home/dry-run", headers=resident).json()
    assert [e["device_id"] for e in come if e["type"] == "command"] == [devices["hall"]["id"]]
    with ctx.db.session() as session:
        assert session.execute(select(DeviceCommand)).scalars().all() == []
    # Staff in scope may look at what a scene would do, not run it.
    grid = auth(world.token(Role.GRID_WORKER))
    assert client.post(f"{BASE}/scenes/leave-home/dry-run", headers=grid).status_code == 200
    assert client.post(f"{BASE}/scenes/leave-home/run", headers=grid).status_code == 403


def test_a_scene_with_nothing_to_command_reports_why(client: TestClient, world: World) -> None:
    # The neighbourhood test world's homes have only a plug: no lights, no air conditioning.
    r = client.post(f"{BASE}/scenes/leave-home/dry-run", headers=auth(world.token(Role.RESIDENT)))
    effects = r.json()
    problems = [e["problem"] for e in effects if e["type"] == "command"]
    assert len(problems) == 2 and all("no device in this household matches" in p for p in problems)


def test_running_a_scene_logs_commands_sets_the_mode_and_publishes_after_commit(
        client: TestClient, world: World, ctx: AppContext) -> None:
    devices = furnish(client, world)
    publisher = RecordingPublisher()
    client.app.state.device_publisher = publisher
    resident = auth(world.token(Role.RESIDENT))
    r = client.post(f"{BASE}/scenes/leave-home/run", headers=resident)
    assert r.status_code == 200, r.text
    done = r.json()["effects"]
    assert sorted(d["status"] for d in done) == ["done", "sent", "sent", "sent"]
    assert len(publisher.messages) == 3
    assert {json.loads(m.payload).get("state") for m in publisher.messages} == {"OFF", None}
    assert client.get(f"{BASE}/mode", headers=resident).json()["mode"] == "armed"
    with ctx.db.session() as session:
        logged = session.execute(select(DeviceCommand)).scalars().all()
        assert {(c.device_id, c.capability) for c in logged} == {
            (devices["hall"]["id"], "on_off"), (devices["bedroom"]["id"], "on_off"), (devices["ac"]["id"], "hvac_mode")}
        assert all(c.requested_by == world.user_ids[Role.RESIDENT] for c in logged)
        actions = [a.action for a in session.execute(select(AuditRecord).where(
            AuditRecord.action.in_(["scene.run", "device.command", "household.mode"]))).scalars()]
    assert actions.count("device.command") == 3 and actions.count("scene.run") == 1
    assert actions.count("household.mode") == 1


def test_without_a_transport_a_scene_with_commands_is_503_and_changes_nothing(
        client: TestClient, world: World) -> None:
    furnish(client, world)
    client.app.state.device_publisher = None
    resident = auth(world.token(Role.RESIDENT))
    r = client.post(f"{BASE}/scenes/sleep/run", headers=resident)
    assert r.status_code == 503 and r.json()["type"] == "/problems/transport-unavailable"
    assert client.get(f"{BASE}/mode", headers=resident).json()["mode"] == "home"


def test_own_scenes_crud_validation_and_audit(client: TestClient, world: World, ctx: AppContext) -> None:
    devices = furnish(client, world)
    resident = auth(world.token(Role.RESIDENT))
    scene = {"name": {"zh-CN": "观影", "en": "Movie"}, "actions": [
        {"type": "command", "target": devices["hall"]["id"], "capability": "brightness", "value": 20},
        {"type": "command", "target": {"device_type": "light", "names": ["卧室"]}, "capability": "on_off",
         "value": False},
    ]}
    r = client.post(f"{BASE}/scenes", json=scene, headers=resident)
    assert r.status_code == 201, r.text
    scene_id = r.json()["id"]
    dry = client.post(f"{BASE}/scenes/{scene_id}/dry-run", headers=resident).json()
    assert [(e["device_id"], json.loads(e["payload"])) for e in dry] == [
        (devices["hall"]["id"], {"brightness": 51}), (devices["bedroom"]["id"], {"state": "OFF"})]

    bad = {"name": {"zh-CN": "坏", "en": "Bad"}, "actions": [
        {"type": "command", "target": world.device_of_household["ca-b1-u1-102"], "capability": "on_off",
         "value": True},
        {"type": "command", "target": {"device_type": "light"}, "capability": "brightness", "value": 150},
    ]}
    r = client.post(f"{BASE}/scenes", json=bad, headers=resident)
    assert r.status_code == 422 and [e["pointer"] for e in r.json()["errors"]] == ["/actions/1/value"]
    bad["actions"].pop()
    r = client.post(f"{BASE}/scenes", json=bad, headers=resident)  # the neighbour's plug
    assert r.status_code == 422 and [e["pointer"] for e in r.json()["errors"]] == ["/actions/0/target"]
    r = client.post(f"{BASE}/scenes", json={**scene, "actions": [{"type": "scene", "scene_id": "sleep"}]},
                    headers=resident)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/actions/0/type"

    scene["name"]["en"] = "Cinema"
    r = client.put(f"{BASE}/scenes/{scene_id}", json=scene, headers=resident)
    assert r.status_code == 200 and r.json()["name"]["en"] == "Cinema"
    assert client.get(f"{BASE}/scenes", headers=resident).json()["total"] == 5
    neighbour = "/api/v1/households/ca-b1-u1-102"
    assert client.get(f"{neighbour}/scenes/{scene_id}", headers=auth(world.token(Role.PLATFORM_ADMIN))).status_code == 404
    assert client.delete(f"{BASE}/scenes/{scene_id}", headers=auth(world.token(Role.GRID_WORKER))).status_code == 403
    assert client.delete(f"{BASE}/scenes/{scene_id}", headers=resident).status_code == 204
    assert client.get(f"{BASE}/scenes/{scene_id}", headers=resident).status_code == 404
    with ctx.db.session() as session:
        actions = [a.action for a in session.execute(select(AuditRecord).where(
            AuditRecord.object_kind == "scene")).scalars()]
    assert actions == ["scene.create", "scene.update", "scene.delete"]


def test_a_scene_run_reaches_the_real_broker(client: TestClient, world: World) -> None:
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((HOST, PORT)) != 0:
            need_service("Mosquitto", f"nothing listens on {HOST}:{PORT}")
    devices = furnish(client, world)
    friendly = devices["hall"]["aliases"][0]
    received: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    listener = _client("cw-scene-listener")
    publisher_client = _client("cw-scene-commands")
    try:
        listener.on_message = lambda _c, _u, message: received.put(message)
        listener.on_subscribe = lambda *_a: subscribed.put(True)
        listener.subscribe(f"zigbee2mqtt/{friendly}/set", qos=1)
        subscribed.get(timeout=5)
        client.app.state.device_publisher = PahoPublisher(publisher_client)
        r = client.post(f"{BASE}/scenes/come-home/run", headers=auth(world.token(Role.RESIDENT)))
        assert r.status_code == 200, r.text
        message = received.get(timeout=5)
        assert json.loads(message.payload) == {"state": "ON"}
    finally:
        for c in (listener, publisher_client):
            c.loop_stop()
            c.disconnect()


@pytest.mark.parametrize("role", [Role.GRID_WORKER, Role.PROPERTY_STAFF, Role.COMMUNITY_ADMIN])
def test_staff_read_scenes_in_scope_only(client: TestClient, world: World, role: Role) -> None:
    headers = auth(world.token(role))
    assert client.get(f"{BASE}/scenes", headers=headers).status_code == 200
    assert client.get("/api/v1/households/cb-b1-u1-101/scenes", headers=headers).status_code == 404
    assert client.post(f"{BASE}/scenes", json={"name": {"zh-CN": "a", "en": "a"},
                                               "actions": [{"type": "set_mode", "mode": "away"}]},
                       headers=headers).status_code == 403
