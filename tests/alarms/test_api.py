"""The alarm API over HTTP: emergency call, steps, 409/422 problems, lists, summary, live hook."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.alarms import service
from cityweave.alarms.events import AlarmChange
from cityweave.alarms.models import Severity
from cityweave.audit.models import AuditRecord
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from tests.alarms.support import NEIGHBOUR, OWN, smoke
from tests.conftest import auth
from tests.world import World

BASE = "/api/v1/alarms"


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"/problems/{slug}" and body["status"] == status
    return body


def _raise(ctx: AppContext, request=None) -> str:
    with ctx.db.session() as session:
        return service.raise_alarm(session, request or smoke(), ctx.clock.now()).alarm_id


def test_emergency_call_from_the_web(client: TestClient, ctx: AppContext, world: World, clock: ManualClock) -> None:
    resident = auth(world.token(Role.RESIDENT))
    heard: list[AlarmChange] = []
    client.app.state.alarm_listeners = [heard.append]
    r = client.post(f"{BASE}/emergency", json={"household_id": OWN, "note": "胸口痛"}, headers=resident)
    assert r.status_code == 201, r.text
    alarm = r.json()
    assert (alarm["kind"], alarm["severity"], alarm["status"], alarm["count"]) == (
        "emergency_call", "critical", "raised", 1)
    assert alarm["title"] == {"zh-CN": "紧急呼叫", "en": "Emergency call"}
    assert [s["audience"] for s in alarm["escalation"]] == ["family", "grid_worker", "community_staff"]
    assert [s["ack_within_s"] for s in alarm["escalation"]] == [120, 300, 600]
    assert alarm["details"]["note"] == "胸口痛" and alarm["place_id"] == OWN
    assert [(c.change, c.audience, c.alarm_id) for c in heard] == [("raised", "family", alarm["id"])]
    clock.advance(seconds=3)
    again = client.post(f"{BASE}/emergency", json={"household_id": OWN}, headers=resident)
    assert again.status_code == 200 and again.json()["id"] == alarm["id"] and again.json()["count"] == 2
    history = client.get(f"{BASE}/{alarm['id']}/history", headers=resident).json()
    assert [(e["action"], e["actor"]) for e in history["items"]] == [
        ("raised", "alarms"), ("emergency_call", "resident_a"), ("emergency_call", "resident_a")]
    with ctx.db.session() as session:
        actions = session.execute(select(AuditRecord.action, AuditRecord.actor_id).where(
            AuditRecord.object_id == alarm["id"]).order_by(AuditRecord.seq)).all()
    assert [tuple(a) for a in actions] == [
        ("alarm.raise", None), ("alarm.emergency_call", world.user_ids[Role.RESIDENT]),
        ("alarm.emergency_call", world.user_ids[Role.RESIDENT])]


def test_emergency_call_refusals(client: TestClient, world: World) -> None:
    resident = auth(world.token(Role.RESIDENT))
    _problem(client.post(f"{BASE}/emergency", json={"household_id": NEIGHBOUR}, headers=resident), 404, "not-found")
    _problem(client.post(f"{BASE}/emergency", json={"household_id": "ca-b1"}, headers=resident), 422,
             "validation-error")  # a building the resident may see, not a household
    _problem(client.post(f"{BASE}/emergency", json={"household_id": OWN},
                         headers=auth(world.token(Role.GRID_WORKER))), 403, "forbidden")
    body = _problem(client.post(f"{BASE}/emergency", json={"household_id": OWN, "urgent": True}, headers=resident),
                    422, "validation-error")
    assert any(e["pointer"] == "/urgent" for e in body["errors"])
    _problem(client.post(f"{BASE}/emergency", json={"household_id": "Bad Id!"}, headers=resident), 422,
             "validation-error")
    _problem(client.post(f"{BASE}/emergency", json={"household_id": OWN, "note": "x" * 1001}, headers=resident),
             422, "validation-error")
    assert client.post(f"{BASE}/emergency", json={"household_id": OWN}).status_code == 401


def test_steps_over_http_with_409_and_the_live_hook(client: TestClient, ctx: AppContext, world: World) -> None:
    alarm_id = _raise(ctx)
    grid = auth(world.token(Role.GRID_WORKER))
    heard: list[AlarmChange] = []
    client.app.state.alarm_listeners = [heard.append]
    r = client.post(f"{BASE}/{alarm_id}/acknowledge", json={"note": "看到了"}, headers=grid)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged" and r.json()["escalation_due_at"] is None
    _problem(client.post(f"{BASE}/{alarm_id}/acknowledge", json={}, headers=grid), 409, "conflict")
    r = client.post(f"{BASE}/{alarm_id}/dispatch", json={"note": "上门", "work_order": False}, headers=grid)
    assert r.json()["status"] == "dispatched" and r.json()["work_order_requested"] is False
    r = client.post(f"{BASE}/{alarm_id}/resolve", headers=grid)  # the note is optional
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["closed_at"]
    for step in ("acknowledge", "dispatch", "resolve"):
        body = _problem(client.post(f"{BASE}/{alarm_id}/{step}", json={"note": "again"}, headers=grid), 409,
                        "conflict")
        assert body["current_status"] == "resolved"
    # Only committed steps are announced.
    assert [(c.change, c.actor, c.note) for c in heard] == [
        ("acknowledged", "grid_a", "看到了"), ("dispatched", "grid_a", "上门"), ("resolved", "grid_a", None)]
    history = client.get(f"{BASE}/{alarm_id}/history", headers=grid).json()
    assert [e["action"] for e in history["items"]] == ["raised", "acknowledged", "dispatched", "resolved"]
    assert history["items"][1]["actor_id"] == world.user_ids[Role.GRID_WORKER]
    _problem(client.post(f"{BASE}/{alarm_id}/resolve", json={"note": "x", "status": "raised"}, headers=grid), 422,
             "validation-error")
    _problem(client.post(f"{BASE}/alm-0000000000000000/acknowledge", headers=grid), 404, "not-found")


def test_dispatch_asks_for_a_work_order_by_kind(client: TestClient, ctx: AppContext, world: World) -> None:
    admin = auth(world.token(Role.COMMUNITY_ADMIN))
    fire = _raise(ctx)
    r = client.post(f"{BASE}/{fire}/dispatch", json={}, headers=admin)
    assert r.json()["work_order_requested"] is True  # fire needs a site visit
    with ctx.db.session() as session:
        info = service.raise_alarm(session, service.AlarmRaise(
            cause_key="env.pm25:ca-b1-u1-101", kind="environment", severity=Severity.INFO, place_id=OWN,
            title={"zh-CN": "PM2.5 偏高", "en": "PM2.5 high"}), ctx.clock.now()).alarm_id
    assert client.post(f"{BASE}/{info}/dispatch", headers=admin).json()["work_order_requested"] is False
    history = client.get(f"{BASE}/{fire}/history", headers=admin).json()["items"]
    assert [e["action"] for e in history] == ["raised", "dispatched", "work_order_requested"]


def test_lists_are_scoped_and_filtered(client: TestClient, ctx: AppContext, world: World, clock: ManualClock) -> None:
    a = _raise(ctx, smoke(OWN, "dev-a"))
    clock.advance(seconds=1)
    b = _raise(ctx, smoke(OWN, "dev-b", severity=Severity.MINOR))
    clock.advance(seconds=1)
    c = _raise(ctx, smoke(NEIGHBOUR, "dev-c", severity=Severity.MAJOR))
    clock.advance(seconds=1)
    d = _raise(ctx, smoke("cc-b1-u1-101", "dev-d"))
    with ctx.db.session() as session:
        service.clear_alarm(session, "fire.smoke:dev-b", clock.now(), reason="gone")

    def ids(role: Role, **params) -> list[str]:
        r = client.get(BASE, params=params, headers=auth(world.token(role)))
        assert r.status_code == 200, r.text
        assert r.json()["total"] == len(r.json()["items"])
        return [x["id"] for x in r.json()["items"]]

    assert ids(Role.PLATFORM_ADMIN) == [d, c, b, a]  # newest first
    assert ids(Role.PLATFORM_ADMIN, status="open") == [d, c, a]
    assert ids(Role.PLATFORM_ADMIN, status="cleared") == [b]
    assert ids(Role.PLATFORM_ADMIN, severity="major") == [c]
    assert ids(Role.PLATFORM_ADMIN, place_id="ca-b1", sort="-severity,first_at") == [a, c, b]
    assert ids(Role.PLATFORM_ADMIN, device_id="dev-d", kind="fire") == [d]
    assert ids(Role.RESIDENT) == [b, a]
    assert ids(Role.RESIDENT, place_id="ca") == [b, a]  # the community: still only their own
    assert ids(Role.GRID_WORKER) == [c, b, a]
    assert ids(Role.CITY_OPERATOR) == [c, b, a]
    assert ids(Role.DEPARTMENT_OFFICER) == [] and ids(Role.SERVICE_PROVIDER) == []
    headers = auth(world.token(Role.PLATFORM_ADMIN))
    _problem(client.get(BASE, params={"status": "closed"}, headers=headers), 422, "validation-error")
    _problem(client.get(BASE, params={"severity": "urgent"}, headers=headers), 422, "validation-error")
    _problem(client.get(BASE, params={"sort": "title"}, headers=headers), 422, "validation-error")
    _problem(client.get(BASE, params={"place_id": "cc"}, headers=auth(world.token(Role.RESIDENT))), 404, "not-found")
    assert client.get(f"{BASE}/{a}", headers=auth(world.token(Role.RESIDENT))).json()["count"] == 1
    _problem(client.get(f"{BASE}/{c}", headers=auth(world.token(Role.RESIDENT))), 404, "not-found")


def test_summary_roll_up(client: TestClient, ctx: AppContext, world: World) -> None:
    for place, device, severity in [
        (OWN, "dev-1", Severity.CRITICAL), (OWN, "dev-2", Severity.CRITICAL), (OWN, "dev-3", Severity.WARNING),
        (NEIGHBOUR, "dev-4", Severity.MAJOR), ("ca-b2-u1-201", "dev-5", Severity.MINOR),
        ("ca-gate1", "dev-6", Severity.MAJOR), ("cb-b1-u1-101", "dev-7", Severity.INFO),
        ("cc-b1-u1-101", "dev-8", Severity.CRITICAL),
    ]:
        _raise(ctx, smoke(place, device, severity=severity))
    with ctx.db.session() as session:  # a second occurrence is still one alarm
        service.raise_alarm(session, smoke(OWN, "dev-1"), ctx.clock.now())

    def get(role: Role, **params) -> dict:
        r = client.get(f"{BASE}/summary", params=params, headers=auth(world.token(role)))
        assert r.status_code == 200, r.text
        return r.json()

    admin = get(Role.PLATFORM_ADMIN)
    assert admin["by"] == "community" and admin["total"] == 8
    assert admin["counts"] == {"critical": 3, "major": 2, "minor": 1, "warning": 1, "info": 1}
    assert [i["place_id"] for i in admin["items"]] == ["cc", "ca", "cb"]  # path order: /oc/... < /tc/...
    rows = {i["place_id"]: (i["total"], tuple(i["counts"].values())) for i in admin["items"]}
    assert rows == {"ca": (6, (2, 2, 1, 1, 0)), "cb": (1, (0, 0, 0, 0, 1)), "cc": (1, (1, 0, 0, 0, 0))}
    building = get(Role.PROPERTY_STAFF, by="building")
    assert {i["place_id"]: i["total"] for i in building["items"]} == {"ca-b1": 4, "ca-b2": 1}
    assert building["total"] == 5  # the gate (a facility under the community) is in no building
    household = get(Role.GRID_WORKER, by="household")
    assert {i["place_id"]: tuple(i["counts"].values()) for i in household["items"]} == {
        "ca-b1-u1-101": (2, 0, 0, 1, 0), "ca-b1-u1-102": (0, 1, 0, 0, 0)}
    assert get(Role.RESIDENT, by="community")["items"] == [
        {"place_id": "ca", "place_path": "/tc/tc-d1/tc-d1-s1/ca/", "name": "地点 ca", "total": 3,
         "counts": {"critical": 2, "major": 0, "minor": 0, "warning": 1, "info": 0}}]
    assert get(Role.COMMUNITY_ADMIN, place_id="ca-b1", by="household")["total"] == 4
    assert get(Role.DEPARTMENT_OFFICER)["items"] == []
    _problem(client.get(f"{BASE}/summary", params={"by": "street"}, headers=auth(world.token(Role.PLATFORM_ADMIN))),
             422, "validation-error")


def test_malformed_and_odd_bodies(client: TestClient, ctx: AppContext, world: World) -> None:
    alarm_id = _raise(ctx)
    grid = auth(world.token(Role.GRID_WORKER))
    _problem(client.post(f"{BASE}/{alarm_id}/acknowledge", content=b'{"note": ',
                         headers={**grid, "content-type": "application/json"}), 400, "malformed-json")
    _problem(client.post(f"{BASE}/{alarm_id}/acknowledge", json={"note": "a\u0000b"}, headers=grid), 422,
             "validation-error")
    _problem(client.post(f"{BASE}/{alarm_id}/dispatch", json={"work_order": "maybe"}, headers=grid), 422,
             "validation-error")
    _problem(client.post(f"{BASE}/{alarm_id}/resolve", json=["note"], headers=grid), 422, "validation-error")
    _problem(client.get(f"{BASE}/{'x' * 41}", headers=grid), 422, "validation-error")
    # Nothing above changed the alarm.
    assert client.get(f"{BASE}/{alarm_id}", headers=grid).json()["status"] == "raised"
