"""An alarm dispatched with people on site becomes a routed, urgent work order linked to it."""

from __future__ import annotations

from cityweave.accounts.models import Role
from cityweave.alarms import service as alarms
from tests.alarms.support import smoke
from tests.conftest import auth


def test_dispatching_a_fire_alarm_opens_a_site_visit_work_order(client, ctx, world):
    with ctx.db.session() as session:
        alarm_id = alarms.raise_alarm(session, smoke(), ctx.clock.now()).alarm_id
    staff = auth(world.token(Role.PROPERTY_STAFF))
    dispatched = client.post(f"/api/v1/alarms/{alarm_id}/dispatch", json={"note": "保安已出发"}, headers=staff)
    assert dispatched.status_code == 200, dispatched.text
    ref = dispatched.json()["work_order_ref"]
    assert ref and ref.startswith("wo-")
    order = client.get(f"/api/v1/work-orders/{ref}", headers=staff).json()
    assert order["channel"] == "alarm" and order["alarm_id"] == alarm_id
    assert order["category_id"] == "alarm-site-visit" and order["priority"] == "urgent"
    assert order["status"] == "assigned" and order["assignee_user_id"] == world.user_ids[Role.PROPERTY_STAFF]
    assert order["public"] is False and "烟雾报警" in order["description"]
    # Dispatching again does not open a second one.
    again = client.post(f"/api/v1/alarms/{alarm_id}/dispatch", json={}, headers=staff)
    assert again.status_code == 409
    listed = client.get("/api/v1/work-orders", params={"category_id": "alarm-site-visit"}, headers=staff).json()
    assert listed["total"] == 1
