"""The staff console's pages: alarms, work orders and their statistics, residents and households
(with each household's settings of the built-in rules), devices, and the community view.

Every page asks the domain services with the signed-in person's ``Call``, as the API routers do:
what a page shows is what the policy lets that person read, and every change goes through the
same service function (and the same checks, audit records and announcements) as the API.
Ids in URLs are record ids, never personal data.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from cityweave.accounts.models import User
from cityweave.alarms import service as alarms
from cityweave.alarms.models import Severity
from cityweave.api.routers.alarms import publish_after_commit
from cityweave.authz import policy
from cityweave.authz.policy import Action, Resource, Unauthorized
from cityweave.context import Call
from cityweave.devices.registry import service as devices
from cityweave.devices.registry import state as device_state
from cityweave.devices.registry.models import DeviceStatus
from cityweave.devices.registry.schemas import DeviceClaim
from cityweave.errors import CityWeaveError, FieldError, Invalid
from cityweave.listing import PageRequest
from cityweave.people import service as people
from cityweave.places.models import Place, PlaceKind
from cityweave.rules import builtin
from cityweave.web.pages import PageRefused, SignedIn, _render, category_names, refuse, staff_call
from cityweave.workorders import routing, stats
from cityweave.workorders import service as workorders
from cityweave.workorders.models import OPEN_STATUSES, Status, WorkOrder
from cityweave.workorders.schemas import AssignInput, ReplyInput, TransferInput

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 25
Note = Annotated[str, Form(max_length=2000)]
Id = Annotated[str, Query(max_length=64)]
SEVERITIES = ["critical", "major", "minor", "warning", "info"]


def _title(value: dict[str, str] | None, locale: str, fallback: str = "") -> str:
    value = value or {}
    return value.get(locale) or value.get("zh-CN") or value.get("en") or fallback


def _see_other(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def _offset(page: int) -> int:
    return max(page - 1, 0) * PAGE


# -- alarms ------------------------------------------------------------------------------------------
@router.get("/alarms-table", response_class=HTMLResponse)
def alarm_table(request: Request, viewer: SignedIn,
                status: Annotated[str, Query(pattern="^(open|raised|acknowledged|dispatched|resolved|cleared|all)$")] = "open",
                severity: Annotated[str, Query(pattern="^(|critical|major|minor|warning|info)$")] = "",
                page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    """The alarms table alone: htmx swaps it in when a live event arrives (no reload)."""
    return alarm_list(request, viewer, status, severity, page, template="console/_alarm_table.html")


@router.get("/alarms", response_class=HTMLResponse)
def alarm_list(request: Request, viewer: SignedIn,
               status: Annotated[str, Query(pattern="^(open|raised|acknowledged|dispatched|resolved|cleared|all)$")] = "open",
               severity: Annotated[str, Query(pattern="^(|critical|major|minor|warning|info)$")] = "",
               page: Annotated[int, Query(ge=1, le=10_000)] = 1, template: str = "console/alarms.html") -> Response:
    call = staff_call(viewer)
    result = alarms.list_alarms(call, PageRequest(limit=PAGE, offset=_offset(page), sort="-last_at"),
                                status=None if status == "all" else status,
                                severity=Severity(severity) if severity else None)
    may_dispatch = call.principal.may(Resource.ALARM, Action.DISPATCH)
    return _render(request, viewer, template, alarms=result.items, total=result.total, page=page,
                   pages=max(1, -(-result.total // PAGE)), status=status, severity=severity,
                   severities=SEVERITIES, may_dispatch=may_dispatch, title=_title)


@router.get("/alarms/{alarm_id}", response_class=HTMLResponse)
def alarm_detail(request: Request, viewer: SignedIn, alarm_id: str) -> Response:
    call = staff_call(viewer)
    try:
        alarm = alarms.get_alarm(call, alarm_id[:40])
        events = alarms.history(call, alarm.id, PageRequest(limit=200)).items
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    place = call.session.get(Place, alarm.place_id)
    rules_link = place is not None and place.kind is PlaceKind.HOUSEHOLD and \
        policy.allows(call.principal, Resource.RULE_SETTING, Action.READ, [place.path])
    return _render(request, viewer, "console/alarm.html", alarm=alarm, events=events, title=_title,
                   may_dispatch=call.principal.may(Resource.ALARM, Action.DISPATCH), rules_link=rules_link)


@router.post("/alarms/{alarm_id}/{step}")
def alarm_step(request: Request, viewer: SignedIn, alarm_id: str, step: str,
               note: Note = "", work_order: Annotated[bool, Form()] = False,
               back: Annotated[str, Form(max_length=300)] = "") -> Response:
    """Acknowledge, dispatch (optionally opening a work order) or resolve, with a note."""
    call = staff_call(viewer)
    note_or_none = note.strip() or None
    try:
        if step == "acknowledge":
            change = alarms.acknowledge(call, alarm_id[:40], note_or_none)
        elif step == "dispatch":
            change = alarms.dispatch(call, alarm_id[:40], note_or_none, work_order=work_order,
                                     opener=getattr(request.app.state, "work_order_opener", None))
        elif step == "resolve":
            change = alarms.resolve(call, alarm_id[:40], note_or_none)
        else:
            raise PageRefused(404, "unknown step")
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    publish_after_commit(request, call, change)
    target = back if back.startswith("/console/alarms") and not back.startswith("//") else f"/console/alarms/{alarm_id}"
    return _see_other(target)


# -- work orders -------------------------------------------------------------------------------------
QUEUES = ("open", "due", "overdue", "mine", "finished", "all")


def _names(call: Call, user_ids: set[str | None]) -> dict[str, str]:
    ids = sorted(i for i in user_ids if i)
    if not ids:
        return {}
    return dict(call.session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


@router.get("/workorders", response_class=HTMLResponse)
def work_order_queue(request: Request, viewer: SignedIn,
                     queue: Annotated[str, Query(pattern="^(open|due|overdue|mine|finished|all)$")] = "open",
                     page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    call = staff_call(viewer)
    request_page = PageRequest(limit=PAGE, offset=_offset(page), sort="resolve_due_at")
    options: dict[str, Any] = {}
    if queue in ("open", "due", "overdue"):
        options["status"] = list(OPEN_STATUSES)
    if queue == "due":
        options["overdue"] = False
    elif queue == "overdue":
        options["overdue"] = True
    elif queue == "mine":
        options["assignee"] = call.principal.user_id
        options["status"] = list(OPEN_STATUSES)
    elif queue == "finished":
        options["status"] = [s for s in Status if s not in OPEN_STATUSES]
        request_page = PageRequest(limit=PAGE, offset=_offset(page), sort="-updated_at")
    elif queue == "all":
        request_page = PageRequest(limit=PAGE, offset=_offset(page), sort="-created_at")
    result = workorders.list_work_orders(call, request_page, **options)
    return _render(request, viewer, "console/workorders.html", orders=result.items, total=result.total,
                   page=page, pages=max(1, -(-result.total // PAGE)), queue=queue, queues=QUEUES,
                   categories=category_names(call, viewer.locale),
                   names=_names(call, {o.assignee_user_id for o in result.items}), now=call.now())


def _order_page(request: Request, viewer: Any, call: Call, order: WorkOrder, status_code: int = 200,
                error: str | None = None) -> Response:
    category = workorders.get_category(call.session, order.category_id, active_only=False)
    handles = policy.allows_work_order(call.principal, Action.UPDATE, order)
    candidates = routing.candidates(call.session, category, order.place_path) if handles else []
    events = workorders.history(call, order.id)
    names = _names(call, {order.assignee_user_id, *candidates})
    return _render(request, viewer, "console/workorder.html", status_code=status_code, order=order,
                   category=category, events=events, handles=handles, candidates=candidates, names=names,
                   photos=workorders.photo_ids(call.session, order.id),
                   reporter=workorders.reporter_label(call, order), error=error,
                   categories=[c for c in workorders.list_categories(call.session) if c.id != order.category_id],
                   open_statuses=OPEN_STATUSES, now=call.now())


@router.get("/workorders/{work_order_id}", response_class=HTMLResponse)
def work_order_detail(request: Request, viewer: SignedIn, work_order_id: str) -> Response:
    call = staff_call(viewer)
    try:
        order = workorders.get(call, work_order_id[:40])
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    return _order_page(request, viewer, call, order)


@router.post("/workorders/{work_order_id}/{step}")
def work_order_step(request: Request, viewer: SignedIn, work_order_id: str, step: str,
                    note: Note = "", user_id: Annotated[str, Form(max_length=40)] = "",
                    category_id: Annotated[str, Form(max_length=40)] = "",
                    public: Annotated[bool, Form()] = False) -> Response:
    """accept, assign (to a candidate), transfer (with a reason), reply, start, resolve, reject."""
    call = staff_call(viewer)
    wid = work_order_id[:40]
    note_or_none = note.strip() or None
    try:
        if step == "accept":
            workorders.accept(call, wid, note_or_none)
        elif step == "assign":
            workorders.assign(call, wid, AssignInput(user_id=user_id, note=note_or_none))
        elif step == "transfer":
            workorders.transfer(call, wid, TransferInput(category_id=category_id, reason=note.strip()))
        elif step == "reply":
            workorders.reply(call, wid, ReplyInput(note=note.strip(), public=public))
        elif step == "start":
            workorders.start(call, wid, note_or_none)
        elif step == "resolve":
            workorders.resolve(call, wid, note_or_none)
        elif step == "reject":
            workorders.reject(call, wid, note.strip())
        else:
            raise PageRefused(404, "unknown step")
    except (CityWeaveError, ValidationError) as exc:
        raise refuse(exc) from exc
    return _see_other(f"/console/workorders/{wid}")


@router.get("/statistics", response_class=HTMLResponse)
def statistics(request: Request, viewer: SignedIn,
               by: Annotated[stats.GroupBy, Query()] = stats.GroupBy.CATEGORY,
               days: Annotated[int, Query(ge=1, le=366)] = 30) -> Response:
    call = staff_call(viewer)
    summary = stats.summarise(call, by=by, days=days)
    labels = [row.label or row.key or "–" for row in summary.rows]
    chart = {
        "type": "bar", "labels": labels,
        "datasets": [
            {"label": "open", "data": [row.open for row in summary.rows]},
            {"label": "resolved", "data": [row.resolved for row in summary.rows]},
            {"label": "overdue", "data": [row.overdue_open for row in summary.rows]},
        ],
    }
    return _render(request, viewer, "console/statistics.html", summary=summary, by=by, days=days,
                   groups=list(stats.GroupBy), chart=json.dumps(chart, ensure_ascii=False), labels=labels)


# -- residents and households ------------------------------------------------------------------------
@router.get("/residents", response_class=HTMLResponse)
def residents(request: Request, viewer: SignedIn,
              within: Annotated[str, Query(max_length=64, pattern="^[a-z0-9-]*$")] = "",
              page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    """Persons with masked personal data (``people.service``'s views); care tags only where the
    role may read them (``Visibility``): the view leaves them out otherwise."""
    call = staff_call(viewer)
    if not call.principal.may(Resource.PERSON, Action.READ):
        raise PageRefused(403, "not allowed to read persons")
    try:
        result = people.list_persons(call, PageRequest(limit=PAGE, offset=_offset(page)), within=within or None)
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    persons = people.to_out_many(call, result.items)
    households: dict[str, list[Any]] = defaultdict(list)
    for person in persons:
        for membership in person.households:
            households[membership.household_id].append(person)
    names = dict(call.session.execute(select(Place.id, Place.name).where(Place.id.in_(sorted(households)))).all()) \
        if households else {}
    return _render(request, viewer, "console/residents.html", persons=persons, households=dict(sorted(households.items())),
                   place_names=names, total=result.total, page=page, pages=max(1, -(-result.total // PAGE)),
                   within=within, care_tags=people.may_read_care_tags(call.principal),
                   rule_settings=call.principal.may(Resource.RULE_SETTING, Action.READ))


# -- a household's settings of the built-in rules --------------------------------------------------
async def _form(request: Request) -> FormData:
    return await request.form()  # already read (and cached) by the CSRF check


def _number(raw: str) -> Any:
    """A number typed into the form, or the text itself (the rules module says what is wrong)."""
    try:
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    return int(number) if number.is_integer() else number


def _same(a: Any, b: Any) -> bool:
    return not isinstance(a, str) and not isinstance(b, str) and isinstance(a, bool) == isinstance(b, bool) \
        and a == b


def rule_changes(current: list[builtin.RuleView], form: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form as a ``update_settings`` document: only what differs from the household's current
    settings (a value equal to the default goes back to the default), and the values as typed."""
    changes: dict[str, Any] = {}
    typed: dict[str, Any] = {}
    for view in current:
        if form.get(f"{view.key}.shown") != "1":
            continue  # this rule was not on the form: unchanged
        change: dict[str, Any] = {}
        if view.may_disable:
            enabled = form.get(f"{view.key}.enabled") == "on"
            typed[f"{view.key}.enabled"] = enabled
            if enabled != view.enabled:
                change["enabled"] = enabled
        params: dict[str, Any] = {}
        for param in view.params:
            name, field = param["name"], f"{view.key}.{param['name']}"
            if not param["adjustable"] or isinstance(param["default"], str):
                continue
            if isinstance(param["default"], bool):
                value: Any = form.get(field) == "on"
                typed[field] = value
            else:
                raw = form.get(field)
                if not isinstance(raw, str):
                    continue
                typed[field] = raw.strip()[:40]
                value = _number(typed[field])
            if _same(value, param["value"]):
                continue
            params[name] = None if _same(value, param["default"]) else value
        if params:
            change["params"] = params
        if change:
            changes[view.key] = change
    return changes, typed


def rule_errors(current: list[builtin.RuleView], errors: list[FieldError]) -> dict[str, dict[str, Any]]:
    """The rules module's errors (JSON pointers, English) as fields of the form and what to say,
    in the viewer's language (the template words them)."""
    views = {v.key: v for v in current}
    out: dict[str, dict[str, Any]] = {}
    for error in errors:
        parts = error.pointer.strip("/").split("/")
        view = views.get(parts[0])
        if view is None:
            continue
        if parts[1:] == ["enabled"]:
            out[f"{view.key}.enabled"] = {"code": "always_on"}
        elif len(parts) == 3 and parts[1] == "params":
            param = next((p for p in view.params if p["name"] == parts[2]), None)
            if param is None:
                continue
            if not param["adjustable"]:
                code = "fixed"
            elif isinstance(param["default"], bool):
                code = "on_off"
            else:
                code = "range"
            out[f"{view.key}.{param['name']}"] = {"code": code, "minimum": param["minimum"],
                                                  "maximum": param["maximum"], "unit": param["unit"]}
    return out


def _rules_page(request: Request, viewer: Any, call: Call, household_id: str, *, status_code: int = 200,
                errors: dict[str, Any] | None = None, typed: dict[str, Any] | None = None,
                saved: bool = False) -> Response:
    try:
        views = builtin.list_settings(call, household_id)
        editable = builtin.may_update(call, household_id)
    except (CityWeaveError, Unauthorized) as exc:
        raise refuse(exc) from exc
    place = call.session.get(Place, household_id)
    return _render(request, viewer, "console/rules.html", status_code=status_code, place=place, rules=views,
                   editable=editable, errors=errors or {}, typed=typed or {}, saved=saved)


@router.get("/households/{household_id}/rules", response_class=HTMLResponse)
def household_rules(request: Request, viewer: SignedIn, household_id: str,
                    saved: Annotated[str, Query(max_length=1)] = "") -> Response:
    """Each built-in rule with its on/off and parameters: a form for the roles that may change
    them (``builtin.may_update``), read-only for the others; 404 outside the viewer's view."""
    call = staff_call(viewer)
    return _rules_page(request, viewer, call, household_id[:64], saved=saved == "1")


@router.post("/households/{household_id}/rules", response_class=HTMLResponse)
def change_household_rules(request: Request, viewer: SignedIn, household_id: str,
                           form: Annotated[FormData, Depends(_form)]) -> Response:
    """``builtin.update_settings`` with what the form changed: its checks (who may, bounds, the
    rules that cannot be switched off) and its audit record; nothing is written unless all is valid."""
    call = staff_call(viewer)
    hid = household_id[:64]
    try:
        current = builtin.list_settings(call, hid)
    except (CityWeaveError, Unauthorized) as exc:
        raise refuse(exc) from exc
    changes, typed = rule_changes(current, form)
    try:
        builtin.update_settings(call, hid, changes, engine=getattr(request.app.state, "rule_engine", None))
    except Invalid as exc:
        return _rules_page(request, viewer, call, hid, status_code=422, errors=rule_errors(current, exc.errors),
                           typed=typed)
    except (CityWeaveError, Unauthorized) as exc:
        raise refuse(exc) from exc
    return _see_other(f"/console/households/{hid}/rules?saved=1")


# -- devices -----------------------------------------------------------------------------------------
@router.get("/devices", response_class=HTMLResponse)
def device_list(request: Request, viewer: SignedIn,
                status: Annotated[str, Query(pattern="^(|claimed|active|decommissioned)$")] = "",
                online: Annotated[str, Query(pattern="^(|yes|no)$")] = "",
                q: Annotated[str, Query(max_length=64)] = "",
                page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    call = staff_call(viewer)
    result = devices.list_devices(call, PageRequest(limit=PAGE, offset=_offset(page)),
                                  status=DeviceStatus(status) if status else None, q=q.strip() or None)
    items = [d for d in result.items if not online or bool(d.online) == (online == "yes")]
    discovered = []
    if policy.sees_unplaced_devices(call.principal):
        discovered = devices.list_discovered(call, PageRequest(limit=50)).items
    return _render(request, viewer, "console/devices.html", devices=items, total=result.total, page=page,
                   pages=max(1, -(-result.total // PAGE)), status=status, online=online, q=q,
                   discovered=discovered)


NUMERIC = {"number"}


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_detail(request: Request, viewer: SignedIn, device_id: str,
                  capability: Annotated[str, Query(max_length=64, pattern="^[a-z0-9_]*$")] = "") -> Response:
    call = staff_call(viewer)
    try:
        device, values = device_state.device_state(call, device_id[:40])
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    numeric = [v.capability for v in values if v.value_type == "number"]
    chosen = capability if capability in numeric else (numeric[0] if numeric else "")
    chart = None
    if chosen:
        series = device_state.device_series(call, device.id, chosen, None, None, None, 96)
        chart = json.dumps({"type": "line", "labels": [b.start.isoformat() for b in series.buckets],
                            "datasets": [{"label": chosen, "data": [b.avg for b in series.buckets]}]})
    return _render(request, viewer, "console/device.html", device=device, values=values, numeric=numeric,
                   chosen=chosen, chart=chart)


@router.get("/devices/{device_id}/readings", response_class=HTMLResponse)
def device_readings(request: Request, viewer: SignedIn, device_id: str) -> Response:
    """The device's latest values alone: app.js redraws them (``data-tile``) when a
    ``device_state`` event names the device, as it redraws the home's device tiles."""
    call = staff_call(viewer)
    try:
        device, values = device_state.device_state(call, device_id[:40])
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    return _render(request, viewer, "console/_device_readings.html", device=device, values=values)


@router.post("/devices/{device_id}/claim")
def claim_device(request: Request, viewer: SignedIn, device_id: str,
                 place_id: Annotated[str, Form(max_length=64)] = "",
                 name: Annotated[str, Form(max_length=100)] = "") -> Response:
    call = staff_call(viewer)
    try:
        device = devices.claim(call, device_id[:40], DeviceClaim(place_id=place_id.strip(), name=name.strip() or None))
    except (CityWeaveError, ValidationError) as exc:
        raise refuse(exc) from exc
    return _see_other(f"/console/devices/{device.id}")


# -- community view ----------------------------------------------------------------------------------
def _communities(call: Call) -> list[Place]:
    return list(call.session.execute(
        select(Place).where(Place.kind == PlaceKind.COMMUNITY,
                            policy.scope_clause(call.principal, Resource.PLACE, Action.READ))
        .order_by(Place.id)).scalars())


RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _worst(counts: dict[str, int]) -> str:
    present = [s for s in SEVERITIES if counts.get(s)]
    return present[0] if present else "none"


def community_layout(buildings: list[Place], units: dict[str, list[Place]],
                     households: dict[str, list[Place]], worst: dict[str, str]) -> dict[str, Any]:
    """Boxes for an SVG: buildings on a grid (by id; demo buildings are points, so geometry
    places nothing), units as columns inside, households as cells from the top floor down."""
    cell, gap, pad, head = 14, 2, 8, 22
    columns = 4
    shapes = []
    x = y = 0
    row_height = 0
    width = 0
    for index, building in enumerate(buildings):
        if index and index % columns == 0:
            x, y = 0, y + row_height + 16
            row_height = 0
        unit_boxes = []
        bx = pad
        tallest = 0
        for unit in units.get(building.id, []):
            cells = []
            members = households.get(unit.id, [])
            per_row = 4
            for n, household in enumerate(members):
                cx = bx + (n % per_row) * (cell + gap)
                cy = head + (n // per_row) * (cell + gap)
                cells.append({"id": household.id, "name": household.name, "x": cx, "y": cy,
                              "state": worst.get(household.id, "none")})
            rows = -(-len(members) // per_row) if members else 1
            unit_width = per_row * (cell + gap)
            unit_boxes.append({"id": unit.id, "name": unit.name, "x": bx, "cells": cells})
            tallest = max(tallest, rows * (cell + gap))
            bx += unit_width + pad
        bw = max(bx, 90)
        bh = head + tallest + pad
        shapes.append({"id": building.id, "name": building.name, "x": x, "y": y, "w": bw, "h": bh,
                       "units": unit_boxes, "state": worst.get(building.id, "none")})
        x += bw + 16
        width = max(width, x)
        row_height = max(row_height, bh)
    return {"buildings": shapes, "width": max(width, 100), "height": y + row_height + 4, "cell": cell}


def community_view(call: Call, place_id: str) -> dict[str, Any]:
    """What the community view shows of ``place_id`` (the viewer's first community when empty):
    the communities in the viewer's view, and of the chosen one the buildings, units and
    households they may read, coloured by the most severe open alarm. The page and its live map
    fragment both ask here, so both make the same checks: 404 for a community outside the view."""
    communities = _communities(call)
    if not communities:
        if place_id:
            raise PageRefused(404, "no such community in your view")
        return {"communities": [], "current": None, "layout": None, "rows": []}
    current = next((c for c in communities if c.id == place_id), None) if place_id else communities[0]
    if current is None:
        raise PageRefused(404, "no such community in your view")
    inside = list(call.session.execute(
        select(Place).where(Place.path.startswith(current.path, autoescape=True),
                            Place.kind.in_([PlaceKind.BUILDING, PlaceKind.UNIT, PlaceKind.HOUSEHOLD]),
                            policy.scope_clause(call.principal, Resource.PLACE, Action.READ))
        .order_by(Place.path)).scalars())
    buildings = [p for p in inside if p.kind is PlaceKind.BUILDING]
    units: dict[str, list[Place]] = defaultdict(list)
    households: dict[str, list[Place]] = defaultdict(list)
    for place in inside:
        if place.kind is PlaceKind.UNIT and place.parent_id:
            units[place.parent_id].append(place)
        elif place.kind is PlaceKind.HOUSEHOLD and place.parent_id:
            households[place.parent_id].append(place)
    worst: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for level in ("household", "building"):
        for row in alarms.summary(call, by=level, place_id=current.id):
            worst[row.place_id] = _worst(row.counts)
            counts[row.place_id] = dict(row.counts)
    rows = [{"building": b, "units": len(units.get(b.id, [])),
             "households": sum(len(households.get(u.id, [])) for u in units.get(b.id, [])),
             "state": worst.get(b.id, "none"), "counts": counts.get(b.id, {}),
             "alarmed": [h for u in units.get(b.id, []) for h in households.get(u.id, []) if h.id in worst]}
            for b in buildings]
    layout = community_layout(buildings, units, households, worst)
    return {"communities": communities, "current": current, "layout": layout, "rows": rows,
            "severities": SEVERITIES, "worst": worst}


@router.get("/community", response_class=HTMLResponse)
def community(request: Request, viewer: SignedIn,
              place_id: Annotated[str, Query(max_length=64, pattern="^[a-z0-9-]*$")] = "") -> Response:
    view = community_view(staff_call(viewer), place_id)
    return _render(request, viewer, "console/community.html", **view)


@router.get("/community/{place_id}/map", response_class=HTMLResponse)
def community_map(request: Request, viewer: SignedIn,
                  place_id: Annotated[str, Path(max_length=64, pattern="^[a-z0-9-]+$")]) -> Response:
    """The community's map and table alone: htmx swaps it in when alarm events arrive (no reload)."""
    view = community_view(staff_call(viewer), place_id)
    return _render(request, viewer, "console/_community_map.html", **view)
