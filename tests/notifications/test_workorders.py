"""Work-order steps reach the right people: live events exactly as far as the work order may be
read (reporter, public reports, officers' categories), outbox rows for handlers and supervisors."""

from __future__ import annotations

from sqlalchemy import select

from cityweave.accounts.models import Role, User
from cityweave.authz.policy import Principal
from cityweave.notifications.hub import LiveEvent, visible
from cityweave.notifications.models import Notification
from cityweave.notifications.service import Notifications
from cityweave.workorders import deadlines, service
from tests.workorders.support import add_user, as_user, report


def principal(ctx, user_id: str) -> Principal:
    with ctx.db.session() as session:
        return Principal.from_user(session.get(User, user_id), via="token")


def rows(ctx, kind: str = "work_order") -> list[Notification]:
    with ctx.db.session() as session:
        return list(session.execute(select(Notification).where(Notification.kind == kind)
                                    .order_by(Notification.id)).scalars())


def test_steps_go_live_to_who_may_read_and_to_the_handler_and_supervisors(ctx, world, clock):
    notifications = Notifications(ctx)
    notifications.subscribe_bus()
    seen: list[LiveEvent] = []
    original = notifications.hub.publish
    notifications.hub.publish = lambda event: (seen.append(event), original(event))[-1]  # type: ignore[method-assign]
    try:
        resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
        with as_user(ctx, resident) as call:
            public = service.submit(call, report()).id  # repair-water: public, priority high
            private = service.submit(call, report("neighbour-dispute")).id  # not public
        events = [e for e in seen if e.type == "work_order"]
        assert {e.data["work_order_id"] for e in events} == {public, private}
        assert all("reporter_user_id" not in e.as_json()["data"] for e in events)
        # The handler of the public one is told, by SMS too (high priority → major).
        assigned = [r for r in rows(ctx) if r.subject_key == "notify.work_order.assigned.subject"]
        assert {(r.user_id, r.channel) for r in assigned if r.ref == public} == {(staff, "sms")}

        reporter = principal(ctx, resident)
        neighbour = principal(ctx, world.household_user["ca-b2-u1-201"])  # same community, other grid
        far = principal(ctx, world.household_user["cb-b1-u1-101"])  # another community
        officer_security = principal(ctx, add_user(ctx, "police_b", Role.DEPARTMENT_OFFICER, "ca", ["security"]))
        first_public = next(e for e in events if e.data["work_order_id"] == public)
        first_private = next(e for e in events if e.data["work_order_id"] == private)
        assert visible(reporter, first_public) and visible(reporter, first_private)
        assert visible(neighbour, first_public) and not visible(neighbour, first_private)
        assert not visible(far, first_public)
        assert not visible(officer_security, first_public)  # not their category

        with as_user(ctx, staff) as call:
            service.resolve(call, public, "已修好")
        resolved = [e for e in seen if e.type == "work_order" and e.data["action"] == "resolve"]
        assert resolved and resolved[0].data["note"] == "已修好"

        # Overdue: the handler and the community's staff hear of it ("major": SMS).
        clock.advance(hours=73)
        with ctx.db.session() as session:
            assert deadlines.check(session, ctx.bus, clock.now()) >= 1
        overdue = [r for r in rows(ctx) if r.subject_key == "notify.work_order.overdue.subject" and r.ref == private]
        told = {r.user_id for r in overdue}
        assert world.user_ids[Role.COMMUNITY_ADMIN] in told and world.user_ids[Role.GRID_WORKER] in told
    finally:
        notifications.unsubscribe_bus()
        notifications.hub.close()
