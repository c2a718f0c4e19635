"""The device API through HTTP: scoped lists, registration, claims, commands, problem details."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from cityweave.accounts.models import Role
from cityweave.context import AppContext
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.registry import service
from cityweave.errors import AuthenticationFailed
from tests.conftest import auth
from tests.devices_registry.support import RecordingPublisher
from tests.world import World

PLUG_BODY = {
    "place_id": "ca-b1-u1-101", "name": "阳台插座", "adapter": "native", "address": "balcony-plug",
    "device_type": "plug", "protocol": "wifi", "firmware": "1.4.2",
    "capabilities": [{"capability": "on_off", "writable": True}, {"capability": "power_w"}],
}


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"/problems/{slug}" and body["status"] == status
    return body


def _discover(ctx: AppContext, address: str = "0x00124b0000aaaa01") -> str:
    with ctx.db.session() as session:
        device = service.record_discovered(session, DiscoveredDevice(
            "zigbee2mqtt", address, name="new_plug", model="TS011F", device_type="plug",
            capabilities=(CapabilityRef("on_off", None, True),), aliases=("new_plug",),
            profile={"friendly_name": "new_plug", "properties": {
                "state": {"access": 7, "value_on": "ON", "value_off": "OFF", "capability": "on_off"}}},
        ), ctx.clock.now())
        return device.id


def test_lists_are_scoped_and_filtered(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    r = client.get("/api/v1/devices", headers=resident)
    assert r.status_code == 200, r.text
    assert [d["id"] for d in r.json()["items"]] == [world.device_of_household["ca-b1-u1-101"]]
    grid = client.get("/api/v1/devices", headers=auth(world.token(Role.GRID_WORKER))).json()
    assert {d["place_id"] for d in grid["items"]} == {"ca-b1-u1-101", "ca-b1-u1-102"}
    city = auth(world.token(Role.CITY_OPERATOR))
    assert client.get("/api/v1/devices", headers=city).json()["total"] == 4
    within = client.get("/api/v1/devices", params={"place_id": "ca-g2"}, headers=city).json()
    assert [d["place_id"] for d in within["items"]] == ["ca-b2-u1-201"]
    assert client.get("/api/v1/devices", params={"status": "active"}, headers=city).json()["total"] == 0
    assert client.get("/api/v1/devices", params={"device_type": "plug", "adapter": "zigbee2mqtt"},
                      headers=city).json()["total"] == 4
    _problem(client.get("/api/v1/devices", params={"status": "lost"}, headers=city), 422, "validation-error")
    _problem(client.get("/api/v1/devices", params={"sort": "address"}, headers=city), 422, "validation-error")
    assert client.get("/api/v1/devices", headers=auth(world.token(Role.DEPARTMENT_OFFICER))).json()["total"] == 0


def test_discovered_devices_are_for_installers(client: TestClient, ctx: AppContext, world: World) -> None:
    device_id = _discover(ctx)
    _problem(client.get("/api/v1/devices/discovered", headers=auth(world.token(Role.RESIDENT))), 403, "forbidden")
    _problem(client.get("/api/v1/devices/discovered", headers=auth(world.token(Role.GRID_WORKER))), 403, "forbidden")
    for role in (Role.PROPERTY_STAFF, Role.COMMUNITY_ADMIN, Role.PLATFORM_ADMIN):
        r = client.get("/api/v1/devices/discovered", headers=auth(world.token(role)))
        assert [d["id"] for d in r.json()["items"]] == [device_id], role
        assert client.get(f"/api/v1/devices/{device_id}", headers=auth(world.token(role))).status_code == 200
    # A resident does not see it, but claims it into their home with the id the installer gave.
    _problem(client.get(f"/api/v1/devices/{device_id}", headers=auth(world.token(Role.RESIDENT))), 404, "not-found")
    r = client.post(f"/api/v1/devices/{device_id}/claim", json={"place_id": "ca-b1-u1-101", "name": "电水壶"},
                    headers=auth(world.token(Role.RESIDENT)))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "claimed" and r.json()["name"] == "电水壶"
    _problem(client.post(f"/api/v1/devices/{device_id}/claim", json={"place_id": "ca-b1-u1-101"},
                         headers=auth(world.token(Role.RESIDENT))), 409, "conflict")


def test_claims_outside_ones_scope(client: TestClient, ctx: AppContext, world: World) -> None:
    device_id = _discover(ctx)
    resident = auth(world.token(Role.RESIDENT))
    _problem(client.post(f"/api/v1/devices/{device_id}/claim", json={"place_id": "ca-b1-u1-102"},
                         headers=resident), 404, "not-found")
    _problem(client.post(f"/api/v1/devices/{device_id}/claim", json={"place_id": "ca-b1-u1-101"},
                         headers=auth(world.token(Role.PROPERTY_STAFF))), 403, "forbidden")
    body = _problem(client.post(f"/api/v1/devices/{device_id}/claim", json={"place_id": "ca-b1"},
                                headers=auth(world.token(Role.PROPERTY_STAFF))), 422, "validation-error")
    assert body["errors"][0]["pointer"] == "/place_id"
    _problem(client.post("/api/v1/devices/dev-0000000000000000/claim", json={"place_id": "ca-b1-u1-101"},
                         headers=resident), 404, "not-found")
    r = client.post(f"/api/v1/devices/{device_id}/claim", json={"place_id": "ca-gate1"},
                    headers=auth(world.token(Role.PROPERTY_STAFF)))
    assert r.status_code == 200 and r.json()["place_id"] == "ca-gate1"


def test_register_by_hand_returns_the_token_once(client: TestClient, ctx: AppContext, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    r = client.post("/api/v1/devices", json=PLUG_BODY, headers=resident)
    assert r.status_code == 201, r.text
    device, credential = r.json()["device"], r.json()["credential"]
    assert device["status"] == "claimed" and device["firmware"] == "1.4.2" and device["protocol"] == "wifi"
    assert credential["mqtt_username"] == device["id"] and credential["token"].startswith("cwd_")
    detail = client.get(f"/api/v1/devices/{device['id']}", headers=resident).json()
    assert "token" not in str(detail) and detail["place_id"] == "ca-b1-u1-101"
    with ctx.db.session() as session:
        raw = str(list(session.execute(text("SELECT * FROM device_credentials")).all()))
        assert credential["token"].split("_", 2)[2] not in raw
        assert service.verify_token(session, credential["token"], ctx.clock.now()).id == device["id"]
    rotated = client.post(f"/api/v1/devices/{device['id']}/credentials", headers=resident)
    assert rotated.status_code == 201, rotated.text
    with ctx.db.session() as session:
        try:
            service.verify_token(session, credential["token"], ctx.clock.now())
            raise AssertionError("the old token still works")
        except AuthenticationFailed:
            pass
        assert service.verify_token(session, rotated.json()["token"], ctx.clock.now()).id == device["id"]
    _problem(client.post("/api/v1/devices", json=PLUG_BODY, headers=resident), 409, "conflict")
    _problem(client.post("/api/v1/devices", json={**PLUG_BODY, "place_id": "ca-b1-u1-102"}, headers=resident),
             404, "not-found")
    for field, value in (("adapter", "acme"), ("device_type", "toaster"), ("protocol", "smoke-signals"),
                         ("capabilities", [{"capability": "warp"}]), ("colour", "red")):
        body = _problem(client.post("/api/v1/devices", json={**PLUG_BODY, field: value}, headers=resident),
                        422, "validation-error")
        assert body["errors"][0]["pointer"].startswith(f"/{field}"), body
    _problem(client.post("/api/v1/devices", json=PLUG_BODY, headers=auth(world.token(Role.GRID_WORKER))),
             403, "forbidden")


def test_commands_through_the_api(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    plug = world.device_of_household["ca-b1-u1-101"]
    url = f"/api/v1/devices/{plug}/commands"
    body = _problem(client.post(url, json={"capability": "on_off", "value": True}, headers=resident),
                    503, "transport-unavailable")
    assert "no device transport" in body["detail"]
    publisher = RecordingPublisher()
    client.app.state.device_publisher = publisher
    r = client.post(url, json={"capability": "on_off", "value": True}, headers=resident)
    assert r.status_code == 202, r.text
    entry = r.json()
    assert entry["status"] == "sent" and entry["value"] is True and entry["requested_by"] == world.user_ids[Role.RESIDENT]
    assert publisher.messages[0].topic == "zigbee2mqtt/plug-ca-b1-u1-101/set"
    for command, reason in (({"capability": "teleport", "value": 1}, "unknown_capability"),
                            ({"capability": "power_w", "value": 10}, "not_writable"),
                            ({"capability": "brightness", "value": 250}, "out_of_range"),
                            ({"capability": "on_off", "value": True, "endpoint": "left"}, "not_supported")):
        body = _problem(client.post(url, json=command, headers=resident), 422, "command-rejected")
        assert body["reason"] == reason
    _problem(client.post(url, json={"capability": "on_off"}, headers=resident), 422, "validation-error")
    _problem(client.post("/api/v1/devices/dev-nope/commands", json={"capability": "on_off", "value": True},
                         headers=resident), 404, "not-found")
    log = client.get(url, headers=resident).json()
    assert log["total"] == 1 and log["items"][0]["id"] == entry["id"]
    # The command log of a home is the home's: staff may see the plug but not what the family did.
    staff = auth(world.token(Role.PROPERTY_STAFF))
    assert client.get(f"/api/v1/devices/{plug}", headers=staff).status_code == 200
    _problem(client.get(url, headers=staff), 403, "forbidden")


def test_decommission_through_the_api(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    plug = world.device_of_household["ca-b1-u1-101"]
    _problem(client.post(f"/api/v1/devices/{plug}/decommission", headers=auth(world.token(Role.GRID_WORKER))),
             403, "forbidden")
    r = client.post(f"/api/v1/devices/{plug}/decommission", headers=resident)
    assert r.status_code == 200 and r.json()["status"] == "decommissioned"
    _problem(client.post(f"/api/v1/devices/{plug}/decommission", headers=resident), 409, "conflict")
    client.app.state.device_publisher = RecordingPublisher()
    _problem(client.post(f"/api/v1/devices/{plug}/commands", json={"capability": "on_off", "value": True},
                         headers=resident), 409, "conflict")
    _problem(client.post(f"/api/v1/devices/{plug}/credentials", headers=resident), 409, "conflict")


def test_rename_and_room_through_patch(client: TestClient, ctx: AppContext, world: World) -> None:
    """PATCH /devices/{id}: name and room, audited, scoped like claims, validated with pointers."""
    from sqlalchemy import select

    from cityweave.audit.models import AuditRecord

    resident = auth(world.token(Role.RESIDENT))
    device_id = world.device_of_household["ca-b1-u1-101"]
    r = client.patch(f"/api/v1/devices/{device_id}", json={"name": " 厨房插座 ", "room": "厨房"}, headers=resident)
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["room"]) == ("厨房插座", "厨房")
    listed = client.get("/api/v1/devices", headers=resident).json()["items"]
    assert [(d["id"], d["room"]) for d in listed] == [(device_id, "厨房")]
    r = client.patch(f"/api/v1/devices/{device_id}", json={"room": None}, headers=resident)
    assert r.status_code == 200 and r.json()["room"] is None and r.json()["name"] == "厨房插座"
    assert client.patch(f"/api/v1/devices/{device_id}", json={"room": None}, headers=resident).status_code == 200
    with ctx.db.session() as session:
        records = session.execute(select(AuditRecord).where(
            AuditRecord.action == "device.update", AuditRecord.object_id == device_id).order_by(AuditRecord.seq)
        ).scalars().all()
        assert [r.details["changes"] for r in records] == [  # the unchanged third PATCH writes nothing
            {"name": {"from": "插座 ca-b1-u1-101", "to": "厨房插座"}, "room": {"from": None, "to": "厨房"}},
            {"room": {"from": "厨房", "to": None}},
        ]
        assert {r.place_path for r in records} == {"/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"}

    # Validation: pointers into the body.
    for body, pointer in (({}, ""), ({"name": "   "}, "/name"), ({"name": None}, "/name"),
                          ({"room": "x" * 65}, "/room"), ({"name": "x" * 201}, "/name"),
                          ({"room": "厨\u0007房"}, "/room"), ({"colour": "red"}, "/colour")):
        problem = _problem(client.patch(f"/api/v1/devices/{device_id}", json=body, headers=resident),
                           422, "validation-error")
        assert pointer in [e.get("pointer") for e in problem["errors"]], (body, problem)

    # Scope: as claiming. The neighbour does not see it, a grid worker may only read it, property
    # staff's community grant does not reach inside homes but does reach the gate.
    neighbour = auth(_token_for(ctx, world, "ca-b1-u1-102"))
    _problem(client.patch(f"/api/v1/devices/{device_id}", json={"room": "x"}, headers=neighbour), 404, "not-found")
    for role in (Role.GRID_WORKER, Role.PROPERTY_STAFF):
        _problem(client.patch(f"/api/v1/devices/{device_id}", json={"room": "x"}, headers=auth(world.token(role))),
                 403, "forbidden")
    gate = client.post(f"/api/v1/devices/{_discover(ctx)}/claim", json={"place_id": "ca-gate1"},
                       headers=auth(world.token(Role.PROPERTY_STAFF))).json()["id"]
    r = client.patch(f"/api/v1/devices/{gate}", json={"name": "东门道闸", "room": "岗亭"},
                     headers=auth(world.token(Role.PROPERTY_STAFF)))
    assert r.status_code == 200 and r.json()["room"] == "岗亭"

    # Only devices in service: a decommissioned one is 409, as is a discovered one.
    assert client.post(f"/api/v1/devices/{gate}/decommission",
                       headers=auth(world.token(Role.PROPERTY_STAFF))).status_code == 200
    _problem(client.patch(f"/api/v1/devices/{gate}", json={"room": "x"},
                          headers=auth(world.token(Role.PROPERTY_STAFF))), 409, "conflict")
    discovered = _discover(ctx, "0x00124b0000aaaa02")
    _problem(client.patch(f"/api/v1/devices/{discovered}", json={"name": "x"},
                          headers=auth(world.token(Role.PROPERTY_STAFF))), 409, "conflict")


def _token_for(ctx: AppContext, world: World, household: str) -> str:
    from cityweave.accounts import service as accounts
    from cityweave.accounts.models import User

    with ctx.db.session() as session:
        user = session.get(User, world.household_user[household])
        return accounts.issue_tokens(ctx, session, user, source_ip=None).access_token


def test_patch_is_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/devices/{device_id}"]["patch"]
    assert {"200", "403", "404", "409", "422"} <= set(operation["responses"])
    schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][schema]["properties"]) == {"name", "room"}
    assert "room" in spec["components"]["schemas"]["DeviceOut"]["properties"]
