"""The timers of a work order, kept as columns so that they survive restarts.

* **At risk** (escalation 1): nobody responded by ``accept_due_at``, or 80 % of the time to
  ``resolve_due_at`` has passed while it is still open.
* **Overdue** (escalation 2): ``resolve_due_at`` passed while it is still open.
* **Auto-confirm**: a resolved work order the reporter does not answer is confirmed after
  ``AUTO_CONFIRM`` (residents are asked; silence is taken as yes, as hotlines do);
  **auto-close**: confirmed work orders nobody rates are closed after ``AUTO_CLOSE``.

``next_check_at`` says when each row next needs a look, so one indexed query per tick finds the
due ones whatever the table's size. Each escalation is a history event and a bus announcement
(supervisors are told by the notifications side).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.audit import trail
from cityweave.authz.policy import Principal
from cityweave.workorders.models import OPEN_STATUSES, Status, WorkOrder, WorkOrderEvent

AUTO_CONFIRM = timedelta(days=3)
AUTO_CLOSE = timedelta(days=7)
AT_RISK_SHARE = 0.8
SYSTEM = Principal.system("workorder-timers")


def at_risk_at(order: WorkOrder) -> datetime:
    return order.created_at + (order.resolve_due_at - order.created_at) * AT_RISK_SHARE


def next_check(order: WorkOrder, now: datetime) -> datetime | None:
    if order.status in OPEN_STATUSES:
        times = [order.resolve_due_at]
        if order.escalation < 1:
            times.append(at_risk_at(order))
            if order.accepted_at is None:
                times.append(order.accept_due_at)
        times = [t for t in times if order.escalation < 2]
        return min(times) if times else None
    if order.status is Status.RESOLVED and order.resolved_at:
        return order.resolved_at + AUTO_CONFIRM
    if order.status is Status.CONFIRMED and order.confirmed_at:
        return order.confirmed_at + AUTO_CLOSE
    return None


def check(session: Session, bus: Any, now: datetime, *, limit: int = 500) -> int:
    """Escalate, auto-confirm and auto-close what is due; returns how many rows changed."""
    from cityweave.workorders.service import announce

    rows = session.execute(
        select(WorkOrder).where(WorkOrder.next_check_at <= now).order_by(WorkOrder.next_check_at)
        .limit(limit).with_for_update(skip_locked=True)
    ).scalars().all()
    changed = 0
    for order in rows:
        action = _due_action(order, now)
        if action is None:
            order.next_check_at = next_check(order, now)
            continue
        before = order.status
        note = None
        if action == "auto_confirm":
            order.status, order.confirmed_at = Status.CONFIRMED, now
            note = "reporter did not answer within 3 days"
        elif action == "auto_close":
            order.status, order.closed_at = Status.CLOSED, now
        else:
            order.escalation = 2 if action == "overdue" else 1
        order.updated_at = now
        order.next_check_at = next_check(order, now)
        public = action in ("auto_confirm", "auto_close")
        session.add(WorkOrderEvent(work_order_id=order.id, at=now, action=action, actor="system",
                                   from_status=before.value, to_status=order.status.value, note=note,
                                   public=public, details={"escalation": order.escalation}))
        trail.append(session, actor=SYSTEM, action=f"work_order.{action}", object_kind="work_order",
                     object_id=order.id, place_path=order.place_path,
                     details={"number": order.number, "escalation": order.escalation}, at=now)
        announce(session, bus, order, "escalated" if action in ("at_risk", "overdue") else action,
                 "system", now, note=note, public=public)
        changed += 1
    return changed


def _due_action(order: WorkOrder, now: datetime) -> str | None:
    if order.status in OPEN_STATUSES:
        if now >= order.resolve_due_at and order.escalation < 2:
            return "overdue"
        late_response = order.accepted_at is None and now >= order.accept_due_at
        if order.escalation < 1 and (late_response or now >= at_risk_at(order)):
            return "at_risk"
        return None
    if order.status is Status.RESOLVED and order.resolved_at and now >= order.resolved_at + AUTO_CONFIRM:
        return "auto_confirm"
    if order.status is Status.CONFIRMED and order.confirmed_at and now >= order.confirmed_at + AUTO_CLOSE:
        return "auto_close"
    return None
