"""The resident home: my home by room with live states and switches, scenes, arm and disarm, my
alarms, energy and environment charts, and my reports (submit with a photo, follow, rate).

Pages call the same domain services as the API with the resident's ``Call``; what a resident
may see and do is the policy's decision, never the page's. ``?tv=1`` is the family-TV layout:
big tiles and few actions.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.alarms import service as alarms
from cityweave.api.routers.alarms import publish_after_commit
from cityweave.context import Call
from cityweave.devices.capabilities import CAPABILITIES, Capability
from cityweave.devices.capabilities import find as find_capability
from cityweave.devices.command import CommandRejected
from cityweave.devices.reasons import Reason
from cityweave.devices.registry import commands
from cityweave.devices.registry import state as device_state
from cityweave.devices.registry.models import CommandStatus, Device, DeviceCommand, DeviceStatus
from cityweave.errors import CityWeaveError
from cityweave.listing import PageRequest
from cityweave.places.models import Place
from cityweave.rules import modes, scenes
from cityweave.rules.model import Mode
from cityweave.web.pages import PageRefused, SignedIn, Viewer, _render, refuse
from cityweave.workorders import photos
from cityweave.workorders import service as workorders
from cityweave.workorders.schemas import RateInput, WorkOrderSubmit

router = APIRouter(include_in_schema=False)
SWITCHABLE = "on_off"
# What a tile lets a resident set besides on/off (which has its own button), in the tile's order.
# The lock only locks: unlocking a door from a web page is refused (docs/architecture.md).
TILE_CONTROLS = ("brightness", "color_temperature", "hvac_mode", "target_temperature", "cover_position",
                 "cover_control", "valve_open", "lock")
LOCKED = "locked"
ENERGY = ("power_w",)
ENVIRONMENT = ("temperature", "humidity", "co2", "pm2_5")
DONE = {"sent", "scene", "mode", "report", "rated", "resolved"}
COMMAND_WINDOW = timedelta(minutes=10)  # older commands have long been answered or timed out
RECENT_FAILURE = timedelta(minutes=2)  # how long a tile says that a command failed


def households(call: Call) -> list[Place]:
    paths = [g.place_path for g in call.principal.grants if g.role is Role.RESIDENT and g.place_path]
    if not paths:
        return []
    return list(call.session.execute(select(Place).where(Place.path.in_(paths)).order_by(Place.id)).scalars())


def _household(viewer: Viewer) -> tuple[Call, Place]:
    assert viewer.call is not None
    found = households(viewer.call)
    if not found:
        raise PageRefused(403, "the home pages are for residents")
    return viewer.call, found[0]


def _back(tv: bool, done: str | None = None) -> Response:
    query = "&".join(part for part in ("tv=1" if tv else "", f"done={done}" if done else "") if part)
    return RedirectResponse("/home" + (f"?{query}" if query else ""), status_code=303)


def _writable(device: Device, capability: str) -> bool:
    return any(isinstance(c, dict) and c.get("capability") == capability and c.get("writable")
               for c in device.capabilities or [])


def _controls(device: Device) -> dict[str, Capability]:
    """The tile's controls: the capabilities of ``TILE_CONTROLS`` the device says it can set (on
    its main endpoint, as the page sends them). What a value may be is the command service's
    business; the tile only offers sensible steps within the capability's range."""
    offered = {c.get("capability") for c in device.capabilities or []
               if isinstance(c, dict) and c.get("writable") and not c.get("endpoint")}
    return {name: CAPABILITIES[name] for name in TILE_CONTROLS if name in offered}


@dataclass(frozen=True)
class TileCommand:
    """The latest command a tile mentions: on its way, or recently failed."""

    status: CommandStatus
    recent: bool


def _latest_commands(call: Call, device_ids: list[str]) -> dict[str, TileCommand]:
    """Each device's newest command of the last few minutes, in one query (the devices are the
    viewer's own: the caller found them in the viewer's household or through the policy)."""
    if not device_ids:
        return {}
    now = call.now()
    rows = call.session.execute(
        select(DeviceCommand.device_id, DeviceCommand.status, DeviceCommand.requested_at, DeviceCommand.completed_at)
        .where(DeviceCommand.device_id.in_(device_ids), DeviceCommand.requested_at >= now - COMMAND_WINDOW)
        .order_by(DeviceCommand.requested_at)).all()
    latest = {row.device_id: row for row in rows}  # ordered: the newest wins
    return {device_id: TileCommand(row.status, (row.completed_at or row.requested_at) >= now - RECENT_FAILURE)
            for device_id, row in latest.items()}


