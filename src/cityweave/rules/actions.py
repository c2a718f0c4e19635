"""What a list of actions would do in one household, and doing it.

:func:`plan` resolves every action against the household's devices *as they are now*: a device
id or a selector (type, capability, name words) becomes the concrete devices that are claimed or
active in that household, each command is validated (``Command.create``), checked against what the
device says it can do, and encoded by the device's adapter, so the plan shows the very topic and
payload that would be published. Nothing is written. A step that cannot happen carries a
``problem`` instead of failing the plan: that is what a dry run shows, and what execution skips.

:func:`execute` carries out a plan for a caller (a resident running a scene): commands go through
the registry's ``send_command`` (authorised, logged, audited, published only after the commit),
mode changes through ``modes.set_mode``. The rule engine executes plans with its own command port
(:func:`execute_for_rule`), inside the ingest transaction.

Alarms, notifications, work orders and webhooks are effects of rules, not of scenes; the plan lists
them (kind and parameters) and the engine performs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.context import Call
from cityweave.devices import adapters
from cityweave.devices.adapters import VendorAdapter
from cityweave.devices.binding import DeviceDirectory, InMemoryDirectory
from cityweave.devices.command import Command, CommandRejected
from cityweave.devices.registry import commands as registry_commands
from cityweave.devices.registry import service as registry
from cityweave.devices.registry.models import BOUND_STATUSES, Device
from cityweave.devices.types import DEVICE_TYPES
from cityweave.errors import CityWeaveError
from cityweave.rules.model import CommandAction, DeviceSelector, Mode, SceneAction, SetModeAction


class PlannedEffect(BaseModel):
    """One thing an action would do. ``problem`` set: it would not happen, and why."""

    action_index: int
    type: str
    device_id: str | None = None
    device_name: str | None = None
    device_type: str | None = None
    capability: str | None = None
    endpoint: str | None = None
    value: Any = None
    topic: str | None = None
    payload: str | None = None
    mode: Mode | None = None
    scene_id: str | None = None
    detail: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def runnable(self) -> bool:
        return self.problem is None


class ExecutedEffect(BaseModel):
    effect: PlannedEffect
    command_id: str | None = None
    status: str  # "sent", "failed", "done" (mode set), "skipped"
    detail: str | None = None


def household_devices(session: Session, household_id: str) -> list[Device]:
    """Devices in the household that can be bound (claimed or active), by id."""
    return list(session.execute(
        select(Device).where(Device.place_id == household_id, Device.status.in_(BOUND_STATUSES)).order_by(Device.id)
    ).scalars())


def writable_endpoints(device: Device, capability: str) -> list[str | None] | None:
    """Endpoints on which the device declares ``capability`` writable; None if it declares nothing
    at all (hand-registered without a description: its adapter decides)."""
    refs = device.capabilities or []
    if not refs:
        return None
    return [r.get("endpoint") for r in refs if r.get("capability") == capability and r.get("writable")]


def readable_capabilities(device: Device) -> set[str]:
    refs = device.capabilities or []
    if refs:
        return {str(r.get("capability")) for r in refs}
    known = DEVICE_TYPES.get(device.device_type or "")
    return set(known.capabilities) if known else set()


def selects(device: Device, selector: DeviceSelector, capability: str) -> bool:
    if selector.device_type is not None and device.device_type != selector.device_type:
        return False
    if selector.names:
        name = (device.name or "").casefold()
        if not any(word.casefold() in name for word in selector.names):
            return False
    wanted = selector.capability or capability
    endpoints = writable_endpoints(device, wanted)
    if endpoints is None:
        known = DEVICE_TYPES.get(device.device_type or "")
        return known is not None and wanted in known.capabilities
    return bool(endpoints)


def plan(session: Session, household_id: str, actions: Sequence[Any], now: datetime | None = None, *,
         adapters_by_name: Mapping[str, VendorAdapter] | None = None,
         directory: DeviceDirectory | None = None,
         devices: Sequence[Device] | None = None) -> list[PlannedEffect]:
    """The effects of ``actions`` (parsed action models) in the household; writes nothing.
    ``now`` is accepted for symmetry with the engine (plans do not depend on time today)."""
    del now
    in_home = list(devices) if devices is not None else household_devices(session, household_id)
    effects: list[PlannedEffect] = []
    for index, action in enumerate(actions):
        if isinstance(action, CommandAction):
            effects.extend(_plan_command(index, action, in_home, adapters_by_name, directory))
        elif isinstance(action, SetModeAction):
            effects.append(PlannedEffect(action_index=index, type="set_mode", mode=action.mode))
        elif isinstance(action, SceneAction):
            effects.extend(_plan_scene(session, household_id, index, action, in_home, adapters_by_name, directory))
        else:
            effects.append(PlannedEffect(action_index=index, type=action.type,
                                         detail=action.model_dump(mode="json", exclude={"type"})))
    return effects


def _plan_scene(session: Session, household_id: str, index: int, action: SceneAction, in_home: list[Device],
                adapters_by_name: Mapping[str, VendorAdapter] | None,
                directory: DeviceDirectory | None) -> list[PlannedEffect]:
    from cityweave.rules import scenes  # scenes plan through this module

    found = scenes.scene_actions(session, household_id, action.scene_id)
    if found is None:
        return [PlannedEffect(action_index=index, type="scene", scene_id=action.scene_id,
                              problem=f"no scene {action.scene_id!r} in this household")]
    inner = plan(session, household_id, found, adapters_by_name=adapters_by_name, directory=directory,
                 devices=in_home)
    return [effect.model_copy(update={"action_index": index, "scene_id": action.scene_id}) for effect in inner]


def _plan_command(index: int, action: CommandAction, in_home: list[Device],
                  adapters_by_name: Mapping[str, VendorAdapter] | None,
                  directory: DeviceDirectory | None) -> list[PlannedEffect]:
    base = {"action_index": index, "type": "command", "capability": action.capability, "value": action.value,
            "endpoint": action.endpoint}
    if isinstance(action.target, str):
        targets = [d for d in in_home if d.id == action.target]
        if not targets:
            return [PlannedEffect(**base, device_id=action.target,
                                  problem=f"no device {action.target!r} in service in this household")]
    else:
        targets = [d for d in in_home if selects(d, action.target, action.capability)]
        if not targets:
            return [PlannedEffect(**base, problem="no device in this household matches "
                                  + action.target.model_dump_json(exclude_defaults=True))]
    effects: list[PlannedEffect] = []
    for device in targets:
        if action.endpoint is not None:
            endpoints: list[str | None] = [action.endpoint]
        else:
            declared = writable_endpoints(device, action.capability)
            endpoints = [None] if not declared else list(dict.fromkeys(declared))
        for endpoint in endpoints:
            effects.append(_encode(device, action.capability, action.value, endpoint, index,
                                   adapters_by_name, directory))
    return effects


def _encode(device: Device, capability: str, value: Any, endpoint: str | None, index: int,
            adapters_by_name: Mapping[str, VendorAdapter] | None,
            directory: DeviceDirectory | None) -> PlannedEffect:
    effect = PlannedEffect(action_index=index, type="command", device_id=device.id, device_name=device.name,
                           device_type=device.device_type, capability=capability, endpoint=endpoint, value=value)
    try:
        command = Command.create(device.id, capability, value, endpoint)
        registry_commands._offered(device, command)
        binding = registry.binding_of(device)
        adapter = (adapters_by_name or {}).get(device.adapter) or adapters.create(
            device.adapter, directory=directory or InMemoryDirectory([binding]))
        encoded = adapter.encode(command, binding)
    except CommandRejected as exc:
        return effect.model_copy(update={"problem": f"{exc.reason}: {exc.detail}"})
    except Exception as exc:  # noqa: BLE001 - an adapter that cannot encode is a planning problem
        return effect.model_copy(update={"problem": f"the {device.adapter} adapter cannot encode this: {exc}"[:300]})
    try:
        payload = encoded.payload.decode("utf-8")
    except UnicodeDecodeError:
        payload = encoded.payload.hex()
    return effect.model_copy(update={"value": command.value, "topic": encoded.topic, "payload": payload})


def execute(call: Call, household_id: str, place_path: str, effects: Sequence[PlannedEffect], *,
            publisher: registry_commands.Publisher | None,
            tracker: registry_commands.CommandTracker | None = None,
            directory: DeviceDirectory | None = None,
            adapters_by_name: Mapping[str, VendorAdapter] | None = None,
            via: str | None = None) -> list[ExecutedEffect]:
    """Carry out a plan as ``call.principal``: commands are logged now and published after the
    commit; mode changes are stored and audited. Steps with a problem, and kinds that only the
    rule engine performs, are reported as skipped. 503 (``TransportUnavailable``) before anything
    happens when there are commands to send and no transport."""
    from cityweave.rules import modes

    if publisher is None and any(e.type == "command" and e.runnable for e in effects):
        raise registry_commands.TransportUnavailable(
            "no device transport running: start the ingest service to send commands")
    done: list[ExecutedEffect] = []
    for effect in effects:
        if not effect.runnable:
            done.append(ExecutedEffect(effect=effect, status="skipped", detail=effect.problem))
        elif effect.type == "command" and effect.device_id and effect.capability:
            try:
                row = registry_commands.send_command(
                    call, effect.device_id, effect.capability, effect.value, effect.endpoint,
                    publisher=publisher, tracker=tracker, directory=directory, adapters_by_name=adapters_by_name)
            except registry_commands.TransportUnavailable:
                raise
            except CityWeaveError as exc:
                done.append(ExecutedEffect(effect=effect, status="skipped", detail=exc.detail))
                continue
            done.append(ExecutedEffect(effect=effect, command_id=row.id, status=str(row.status)))
        elif effect.type == "set_mode" and effect.mode is not None:
            modes.set_mode(call, household_id, place_path, effect.mode, via=via)
            done.append(ExecutedEffect(effect=effect, status="done"))
        else:
            done.append(ExecutedEffect(effect=effect, status="skipped", detail="performed by the rule engine"))
    return done


def execute_for_rule(session: Session, household_id: str, place_path: str | None,
                     effects: Sequence[PlannedEffect], now: datetime, *, commands: Any, rule_key: str) -> int:
    """The engine's way to run a plan in the ingest transaction: ``commands`` is its command port
    (``send(session, device, capability, value, endpoint, rule_key=, now=)``), mode changes are
    stored and audited as the platform. Returns how many effects ran."""
    from cityweave.audit import trail
    from cityweave.authz.policy import Principal
    from cityweave.rules import modes

    ran = 0
    for effect in effects:
        if not effect.runnable:
            continue
        if effect.type == "command" and effect.device_id and effect.capability:
            device = session.get(Device, effect.device_id)
            if device is None or device.status not in BOUND_STATUSES:
                continue
            try:
                commands.send(session, device, effect.capability, effect.value, effect.endpoint,
                              rule_key=rule_key, now=now)
            except CommandRejected:
                continue
            ran += 1
        elif effect.type == "set_mode" and effect.mode is not None:
            previous = modes.store(session, household_id, effect.mode, now, actor_id="system",
                                   actor_name=f"rule:{rule_key}")
            trail.append(session, actor=Principal.system("rules"), action="household.mode", object_kind="place",
                         object_id=household_id, place_path=place_path, at=now,
                         details={"mode": effect.mode.value, "previous": previous.value, "via": rule_key})
            ran += 1
    return ran
