"""Work-order operations, as people (and the platform) perform them.

Every function takes a :class:`~cityweave.context.Call`, checks access through
``authz.policy`` (outside the caller's view: 404; visible but not theirs to act on: 403), changes
the row, appends a history event, writes the audit trail, and announces the step on the bus once
the transaction has committed. Timers live in ``deadlines``.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cityweave.accounts.models import Role, User
from cityweave.authz import policy
from cityweave.authz.policy import Action, Resource, Unauthorized
from cityweave.context import Call
from cityweave.db.base import new_id
from cityweave.db.engine import on_commit
from cityweave.errors import Conflict, Forbidden, Invalid, NotFound
from cityweave.listing import Page, PageRequest, paginate
from cityweave.places.models import Place
from cityweave.security.masking import mask_name
from cityweave.workorders import lifecycle, routing
from cityweave.workorders.events import WorkOrderChange
from cityweave.workorders.lifecycle import Step
from cityweave.workorders.models import (
    Category,
    Channel,
    Status,
    WorkOrder,
    WorkOrderEvent,
    WorkOrderPhoto,
)
from cityweave.workorders.schemas import (
    AssignInput,
    CategoryPatch,
    MergeInput,
    RateInput,
    ReplyInput,
    TransferInput,
    WorkOrderSubmit,
)

R = Resource.WORK_ORDER
SYSTEM = "system"
# A duplicate: same category, same place, within this window (shown to staff as a hint).
DUPLICATE_WINDOW = timedelta(hours=2)
# Reports can be reopened this long after they were resolved.
REOPEN_WINDOW = timedelta(days=30)
_STAFF_CHANNELS = {Channel.PATROL, Channel.HOTLINE}


# -- reading ---------------------------------------------------------------------------------------
def get_category(session: Session, category_id: str, *, active_only: bool = True) -> Category:
    category = session.get(Category, category_id)
    if category is None or (active_only and not category.active):
        raise Invalid.field("/category_id", f"no category {category_id!r}")
    return category


def list_categories(session: Session, *, include_inactive: bool = False) -> list[Category]:
    stmt = select(Category).order_by(Category.group, Category.id)
    if not include_inactive:
        stmt = stmt.where(Category.active.is_(True))
    return list(session.execute(stmt).scalars())


def get(call: Call, work_order_id: str, action: Action = Action.READ) -> WorkOrder:
    """The work order if the caller may ``action`` it: 404 if they cannot even see it."""
    order = call.session.get(WorkOrder, work_order_id)
    if order is None or not policy.allows_work_order(call.principal, Action.READ, order):
        raise NotFound(f"no work order {work_order_id!r}")
    if action is not Action.READ and not policy.allows_work_order(call.principal, action, order):
        raise Forbidden(f"not allowed to {action} this work order")
    return order


def list_work_orders(call: Call, page: PageRequest, *, status: list[Status] | None = None,
                     category_id: str | None = None, place_id: str | None = None,
                     assignee: str | None = None, mine: bool = False, overdue: bool | None = None,
                     since: datetime | None = None) -> Page[WorkOrder]:
    stmt = select(WorkOrder).where(policy.work_order_clause(call.principal, Action.READ))
    if status:
        stmt = stmt.where(WorkOrder.status.in_(status))
    if category_id:
        stmt = stmt.where(WorkOrder.category_id == category_id)
    if place_id:
        place = call.session.get(Place, place_id)
        stmt = stmt.where(WorkOrder.place_path.startswith(place.path if place else "\x00"))
    if assignee:
        stmt = stmt.where(WorkOrder.assignee_user_id == assignee)
    if mine:
        stmt = stmt.where(WorkOrder.reporter_user_id == call.principal.user_id)
    if overdue is not None:
        stmt = stmt.where((WorkOrder.escalation >= 2) if overdue else (WorkOrder.escalation < 2))
    if since:
        stmt = stmt.where(WorkOrder.created_at >= since)
    sortable = {"created_at": WorkOrder.created_at, "updated_at": WorkOrder.updated_at,
                "resolve_due_at": WorkOrder.resolve_due_at, "priority": WorkOrder.priority,
                "status": WorkOrder.status, "number": WorkOrder.number, "id": WorkOrder.id}
    return paginate(call.session, stmt, page, sortable, "-created_at")


def history(call: Call, work_order_id: str) -> list[WorkOrderEvent]:
    order = get(call, work_order_id)
    stmt = select(WorkOrderEvent).where(WorkOrderEvent.work_order_id == order.id)
    if not policy.allows_work_order(call.principal, Action.UPDATE, order):
        stmt = stmt.where(WorkOrderEvent.public.is_(True))  # reporters see the public steps
    return list(call.session.execute(stmt.order_by(WorkOrderEvent.at, WorkOrderEvent.id)).scalars())


def reporter_label(call: Call, order: WorkOrder) -> str | None:
    """Masked name of who reported, for the handling side only; never for anonymous reports."""
    if order.anonymous or not policy.allows_work_order(call.principal, Action.UPDATE, order):
        return None
    if order.reporter_user_id:
        user = call.session.get(User, order.reporter_user_id)
        return mask_name(user.display_name) if user else None
    if order.contact_enc:
        contact = json.loads(call.cipher.decrypt(order.contact_enc, "work_orders.contact"))
        return mask_name(contact.get("name")) if contact.get("name") else None
    return None


def photo_ids(session: Session, work_order_id: str) -> list[str]:
    return list(session.execute(select(WorkOrderPhoto.id).where(
        WorkOrderPhoto.work_order_id == work_order_id).order_by(WorkOrderPhoto.created_at)).scalars())


def duplicates_of(call: Call, order: WorkOrder) -> list[WorkOrder]:
    """Open work orders of the same category at the same place reported close in time."""
    get(call, order.id, Action.UPDATE)
    stmt = select(WorkOrder).where(
        WorkOrder.id != order.id, WorkOrder.category_id == order.category_id,
        WorkOrder.status.in_(lifecycle.TRANSITIONS[Step.MERGE][0]),
        WorkOrder.created_at >= order.created_at - DUPLICATE_WINDOW,
        WorkOrder.created_at <= order.created_at + DUPLICATE_WINDOW,
        policy.work_order_clause(call.principal, Action.UPDATE),
    )
    if order.place_id:
        stmt = stmt.where(WorkOrder.place_id == order.place_id)
    elif order.grid_id:
        stmt = stmt.where(WorkOrder.grid_id == order.grid_id)
    else:
        return []
    return list(call.session.execute(stmt.order_by(WorkOrder.created_at)).scalars())


# -- intake ----------------------------------------------------------------------------------------
def submit(call: Call, data: WorkOrderSubmit, *, channel: Channel | None = None,
           alarm_id: str | None = None) -> WorkOrder:
    """A new report from any channel: located, routed, deadlines set, announced."""
    principal = call.principal
    category = get_category(call.session, data.category_id)
    staff = principal.may(R, Action.UPDATE)
    channel = channel or data.channel or (Channel.PATROL if Role.GRID_WORKER in principal.roles else Channel.RESIDENT)
    if channel in _STAFF_CHANNELS and not staff:
        raise Invalid.field("/channel", "only staff enter patrol findings and hotline calls")
    if data.priority is not None and not staff:
        raise Invalid.field("/priority", "the category sets the priority; staff may change it")
    if data.contact is not None and channel is not Channel.HOTLINE and channel is not Channel.OPEN311:
        raise Invalid.field("/contact", "contact details are for hotline calls; residents are known already")
    place = None
    if data.place_id is not None:
        place = call.session.get(Place, data.place_id)
        # One answer for "no such place" and "not yours to report on": ids cannot be probed.
        if place is None or not policy.may_report_at(principal, place.path):
            raise Invalid.field("/place_id", f"no place {data.place_id!r} in the area you may report on")
    location = routing.locate(call.session, place=place, lon=data.lon, lat=data.lat)
    if not policy.may_report_at(principal, location.place_path):
        raise Invalid.field("/lat", "this point is outside the area you may report on")
    now = call.now()
    order = WorkOrder(
        id=new_id("wo"), number="", category_id=category.id, department_id=category.department_id,
        status=Status.SUBMITTED, priority=data.priority or category.default_priority, channel=channel,
        description=data.description, place_id=location.place_id, place_path=location.place_path,
        grid_id=location.grid_id, lon=data.lon, lat=data.lat, address=data.address,
        reporter_user_id=None if channel in _STAFF_CHANNELS and data.contact else principal.user_id,
        anonymous=data.anonymous, alarm_id=alarm_id,
        contact_enc=call.cipher.encrypt(json.dumps(data.contact.model_dump(exclude_none=True), ensure_ascii=False),
                                        "work_orders.contact") if data.contact else None,
        entered_by=principal.user_id if channel is Channel.HOTLINE else None,
        accept_due_at=now + timedelta(minutes=category.accept_within_minutes),
        resolve_due_at=now + timedelta(hours=category.resolve_within_hours),
        public=category.public and not data.anonymous, created_at=now, updated_at=now,
    )
    order.next_check_at = order.accept_due_at
    if principal.via == "system" or channel is Channel.OPEN311 and order.reporter_user_id == SYSTEM:
        order.reporter_user_id = None
    _insert_numbered(call.session, order, now)
    _event(call, order, "submitted", None, Status.SUBMITTED, data.description[:200], public=True)
    handler = routing.choose(call.session, category, location, now)
    if handler is not None:
        _route_to(call, order, handler, "routed")
    call.audit("work_order.submit", "work_order", order.id, place_path=order.place_path,
               details={"category": category.id, "channel": channel.value, "number": order.number,
                        "assignee": order.assignee_user_id})
    return order


def _insert_numbered(session: Session, order: WorkOrder, now: datetime) -> None:
    """WO20261122-482913: a number people can read out on the phone; retried on a collision."""
    for _ in range(5):
        order.number = f"WO{now:%Y%m%d}-{secrets.randbelow(900_000) + 100_000}"
        try:
            with session.begin_nested():
                session.add(order)
                session.flush()
            return
        except IntegrityError:
            session.expunge(order) if order in session else None
    raise Conflict("could not allocate a work-order number; try again")


def _route_to(call: Call, order: WorkOrder, user_id: str, action: str, note: str | None = None) -> None:
    before = order.status
    order.assignee_user_id = user_id
    order.status = Status.ASSIGNED
    order.updated_at = call.now()
    _event(call, order, action, before, Status.ASSIGNED, note, details={"assignee": user_id}, actor=SYSTEM
           if action == "routed" else None)


# -- steps by the handling side --------------------------------------------------------------------
def _step(call: Call, work_order_id: str, step: Step, note: str | None = None, *,
          public: bool = True, action: Action = Action.UPDATE) -> WorkOrder:
    order = get(call, work_order_id, action)
    before = order.status
    after = lifecycle.target(step, before, has_assignee=order.assignee_user_id is not None)
    now = call.now()
    order.status = after
    order.updated_at = now
    if step in lifecycle.RESPONSE_STEPS and order.accepted_at is None:
        order.accepted_at = now
    if after is Status.RESOLVED:
        order.resolved_at = now
    elif after is Status.CONFIRMED:
        order.confirmed_at = now
    elif after in (Status.CLOSED, Status.REJECTED, Status.MERGED):
        order.closed_at = now
    _event(call, order, step.value, before, after, note, public=public)
    _reschedule(order, now)
    call.audit(f"work_order.{step.value}", "work_order", order.id, place_path=order.place_path,
               details={"from": before.value, "to": after.value, "number": order.number})
    return order


def accept(call: Call, work_order_id: str, note: str | None = None) -> WorkOrder:
    return _step(call, work_order_id, Step.ACCEPT, note)


def assign(call: Call, work_order_id: str, data: AssignInput) -> WorkOrder:
    order = get(call, work_order_id, Action.UPDATE)
    category = get_category(call.session, order.category_id, active_only=False)
    if data.user_id not in routing.candidates(call.session, category, order.place_path):
        raise Invalid.field("/user_id", "this person does not handle this category here")
    order = _step(call, work_order_id, Step.ASSIGN, data.note, public=False)
    order.assignee_user_id = data.user_id
    call.session.flush()
    return order


def start(call: Call, work_order_id: str, note: str | None = None) -> WorkOrder:
    return _step(call, work_order_id, Step.START, note)


def resolve(call: Call, work_order_id: str, note: str | None = None) -> WorkOrder:
    return _step(call, work_order_id, Step.RESOLVE, note)


def reject(call: Call, work_order_id: str, reason: str) -> WorkOrder:
    return _step(call, work_order_id, Step.REJECT, reason)


def transfer(call: Call, work_order_id: str, data: TransferInput) -> WorkOrder:
    """To another category (and with it another department); routed again from scratch."""
    order = get(call, work_order_id, Action.UPDATE)
    category = get_category(call.session, data.category_id)
    if category.id == order.category_id:
        raise Invalid.field("/category_id", "the work order is in this category already")
    previous = (order.category_id, order.department_id, order.assignee_user_id)
    order = _step(call, work_order_id, Step.TRANSFER, data.reason, public=False)
    now = call.now()
    order.category_id, order.department_id = category.id, category.department_id
    order.assignee_user_id = None
    order.accepted_at = None  # the new unit's response is measured from now
    order.accept_due_at = now + timedelta(minutes=category.accept_within_minutes)
    order.escalation = 0
    _reschedule(order, now)
    call.session.flush()
    order.public = order.public and category.public
    handler = routing.choose(call.session, category, routing.Location(order.place_id, order.place_path,
                                                                        order.grid_id), now)
    if handler is not None:
        _route_to(call, order, handler, "routed")
    call.audit("work_order.transfer.detail", "work_order", order.id, place_path=order.place_path,
               details={"from_category": previous[0], "from_department": previous[1],
                        "to_category": category.id, "to_department": category.department_id})
    return order


def merge(call: Call, work_order_id: str, data: MergeInput) -> WorkOrder:
    """Fold a duplicate into the work order that stays; its reporter follows the kept one."""
    keep = get(call, data.into, Action.UPDATE)
    if keep.id == work_order_id:
        raise Invalid.field("/into", "a work order cannot be merged into itself")
    if keep.status not in (Status.SUBMITTED, Status.ACCEPTED, Status.ASSIGNED, Status.IN_PROGRESS):
        raise Conflict(f"the work order to keep is {keep.status.value}; merge into an open one")
    order = get(call, work_order_id, Action.UPDATE)
    if order.category_id != keep.category_id:
        raise Invalid.field("/into", "only work orders of the same category are merged; transfer first")
    order = _step(call, work_order_id, Step.MERGE, data.note or f"→ {keep.number}")
    order.merged_into = keep.id
    _event(call, keep, "merged_in", keep.status, keep.status, f"← {order.number}",
           details={"duplicate": order.id})
    return order


def reply(call: Call, work_order_id: str, data: ReplyInput) -> WorkOrderEvent:
    """A message from the handling side (public: the reporter and Open311 see it)."""
    order = get(call, work_order_id, Action.UPDATE)
    order.updated_at = call.now()
    if order.accepted_at is None:
        order.accepted_at = order.updated_at  # a reply is a response too
    event = _event(call, order, "replied", order.status, order.status, data.note, public=data.public)
    call.audit("work_order.reply", "work_order", order.id, place_path=order.place_path,
               details={"public": data.public})
    return event


def set_priority(call: Call, work_order_id: str, priority: Any) -> WorkOrder:
    order = get(call, work_order_id, Action.UPDATE)
    before = order.priority
    order.priority = priority
    order.updated_at = call.now()
    _event(call, order, "reprioritised", order.status, order.status, f"{before.value} → {priority.value}")
    call.audit("work_order.priority", "work_order", order.id, place_path=order.place_path,
               details={"from": before.value, "to": priority.value})
    return order


# -- steps by the reporter -------------------------------------------------------------------------
def _reporter_or_handler(call: Call, order: WorkOrder) -> None:
    if order.reporter_user_id == call.principal.user_id:
        return
    if policy.allows_work_order(call.principal, Action.UPDATE, order) and order.channel is Channel.HOTLINE:
        return  # staff confirm on the phone for a caller without an account
    raise Forbidden("only the reporter may do this")


def confirm(call: Call, work_order_id: str, note: str | None = None) -> WorkOrder:
    order = get(call, work_order_id)
    _reporter_or_handler(call, order)
    return _step(call, work_order_id, Step.CONFIRM, note, action=Action.READ)


def reopen(call: Call, work_order_id: str, reason: str) -> WorkOrder:
    order = get(call, work_order_id)
    if order.reporter_user_id != call.principal.user_id:
        get(call, work_order_id, Action.UPDATE)  # or the handling side
    if order.resolved_at and call.now() - order.resolved_at > REOPEN_WINDOW:
        raise Conflict("resolved more than 30 days ago: please submit a new report")
    order = _step(call, work_order_id, Step.REOPEN, reason, action=Action.READ)
    order.reopen_count += 1
    order.resolved_at = order.confirmed_at = order.closed_at = None
    order.escalation = 0
    now = call.now()
    category = get_category(call.session, order.category_id, active_only=False)
    order.resolve_due_at = now + timedelta(hours=category.resolve_within_hours)
    _reschedule(order, now)
    return order


def rate(call: Call, work_order_id: str, data: RateInput) -> WorkOrder:
    """Satisfaction 1–5 and a comment; rating a resolved work order confirms and closes it."""
    order = get(call, work_order_id)
    _reporter_or_handler(call, order)
    if order.satisfaction is not None:
        raise Conflict("this work order has been rated already")
    if order.status is Status.RESOLVED:
        order = _step(call, work_order_id, Step.CONFIRM, None, action=Action.READ)
    if order.status is not Status.CONFIRMED:
        raise Conflict(f"only resolved or confirmed work orders are rated, not {order.status.value} ones")
    order.satisfaction, order.feedback = data.satisfaction, data.comment
    _event(call, order, "rated", order.status, order.status, data.comment,
           details={"satisfaction": data.satisfaction})
    return _step(call, work_order_id, Step.CLOSE, None, action=Action.READ)


# -- photos ----------------------------------------------------------------------------------------
def add_photo(call: Call, work_order_id: str, photo: Any) -> WorkOrderPhoto:
    """Attach a cleaned photo (``photos.CleanPhoto``): the reporter or the handling side."""
    order = get(call, work_order_id)
    if order.reporter_user_id != call.principal.user_id:
        get(call, work_order_id, Action.UPDATE)
    count = len(photo_ids(call.session, order.id))
    if count >= 9:
        raise Conflict("a work order holds at most 9 photos")
    row = WorkOrderPhoto(id=new_id("ph"), work_order_id=order.id, content_type=photo.content_type,
                         width=photo.width, height=photo.height, size=len(photo.data), sha256=photo.sha256,
                         data=photo.data, uploaded_by=call.principal.user_id, created_at=call.now())
    call.session.add(row)
    _event(call, order, "photo_added", order.status, order.status, None, details={"photo": row.id},
           public=True)
    call.audit("work_order.photo", "work_order", order.id, place_path=order.place_path,
               details={"photo": row.id, "bytes": row.size})
    return row


def get_photo(call: Call, work_order_id: str, photo_id: str) -> WorkOrderPhoto:
    order = get(call, work_order_id)
    photo = call.session.get(WorkOrderPhoto, photo_id)
    if photo is None or photo.work_order_id != order.id:
        raise NotFound(f"no photo {photo_id!r}")
    return photo


# -- categories (admins) ---------------------------------------------------------------------------
def update_category(call: Call, category_id: str, data: CategoryPatch) -> Category:
    if not policy.allows(call.principal, Resource.WORK_ORDER_CATEGORY, Action.UPDATE, ["/"]):
        raise Forbidden("only platform administrators edit categories")
    category = call.session.get(Category, category_id)
    if category is None:
        raise NotFound(f"no category {category_id!r}")
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(category, field, value)
    category.updated_at = call.now()
    call.audit("work_order.category.update", "work_order_category", category.id,
               details={k: str(v) for k, v in changes.items()})
    return category


# -- shared bookkeeping ----------------------------------------------------------------------------
def _event(call: Call, order: WorkOrder, action: str, before: Status | None, after: Status | None,
           note: str | None, *, public: bool = False, details: dict[str, Any] | None = None,
           actor: str | None = None) -> WorkOrderEvent:
    now = call.now()
    actor = actor or call.principal.user_id
    event = WorkOrderEvent(work_order_id=order.id, at=now, action=action, actor=actor,
                           from_status=before.value if before else None,
                           to_status=after.value if after else None, note=note, public=public,
                           details=details or {})
    call.session.add(event)
    announce(call.session, call.ctx.bus, order, action, actor, now, note=note, public=public)
    return event


def announce(session: Session, bus: Any, order: WorkOrder, action: str, actor: str, now: datetime,
             *, note: str | None = None, public: bool = False) -> None:
    change = WorkOrderChange(
        work_order_id=order.id, number=order.number, action=action, status=order.status.value,
        category_id=order.category_id, place_path=order.place_path, at=now, actor=actor,
        reporter_user_id=None if order.anonymous else order.reporter_user_id,
        assignee_user_id=order.assignee_user_id, note=note, public=public, escalation=order.escalation,
        priority=order.priority.value, order_public=order.public,
    )
    on_commit(session, lambda: bus.publish(change))


def _reschedule(order: WorkOrder, now: datetime) -> None:
    """When ``deadlines.check`` must look at this work order next."""
    from cityweave.workorders import deadlines  # the timer rules live there

    order.next_check_at = deadlines.next_check(order, now)


__all__ = [
    "Unauthorized", "accept", "add_photo", "assign", "confirm", "get", "history", "list_work_orders",
    "merge", "rate", "reject", "reopen", "reply", "resolve", "start", "submit", "transfer",
]