def _tile(request: Request, viewer: Viewer, call: Call, device_id: str, *, problem: str | None = None) -> Response:
    device, latest = device_state.device_state(call, device_id)
    values = {value.capability: value for value in latest}
    return _render(request, viewer, "home/_device.html", device=device, values=values,
                   switchable=_writable(device, SWITCHABLE), controls=_controls(device),
                   command=_latest_commands(call, [device.id]).get(device.id),
                   problem=problem)


def _capability_label(request: Request, locale: str) -> Callable[[str], str]:
    """A capability's name in the viewer's words, from the same macro the tiles use."""
    macros = request.app.state.page_renderer.environments[locale].get_template("_capabilities.html").module
    return lambda capability: str(macros.label(capability)).strip()


def _series(call: Call, targets: list[tuple[Device, str]], label: Callable[[str], str],
            points: int = 48) -> dict[str, Any] | None:
    datasets: list[dict[str, Any]] = []
    labels: list[str] = []
    for device, capability in targets[:4]:
        series = device_state.device_series(call, device.id, capability, None, None, None, points)
        if not series.buckets:
            continue
        if not labels:
            labels = [b.start.isoformat() for b in series.buckets]
        by_start = {b.start.isoformat(): b.avg for b in series.buckets}
        datasets.append({"label": f"{device.name or device.id} · {label(capability)}",
                         "data": [by_start.get(label) for label in labels]})
    return {"type": "line", "labels": labels, "datasets": datasets} if datasets else None


def _my_alarms(call: Call, household: Place) -> list[Any]:
    return alarms.list_alarms(call, PageRequest(limit=10, sort="-last_at"), status="open",
                              place_id=household.id).items


def _home(request: Request, viewer: Viewer, *, status_code: int = 200, problem: str | None = None) -> Response:
    call, household = _household(viewer)
    devices = list(call.session.execute(select(Device).where(
        Device.place_id == household.id, Device.status.in_([DeviceStatus.CLAIMED, DeviceStatus.ACTIVE])
    ).order_by(Device.room, Device.name, Device.id)).scalars())
    _, values = device_state.place_state(call, household.id)
    state: dict[str, dict[str, Any]] = defaultdict(dict)
    for value in values:
        state[value.device_key][value.capability] = value
    rooms: dict[str, list[Device]] = defaultdict(list)
    for device in devices:
        rooms[device.room or ""].append(device)
    scene_list = [{"id": s.id, "name": s.name.model_dump(by_alias=True), "builtin": s.builtin}
                  for s in scenes.list_scenes(call, household.id)]
    mode = modes.get_mode(call, household.id)
    my_alarms = _my_alarms(call, household)
    charts = {}
    if not viewer.tv:
        energy = [(d, c) for d in devices for c in ENERGY if c in state.get(d.id, {})]
        environment = [(d, c) for d in devices for c in ENVIRONMENT if c in state.get(d.id, {})]
        label = _capability_label(request, viewer.locale)
        charts = {key: json.dumps(chart, ensure_ascii=False) for key, chart in
                  (("energy", _series(call, energy, label)), ("environment", _series(call, environment, label)))
                  if chart}
    reports = workorders.list_work_orders(call, PageRequest(limit=10), mine=True).items
    categories = [c for c in workorders.list_categories(call.session) if c.public]
    done = request.query_params.get("done")
    return _render(request, viewer, "home/index.html", status_code=status_code, household=household,
                   rooms=dict(sorted(rooms.items(), key=lambda kv: (kv[0] == "", kv[0]))), state=state,
                   switchable_ids={d.id for d in devices if _writable(d, SWITCHABLE)},
                   device_controls={d.id: _controls(d) for d in devices}, scenes=scene_list,
                   commands=_latest_commands(call, [d.id for d in devices]),
                   mode=mode.mode.value, alarms=my_alarms, charts=charts, reports=reports,
                   categories=categories, done=done if done in DONE else None, problem=problem,
                   devices=devices, transport=getattr(request.app.state, "device_publisher", None) is not None)


@router.get("/home", response_class=HTMLResponse)
def home(request: Request, viewer: SignedIn) -> Response:
    assert viewer.call is not None
    if not households(viewer.call):
        return RedirectResponse("/console", status_code=303)
    return _home(request, viewer)


