"""Every role × every resource kind × own scope / someone else's scope, through the HTTP API.

The expected table is written out by hand from the product rules (docs/architecture.md,
"Roles and scopes"), not derived from the policy code, so a change to the policy that breaks a
rule shows up here as a named cell.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from cityweave.alarms import AlarmRaise, Severity
from cityweave.alarms.service import raise_alarm
from cityweave.context import AppContext
from tests.conftest import auth
from tests.devices_registry.support import RecordingPublisher
from tests.world import RESIDENTS, World

OWN = "ca-b1-u1-101"
OTHER: dict[Role, str] = {
    Role.RESIDENT: "ca-b1-u1-102",  # the neighbour across the landing
    Role.GRID_WORKER: "ca-b2-u1-201",  # another grid of the same community
    Role.PROPERTY_STAFF: "cb-b1-u1-101",  # another community
    Role.COMMUNITY_ADMIN: "cb-b1-u1-101",
    Role.DEPARTMENT_OFFICER: "cb-b1-u1-101",
    Role.SERVICE_PROVIDER: "cb-b1-u1-101",
    Role.CITY_OPERATOR: "cc-b1-u1-101",  # another city
    Role.PLATFORM_ADMIN: "cc-b1-u1-101",
}

Y, N = True, False
# operation → (own scope, other scope) per role. Order matters: destructive operations last.
OPERATIONS = [
    "place.read", "place.update", "person.read", "person.reveal", "care_tag.read",
    "membership.read", "user.read", "audit.read", "device.read", "device.command", "device.update", "person.update",
    "care_tag.create", "user.update", "membership.delete",
    "alarm.read", "alarm.acknowledge", "alarm.dispatch", "alarm.resolve", "alarm.emergency",
    "automation.read", "automation.mode", "automation.create", "scene.run",
    "work_order.read", "work_order.handle", "work_order.report",
]
EXPECTED: dict[Role, dict[str, tuple[bool, bool]]] = {
    Role.RESIDENT: {
        "place.read": (Y, N), "place.update": (N, N), "person.read": (Y, N), "person.reveal": (Y, N),
        "care_tag.read": (Y, N), "membership.read": (Y, N), "user.read": (N, N), "audit.read": (N, N),
        "device.read": (Y, N), "device.command": (Y, N), "device.update": (Y, N),
        "person.update": (N, N), "care_tag.create": (N, N), "user.update": (N, N), "membership.delete": (N, N),
        "alarm.read": (Y, N), "alarm.acknowledge": (Y, N), "alarm.dispatch": (N, N), "alarm.resolve": (Y, N),
        "alarm.emergency": (Y, N),
        "automation.read": (Y, N), "automation.mode": (Y, N), "automation.create": (Y, N), "scene.run": (Y, N),
        "work_order.read": (Y, N), "work_order.handle": (N, N), "work_order.report": (Y, Y),
    },
    Role.GRID_WORKER: {
        "place.read": (Y, N), "place.update": (Y, N), "person.read": (Y, N), "person.reveal": (Y, N),
        "care_tag.read": (Y, N), "membership.read": (Y, N), "user.read": (N, N), "audit.read": (N, N),
        "device.read": (Y, N), "device.command": (N, N), "device.update": (N, N),
        "person.update": (Y, N), "care_tag.create": (Y, N), "user.update": (N, N), "membership.delete": (Y, N),
        "alarm.read": (Y, N), "alarm.acknowledge": (Y, N), "alarm.dispatch": (Y, N), "alarm.resolve": (Y, N),
        "alarm.emergency": (N, N),
        "automation.read": (Y, N), "automation.mode": (N, N), "automation.create": (N, N), "scene.run": (N, N),
        "work_order.read": (Y, N), "work_order.handle": (Y, N), "work_order.report": (Y, N),
    },
    Role.PROPERTY_STAFF: {
        "place.read": (Y, N), "place.update": (Y, N), "person.read": (Y, N), "person.reveal": (Y, N),
        "care_tag.read": (N, N), "membership.read": (Y, N), "user.read": (N, N), "audit.read": (N, N),
        "device.read": (Y, N), "device.command": (N, N), "device.update": (N, N),
        "person.update": (N, N), "care_tag.create": (N, N), "user.update": (N, N), "membership.delete": (N, N),
        "alarm.read": (Y, N), "alarm.acknowledge": (Y, N), "alarm.dispatch": (Y, N), "alarm.resolve": (Y, N),
        "alarm.emergency": (N, N),
        "automation.read": (Y, N), "automation.mode": (N, N), "automation.create": (N, N), "scene.run": (N, N),
        "work_order.read": (Y, N), "work_order.handle": (Y, N), "work_order.report": (Y, N),
    },
    Role.COMMUNITY_ADMIN: {
        "place.read": (Y, N), "place.update": (Y, N), "person.read": (Y, N), "person.reveal": (Y, N),
        "care_tag.read": (Y, N), "membership.read": (Y, N), "user.read": (Y, N), "audit.read": (Y, N),
        "device.read": (Y, N), "device.command": (N, N), "device.update": (N, N),
        "person.update": (Y, N), "care_tag.create": (Y, N), "user.update": (Y, N), "membership.delete": (Y, N),
        "alarm.read": (Y, N), "alarm.acknowledge": (Y, N), "alarm.dispatch": (Y, N), "alarm.resolve": (Y, N),
        "alarm.emergency": (N, N),
        "automation.read": (Y, N), "automation.mode": (N, N), "automation.create": (N, N), "scene.run": (N, N),
        "work_order.read": (Y, N), "work_order.handle": (Y, N), "work_order.report": (Y, N),
    },
    Role.DEPARTMENT_OFFICER: {
        "place.read": (Y, N), "place.update": (N, N), "person.read": (N, N), "person.reveal": (N, N),
        "care_tag.read": (N, N), "membership.read": (N, N), "user.read": (N, N), "audit.read": (N, N),
        "device.read": (N, N), "device.command": (N, N), "device.update": (N, N),
        "person.update": (N, N), "care_tag.create": (N, N), "user.update": (N, N), "membership.delete": (N, N),
        "alarm.read": (N, N), "alarm.acknowledge": (N, N), "alarm.dispatch": (N, N), "alarm.resolve": (N, N),
        "alarm.emergency": (N, N),
        "automation.read": (N, N), "automation.mode": (N, N), "automation.create": (N, N), "scene.run": (N, N),
        "work_order.read": (N, N), "work_order.handle": (N, N), "work_order.report": (N, N),
    },
    Role.SERVICE_PROVIDER: {op: (N, N) for op in OPERATIONS},
    Role.CITY_OPERATOR: {
        "place.read": (Y, N), "place.update": (Y, N), "person.read": (Y, N), "person.reveal": (N, N),
        "care_tag.read": (N, N), "membership.read": (Y, N), "user.read": (Y, N), "audit.read": (Y, N),
        "device.read": (Y, N), "device.command": (N, N), "device.update": (N, N),
        "person.update": (N, N), "care_tag.create": (N, N), "user.update": (Y, N), "membership.delete": (N, N),
        "alarm.read": (Y, N), "alarm.acknowledge": (N, N), "alarm.dispatch": (N, N), "alarm.resolve": (N, N),
        "alarm.emergency": (N, N),
        "automation.read": (N, N), "automation.mode": (N, N), "automation.create": (N, N), "scene.run": (N, N),
        "work_order.read": (Y, N), "work_order.handle": (N, N), "work_order.report": (N, N),
    },
    Role.PLATFORM_ADMIN: {op: (Y, Y) for op in OPERATIONS},
}

DENIED = {403, 404}


def _private_work_orders(ctx: AppContext) -> dict[str, str]:
    """One non-public work order per household (a neighbour dispute, filed on the hotline)."""
    from cityweave.authz.policy import Principal
    from cityweave.context import Call
    from cityweave.workorders import service as workorders
    from cityweave.workorders.schemas import WorkOrderSubmit

    orders = {}
    with ctx.db.session() as session:
        call = Call(ctx, session, Principal.system("matrix"))
        for hh in RESIDENTS:
            orders[hh] = workorders.submit(call, WorkOrderSubmit(
                category_id="neighbour-dispute", description="邻居装修噪音纠纷", place_id=hh)).id
    return orders


def _smoke_alarms(ctx: AppContext) -> dict[str, str]:
    """One open alarm per household (raised by the platform, as a smoke rule would)."""
    alarms = {}
    with ctx.db.session() as session:
        for hh in RESIDENTS:
            alarms[hh] = raise_alarm(session, AlarmRaise(
                cause_key=f"fire.smoke:{hh}", kind="fire", severity=Severity.CRITICAL, place_id=hh,
                title={"zh-CN": "烟雾报警", "en": "Smoke detected"}), ctx.clock.now()).alarm_id
    return alarms


def _status_allows(status: int, op: str) -> bool:
    if 200 <= status < 300:
        return True
    if status in DENIED:
        return False
    raise AssertionError(f"{op}: unexpected status {status}")


def _operations(client: TestClient, world: World, headers: dict[str, str],
                alarms: dict[str, str], orders: dict[str, str]) -> dict[str, Callable[[str], bool]]:
    def person(hh: str) -> str:
        # In the caller's own household, target the *other* member: a person's rights over
        # their own record ("my profile") are a separate rule, tested in test_people.py.
        return world.family_member if hh == OWN else world.person_of_household[hh]

    def place_read(hh: str) -> bool:
        return _status_allows(client.get(f"/api/v1/places/{hh}", headers=headers).status_code, "place.read")

    def place_update(hh: str) -> bool:
        r = client.patch(f"/api/v1/places/{hh}", json={"name_en": "Flat"}, headers=headers)
        return _status_allows(r.status_code, "place.update")

    def person_read(hh: str) -> bool:
        return _status_allows(client.get(f"/api/v1/persons/{person(hh)}", headers=headers).status_code, "person.read")

    def person_reveal(hh: str) -> bool:
        r = client.get(f"/api/v1/persons/{person(hh)}/personal-data", headers=headers)
        allowed = _status_allows(r.status_code, "person.reveal")
        if allowed:
            assert "*" not in r.json()["phone"], "revealed phone must be unmasked"
        return allowed

    def care_tag_read(hh: str) -> bool:
        r = client.get(f"/api/v1/persons/{person(hh)}", headers=headers)
        return r.status_code == 200 and r.json()["care_tags"] is not None

    def membership_read(hh: str) -> bool:
        r = client.get("/api/v1/persons", params={"household_id": hh}, headers=headers)
        if r.status_code in DENIED:
            return False
        assert r.status_code == 200, r.text
        return r.json()["total"] > 0

    def user_read(hh: str) -> bool:
        r = client.get(f"/api/v1/users/{world.household_user[hh]}", headers=headers)
        return _status_allows(r.status_code, "user.read")

    def audit_read(hh: str) -> bool:
        r = client.get("/api/v1/audit", params={"object_id": hh}, headers=headers)
        if r.status_code in DENIED:
            return False
        assert r.status_code == 200, r.text
        return r.json()["total"] > 0

    def device_read(hh: str) -> bool:
        r = client.get(f"/api/v1/devices/{world.device_of_household[hh]}", headers=headers)
        return _status_allows(r.status_code, "device.read")

    def device_command(hh: str) -> bool:
        r = client.post(f"/api/v1/devices/{world.device_of_household[hh]}/commands",
                        json={"capability": "on_off", "value": True}, headers=headers)
        allowed = _status_allows(r.status_code, "device.command")
        if allowed:
            assert r.json()["status"] == "sent", r.text
        return allowed

    def device_update(hh: str) -> bool:
        r = client.patch(f"/api/v1/devices/{world.device_of_household[hh]}", json={"room": "客厅"}, headers=headers)
        return _status_allows(r.status_code, "device.update")

    def person_update(hh: str) -> bool:
        r = client.patch(f"/api/v1/persons/{person(hh)}", json={"gender": "other"}, headers=headers)
        return _status_allows(r.status_code, "person.update")

    def care_tag_create(hh: str) -> bool:
        r = client.post(f"/api/v1/persons/{person(hh)}/care-tags", json={"tag": "veteran"}, headers=headers)
        return _status_allows(r.status_code, "care_tag.create")

    def user_update(hh: str) -> bool:
        r = client.patch(f"/api/v1/users/{world.household_user[hh]}", json={"display_name": "x"}, headers=headers)
        return _status_allows(r.status_code, "user.update")

    def membership_delete(hh: str) -> bool:
        r = client.delete(f"/api/v1/persons/{person(hh)}/households/{hh}", headers=headers)
        return _status_allows(r.status_code, "membership.delete")

    def alarm_step(step: str, body: dict) -> Callable[[str], bool]:
        def run(hh: str) -> bool:
            r = client.post(f"/api/v1/alarms/{alarms[hh]}/{step}", json=body, headers=headers)
            return _status_allows(r.status_code, f"alarm.{step}")
        return run

    def alarm_read(hh: str) -> bool:
        return _status_allows(client.get(f"/api/v1/alarms/{alarms[hh]}", headers=headers).status_code, "alarm.read")

    def alarm_emergency(hh: str) -> bool:
        r = client.post("/api/v1/alarms/emergency", json={"household_id": hh}, headers=headers)
        return _status_allows(r.status_code, "alarm.emergency")

    def automation_read(hh: str) -> bool:
        r = client.get(f"/api/v1/households/{hh}/scenes", headers=headers)
        return _status_allows(r.status_code, "automation.read")

    def automation_mode(hh: str) -> bool:
        r = client.put(f"/api/v1/households/{hh}/mode", json={"mode": "armed"}, headers=headers)
        return _status_allows(r.status_code, "automation.mode")

    def automation_create(hh: str) -> bool:
        r = client.post(f"/api/v1/households/{hh}/automations", headers=headers, json={
            "key": "matrix", "name": {"zh-CN": "矩阵", "en": "Matrix"},
            "trigger": {"type": "schedule", "at": "07:00"}, "actions": [{"type": "set_mode", "mode": "home"}]})
        return _status_allows(r.status_code, "automation.create")

    def scene_run(hh: str) -> bool:
        r = client.post(f"/api/v1/households/{hh}/scenes/sleep/run", headers=headers)
        return _status_allows(r.status_code, "scene.run")

    def work_order_read(hh: str) -> bool:
        r = client.get(f"/api/v1/work-orders/{orders[hh]}", headers=headers)
        return _status_allows(r.status_code, "work_order.read")

    def work_order_handle(hh: str) -> bool:
        r = client.post(f"/api/v1/work-orders/{orders[hh]}/replies", json={"note": "已联系双方", "public": False},
                        headers=headers)
        return _status_allows(r.status_code, "work_order.handle")

    def work_order_report(hh: str) -> bool:
        r = client.post("/api/v1/work-orders", headers=headers, json={
            "category_id": "repair-water", "description": "楼道水管漏水", "place_id": hh})
        if r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/place_id":
            return False  # "no place … in the area you may report on": refused without a hint
        return _status_allows(r.status_code, "work_order.report")

    return {
        "work_order.read": work_order_read, "work_order.handle": work_order_handle,
        "work_order.report": work_order_report,
        "automation.read": automation_read, "automation.mode": automation_mode,
        "automation.create": automation_create, "scene.run": scene_run,
        "alarm.read": alarm_read, "alarm.acknowledge": alarm_step("acknowledge", {"note": "matrix"}),
        "alarm.dispatch": alarm_step("dispatch", {"work_order": False}), "alarm.resolve": alarm_step("resolve", {}),
        "alarm.emergency": alarm_emergency,
        "place.read": place_read, "place.update": place_update, "person.read": person_read,
        "person.reveal": person_reveal, "care_tag.read": care_tag_read,
        "membership.read": membership_read, "user.read": user_read, "audit.read": audit_read,
        "device.read": device_read, "device.command": device_command, "device.update": device_update,
        "person.update": person_update, "care_tag.create": care_tag_create,
        "user.update": user_update, "membership.delete": membership_delete,
    }


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_authorization_matrix(role: Role, client: TestClient, world: World, ctx: AppContext) -> None:
    headers = auth(world.token(role))
    alarms = _smoke_alarms(ctx)
    orders = _private_work_orders(ctx)
    client.app.state.device_publisher = RecordingPublisher()  # a stand-in for the MQTT transport
    operations = _operations(client, world, headers, alarms, orders)
    assert set(operations) == set(OPERATIONS) == set(EXPECTED[role])
    mismatches = []
    for op in OPERATIONS:
        for scope, household, expected in (("own", OWN, EXPECTED[role][op][0]), ("other", OTHER[role], EXPECTED[role][op][1])):
            actual = operations[op](household)
            if actual != expected:
                mismatches.append(f"{role.value} {op} on {scope} scope: expected {'allow' if expected else 'deny'}")
    assert not mismatches, "\n".join(mismatches)


def test_matrix_covers_every_role_and_operation() -> None:
    assert set(EXPECTED) == set(Role)
    for role, table in EXPECTED.items():
        assert set(table) == set(OPERATIONS), role
