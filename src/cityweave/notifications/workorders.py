"""The work-order adapter: each ``WorkOrderChange`` (after its commit) becomes a live event, and
the steps people must hear about become outbox rows.

* the handler, when a work order is routed or assigned to them (severity from its priority:
  urgent and high reach their phone by SMS);
* the reporter, on every public step someone else took (accepted, started, resolved, a public
  reply, rejected, confirmed or closed by the timers): "minor", so live by default;
* at risk (escalation 1): the handler; overdue (escalation 2): the handler and the community's
  staff, who supervise ("major": SMS by default).

The live event carries no reporter: who may see it is decided by ``policy.allows_work_order``
from the fields kept beside the event (``LiveEvent.access``), never sent to the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from cityweave.authz import policy
from cityweave.authz.policy import Action, Principal
from cityweave.context import AppContext
from cityweave.notifications import recipients
from cityweave.notifications.hub import EVENT_FILTERS, LiveEvent, NotificationHub
from cityweave.notifications.outbox import both_languages, enqueue

log = logging.getLogger("cityweave.notifications")

HANDLER_ACTIONS = frozenset({"routed", "assign"})
REPORTER_ACTIONS = frozenset({"accept", "start", "resolve", "reject", "auto_confirm", "auto_close", "merge",
                              "transfer"})
PRIORITY_SEVERITY = {"urgent": "major", "high": "major", "normal": "minor", "low": "info"}


def live_event(change: Any) -> LiveEvent:
    data = {
        "work_order_id": change.work_order_id, "number": change.number, "action": change.action,
        "status": change.status, "category_id": change.category_id, "escalation": change.escalation,
        "priority": change.priority, "assignee_user_id": change.assignee_user_id,
        "note": change.note if change.public else None, "at": change.at.isoformat(),
    }
    access = {"reporter_user_id": change.reporter_user_id, "public": change.order_public,
              "category_id": change.category_id, "assignee_user_id": change.assignee_user_id}
    return LiveEvent(type="work_order", place_path=change.place_path, data=data, at=change.at, access=access)


def visible(principal: Principal, event: LiveEvent) -> bool:
    """The hub's rule for ``work_order`` events: exactly who may read the work order itself."""
    access = event.access
    order = SimpleNamespace(place_path=event.place_path, reporter_user_id=access.get("reporter_user_id"),
                            public=bool(access.get("public")), category_id=access.get("category_id"),
                            assignee_user_id=access.get("assignee_user_id"))
    return policy.allows_work_order(principal, Action.READ, order)  # type: ignore[arg-type]


EVENT_FILTERS["work_order"] = visible


def messages_for(change: Any) -> list[tuple[list[str] | tuple[str, ...], str, str]]:
    """(recipients as user ids or audiences, severity, message) for one change."""
    out: list[tuple[Any, str, str]] = []
    if change.action in HANDLER_ACTIONS and change.assignee_user_id:
        out.append(([change.assignee_user_id], PRIORITY_SEVERITY.get(change.priority, "minor"), "assigned"))
    reporter_step = change.action in REPORTER_ACTIONS or (change.action == "replied" and change.public)
    if reporter_step and change.reporter_user_id and change.actor != change.reporter_user_id:
        out.append(([change.reporter_user_id], "minor", "update"))
    if change.action == "escalated":
        users = [change.assignee_user_id] if change.assignee_user_id else []
        out.append((users, "major", "at_risk" if change.escalation < 2 else "overdue"))
        if change.escalation >= 2:
            out.append((("community_staff",), "major", "overdue"))
    return out


def enqueue_work_order(session: Session, change: Any, now: Any) -> int:
    written = 0
    for who, severity, message in messages_for(change):
        if who and isinstance(who, tuple):
            user_ids = recipients.users_for_all(session, change.place_path, who)
        else:
            user_ids = list(who)
        if not user_ids:
            continue
        written += enqueue(
            session, user_ids=user_ids, severity=severity, kind="work_order",
            subject_key=f"notify.work_order.{message}.subject", body_key=f"notify.work_order.{message}.body",
            params={"number": change.number, "status": both_languages(f"workorder.status.{change.status}"),
                    "note": (change.note or "") if change.public else "", "action": change.action},
            dedupe_key=f"wo:{change.work_order_id}:{change.action}:{message}:{change.at.isoformat()}",
            now=now, place_path=change.place_path, ref=change.work_order_id,
        )
    return written


class WorkOrderNotifier:
    """Subscribed on ``ctx.bus`` for ``WorkOrderChange``."""

    def __init__(self, ctx: AppContext, hub: NotificationHub, on_enqueued: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.hub = hub
        self.on_enqueued = on_enqueued

    def __call__(self, change: Any) -> None:
        self.hub.publish(live_event(change))
        if not messages_for(change):
            return
        try:
            with self.ctx.db.session() as session:
                self.ctx.db.write_first(session)
                written = enqueue_work_order(session, change, self.ctx.clock.now())
        except Exception:
            log.exception("could not queue notifications for work order %s", change.number)
            return
        if written and self.on_enqueued is not None:
            self.on_enqueued()