@router.get("/home/alarms", response_class=HTMLResponse)
def alarms_section(request: Request, viewer: SignedIn) -> Response:
    """The "my alarms" card alone: the page fetches it when an alarm event arrives."""
    call, household = _household(viewer)
    return _render(request, viewer, "home/_alarms.html", alarms=_my_alarms(call, household))


@router.get("/home/devices/{device_id}/tile", response_class=HTMLResponse)
def tile(request: Request, viewer: SignedIn, device_id: str) -> Response:
    """One device's tile: the page fetches it when the device's state changes (live event) and
    while a command is on its way."""
    call, _ = _household(viewer)
    try:
        return _tile(request, viewer, call, device_id[:40])
    except CityWeaveError as exc:
        raise refuse(exc) from exc


@router.post("/home/devices/{device_id}/switch")
def switch(request: Request, viewer: SignedIn, device_id: str,
           value: Annotated[str, Form(max_length=3)] = "", tv: Annotated[bool, Form()] = False) -> Response:
    """On/off for a light or a plug, through the registry's commands (scope checked there).

    From the page's script (htmx) the answer is the device's tile, showing the command on its way:
    the page stays, and with it the live stream that brings the device's echo. Without script it
    is the whole home again."""
    if value not in ("on", "off"):
        raise PageRefused(422, "value: on or off")
    return _command(request, viewer, device_id[:40], SWITCHABLE, value == "on", tv)


@router.post("/home/devices/{device_id}/set")
def set_value(request: Request, viewer: SignedIn, device_id: str,
              capability: Annotated[str, Form(max_length=40)] = "",
              value: Annotated[str, Form(max_length=40)] = "", tv: Annotated[bool, Form()] = False) -> Response:
    """One setting of a device (brightness, air conditioner mode and temperature, curtain, valve,
    locking), sent like the switch. The command service decides what may be set and to what: a
    capability the device cannot set or a value out of its range is refused there and said on the
    tile. Unlocking is refused here: a door is not opened from a web page."""
    known = find_capability(capability)  # by name or alias ("lock_state" is the lock too)
    if known is not None and known.name == "lock" and value.strip().lower() != LOCKED:
        call, _ = _household(viewer)
        return _refused(request, viewer, call, device_id[:40], "unlock", 403)
    return _command(request, viewer, device_id[:40], capability, value, tv)


# Why the command service refused a setting, as the tile says it.
_REFUSALS = {Reason.OUT_OF_RANGE: "range", Reason.WRONG_TYPE: "value", Reason.INVALID_VALUE: "value",
             Reason.UNIT_MISMATCH: "value"}


def _command(request: Request, viewer: Viewer, device_id: str, capability: str, value: Any, tv: bool) -> Response:
    call, _ = _household(viewer)
    state = request.app.state
    try:
        commands.send_command(
            call, device_id, capability, value, None,
            publisher=getattr(state, "device_publisher", None), tracker=getattr(state, "command_tracker", None),
            directory=getattr(state, "device_directory", None),
            adapters_by_name=getattr(state, "device_adapters", None))
    except commands.TransportUnavailable:
        call.session.rollback()  # nothing of it stays; the page says why
        return _refused(request, viewer, call, device_id, "transport", 503)
    except CommandRejected as exc:
        call.session.rollback()
        return _refused(request, viewer, call, device_id, _REFUSALS.get(exc.reason, "capability"), 422)
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    if request.headers.get("HX-Request") == "true":
        return _tile(request, viewer, call, device_id)
    return _back(tv, "sent")


def _refused(request: Request, viewer: Viewer, call: Call, device_id: str, problem: str, status: int) -> Response:
    """From the page's script: the tile with the reason, as a 200 (htmx swaps only successful
    answers). Without script: the whole home with the reason and the status."""
    if request.headers.get("HX-Request") == "true":
        try:
            return _tile(request, viewer, call, device_id, problem=problem)
        except CityWeaveError as exc:  # not a device of this household: 404 as everywhere
            raise refuse(exc) from exc
    try:
        device_state.device_state(call, device_id)
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    return _home(request, viewer, status_code=status, problem=problem)


@router.post("/home/scenes/{scene_id}/run")
def run_scene(request: Request, viewer: SignedIn, scene_id: str, tv: Annotated[bool, Form()] = False) -> Response:
    call, household = _household(viewer)
    state = request.app.state
    try:
        scenes.run(call, household.id, scene_id[:40], publisher=getattr(state, "device_publisher", None),
                   tracker=getattr(state, "command_tracker", None),
                   directory=getattr(state, "device_directory", None),
                   adapters_by_name=getattr(state, "device_adapters", None))
    except commands.TransportUnavailable:
        call.session.rollback()  # nothing of it stays; the page says why
        return _home(request, viewer, status_code=503, problem="transport")
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    return _back(tv, "scene")


@router.post("/home/mode")
def set_mode(request: Request, viewer: SignedIn, mode: Annotated[str, Form(max_length=10)] = "",
             tv: Annotated[bool, Form()] = False) -> Response:
    """Arm and disarm (and away, sleep): ``rules.modes.change_mode``, audited there."""
    call, household = _household(viewer)
    if mode not in {m.value for m in Mode}:
        raise PageRefused(422, "mode: home, away, armed or sleep")
    try:
        modes.change_mode(call, household.id, Mode(mode))
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    return _back(tv, "mode")


@router.post("/home/alarms/{alarm_id}/resolve")
def im_fine(request: Request, viewer: SignedIn, alarm_id: str, tv: Annotated[bool, Form()] = False) -> Response:
    """The resident's "I'm fine": resolves an alarm of their household with that note."""
    call, _ = _household(viewer)
    try:
        change = alarms.resolve(call, alarm_id[:40], "I'm fine (resident)")
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    publish_after_commit(request, call, change)
    return _back(tv, "resolved")


# -- reports -----------------------------------------------------------------------------------------
@router.post("/home/reports")
async def submit_report(request: Request, viewer: SignedIn,
                        category_id: Annotated[str, Form(max_length=40)] = "",
                        description: Annotated[str, Form(max_length=4000)] = "",
                        photo: UploadFile | None = None) -> Response:
    """A report from my home, with an optional photo (cleaned: re-encoded, metadata dropped)."""
    call, household = _household(viewer)
    data = await photo.read(photos.MAX_UPLOAD_BYTES + 1) if photo is not None and photo.filename else b""
    try:
        order = workorders.submit(call, WorkOrderSubmit(category_id=category_id, description=description.strip(),
                                                        place_id=household.id))
        if data:
            workorders.add_photo(call, order.id, photos.clean(data, photo.content_type if photo else None))
    except (CityWeaveError, ValidationError) as exc:
        raise refuse(exc) from exc
    return RedirectResponse(f"/home/reports/{order.id}?done=report", status_code=303)


@router.get("/home/reports/{work_order_id}", response_class=HTMLResponse)
def report(request: Request, viewer: SignedIn, work_order_id: str) -> Response:
    call, _ = _household(viewer)
    try:
        order = workorders.get(call, work_order_id[:40])
        events = workorders.history(call, order.id)
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    category = workorders.get_category(call.session, order.category_id, active_only=False)
    done = request.query_params.get("done")
    return _render(request, viewer, "home/report.html", order=order, events=events, category=category,
                   photos=workorders.photo_ids(call.session, order.id), done=done if done in DONE else None,
                   mine=order.reporter_user_id == call.principal.user_id)


@router.post("/home/reports/{work_order_id}/rate")
def rate(request: Request, viewer: SignedIn, work_order_id: str,
         satisfaction: Annotated[int, Form()] = 0,
         comment: Annotated[str, Form(max_length=2000)] = "") -> Response:
    call, _ = _household(viewer)
    try:
        workorders.rate(call, work_order_id[:40], RateInput(satisfaction=satisfaction, comment=comment.strip() or None))
    except (CityWeaveError, ValidationError) as exc:
        raise refuse(exc) from exc
    return RedirectResponse(f"/home/reports/{work_order_id[:40]}?done=rated", status_code=303)


@router.get("/photos/{work_order_id}/{photo_id}")
def photo(viewer: SignedIn, work_order_id: str, photo_id: str) -> Response:
    """A report's photo, for whoever may read the work order (its reporter, the handling side)."""
    assert viewer.call is not None
    try:
        row = workorders.get_photo(viewer.call, work_order_id[:40], photo_id[:40])
    except CityWeaveError as exc:
        raise refuse(exc) from exc
    return Response(row.data, media_type=row.content_type,
                    headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"})

