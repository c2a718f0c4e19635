"""A household's automations: stored RuleSpecs, checked against the household before they run.

On top of the model's own validation (:mod:`cityweave.rules.model`), saving an automation checks
it against the household *now*:

* device ids named in the trigger, the conditions and commands are devices of this household in
  service, and a watched device reports the watched capability;
* commands aimed at a device id can be sent to it (writable there, encodable by its adapter);
* scenes named exist (built-in or the household's own);
* no loop: an automation whose commands would fire another automation (the command's capability
  and value satisfy its trigger, on a device it watches) which in turn fires the first again, is
  refused, as is one that fires itself.

Any of these is a 422 naming the field. After a change commits, :class:`AutomationsChanged` goes
out on the context's bus, so the rule engine reloads that household's rules (``enabled_rules``). A dry run (:func:`dry_run`) reports the same problems
without refusing, plus what the rule watches, the devices it would watch and what it would
command. Selectors that match no device today are only a warning: the family may buy the lamp later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cityweave.authz.policy import Action
from cityweave.context import Call
from cityweave.db.base import new_id
from cityweave.db.engine import on_commit
from cityweave.devices.adapters import VendorAdapter
from cityweave.devices.binding import DeviceDirectory
from cityweave.devices.registry.models import Device
from cityweave.errors import Conflict, FieldError, Invalid, NotFound
from cityweave.places.models import Place
from cityweave.rules import access, actions, scenes
from cityweave.rules.model import (
    AvailabilityTrigger,
    BatteryLowTrigger,
    CommandAction,
    DeviceStateCondition,
    DurationTrigger,
    RepeatTrigger,
    RuleSpec,
    SceneAction,
    ScheduleTrigger,
    StateTrigger,
    ThresholdTrigger,
    compare,
    parse_rule,
)
from cityweave.rules.models import Automation
from cityweave.security.masking import mask_url


class Problem(BaseModel):
    pointer: str
    detail: str


class WatchedDevice(BaseModel):
    id: str
    name: str | None
    device_type: str | None
    capabilities: list[str]


class Watches(BaseModel):
    capabilities: list[str]
    devices: list[WatchedDevice]
    schedule: dict[str, Any] | None = None


class DryRun(BaseModel):
    """What a rule would do in the household, without doing it."""

    spec: dict[str, Any]
    watches: Watches
    effects: list[actions.PlannedEffect]
    problems: list[Problem]  # would be refused on saving
    warnings: list[Problem]  # saved, but something will not happen today


@dataclass
class _Checked:
    effects: list[actions.PlannedEffect]
    watched: list[Device]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _watched_devices(spec: RuleSpec, devices: list[Device]) -> list[Device]:
    trigger = spec.trigger
    if isinstance(trigger, ScheduleTrigger):
        return []
    if isinstance(trigger, AvailabilityTrigger | BatteryLowTrigger):
        types = set(trigger.device_types)
        wanted = set(getattr(trigger, "capabilities", ()) or ())
        found = []
        for d in devices:
            if (not types and not wanted) or (d.device_type in types) or (wanted & actions.readable_capabilities(d)):
                found.append(d)
        return found
    capabilities = spec.watched_capabilities()
    device_id = getattr(trigger, "device_id", None)
    return [d for d in devices if (device_id is None or d.id == device_id)
            and capabilities & actions.readable_capabilities(d)]


def check(session: Session, place: Place, spec: RuleSpec, *, exclude_id: str | None = None,
          adapters_by_name: Mapping[str, VendorAdapter] | None = None,
          directory: DeviceDirectory | None = None) -> _Checked:
    devices = actions.household_devices(session, place.id)
    by_id = {d.id: d for d in devices}
    effects = actions.plan(session, place.id, spec.actions, adapters_by_name=adapters_by_name,
                           directory=directory, devices=devices)
    result = _Checked(effects, _watched_devices(spec, devices))
    trigger = spec.trigger
    device_id = getattr(trigger, "device_id", None)
    if device_id is not None:
        device = by_id.get(device_id)
        if device is None:
            result.problems.append(Problem(pointer="/trigger/device_id",
                                           detail=f"no device {device_id!r} in service in this household"))
        elif not spec.watched_capabilities() & actions.readable_capabilities(device):
            result.problems.append(Problem(pointer="/trigger/capability",
                                           detail=f"device {device_id} does not report {trigger.capability}"))
    elif not isinstance(trigger, ScheduleTrigger) and not result.watched:
        result.warnings.append(Problem(pointer="/trigger", detail="no device of this household reports "
                                       "what this rule watches (yet)"))
    for index, condition in enumerate(spec.conditions):
        if (isinstance(condition, DeviceStateCondition) and condition.device_id is not None
                and condition.device_id not in by_id):
            result.problems.append(Problem(pointer=f"/conditions/{index}/device_id",
                                           detail=f"no device {condition.device_id!r} in service in this household"))
    for index, action in enumerate(spec.actions):
        mine = [e for e in effects if e.action_index == index]
        if isinstance(action, SceneAction) and scenes.scene_actions(session, place.id, action.scene_id) is None:
            result.problems.append(Problem(pointer=f"/actions/{index}/scene_id",
                                           detail=f"no scene {action.scene_id!r} in this household"))
            continue
        failing = [e for e in mine if e.problem]
        if not failing:
            continue
        if isinstance(action, CommandAction) and isinstance(action.target, str):
            for e in failing:
                result.problems.append(Problem(pointer=f"/actions/{index}", detail=e.problem or ""))
        else:
            for e in failing:
                result.warnings.append(Problem(pointer=f"/actions/{index}", detail=e.problem or ""))
    loop = _loop(session, place.id, spec, effects, exclude_id)
    if loop:
        result.problems.append(Problem(pointer="/actions", detail="this automation would set off a loop: "
                                       + " → ".join(loop)))
    return result


# -- loops --------------------------------------------------------------------------------------------
def _fires(spec: RuleSpec, effect: actions.PlannedEffect) -> bool:
    """Whether a command effect could set off ``spec``'s trigger."""
    trigger = spec.trigger
    if effect.type != "command" or effect.problem or effect.capability is None:
        return False
    if not isinstance(trigger, ThresholdTrigger | StateTrigger | DurationTrigger | RepeatTrigger):
        return False
    if trigger.capability != effect.capability:
        return False
    if trigger.device_id is not None and effect.device_id is not None and trigger.device_id != effect.device_id:
        return False
    if isinstance(trigger, StateTrigger):
        return bool(effect.value == trigger.to)
    if isinstance(trigger, RepeatTrigger):
        return trigger.value is None or effect.value == trigger.value
    if trigger.field is not None:
        return False
    return compare(trigger.op, effect.value, trigger.value)


def _loop(session: Session, household_id: str, spec: RuleSpec, effects: list[actions.PlannedEffect],
          exclude_id: str | None) -> list[str] | None:
    """The keys of a cycle through ``spec`` (``[spec, b, …, spec]``), or None."""
    others: dict[str, tuple[RuleSpec, list[actions.PlannedEffect]]] = {}
    rows = session.execute(select(Automation).where(
        Automation.household_id == household_id, Automation.enabled.is_(True))).scalars()
    devices = actions.household_devices(session, household_id)
    for row in rows:
        if row.id == exclude_id or row.key == spec.key:
            continue
        other = RuleSpec.model_validate(row.spec)
        others[other.key] = (other, actions.plan(session, household_id, other.actions, devices=devices))
    graph: dict[str, tuple[RuleSpec, list[actions.PlannedEffect]]] = {spec.key: (spec, effects), **others}
    if not spec.enabled:
        return None

    def successors(key: str) -> list[str]:
        _, out = graph[key]
        return [k for k, (target, _) in graph.items() if target.enabled and any(_fires(target, e) for e in out)]

    path = [spec.key]
    seen: set[str] = set()

    def visit(key: str) -> list[str] | None:
        for nxt in successors(key):
            if nxt == spec.key:
                return [*path, nxt]
            if nxt in seen:
                continue
            seen.add(nxt)
            path.append(nxt)
            found = visit(nxt)
            if found:
                return found
            path.pop()
        return None

    return visit(spec.key)


# -- operations ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AutomationsChanged:
    """A household's automations changed (committed): reload them with :func:`enabled_rules`."""

    household_id: str
    household_path: str


def _announce(call: Call, place: Place) -> None:
    bus, event = call.ctx.bus, AutomationsChanged(place.id, place.path)
    on_commit(call.session, lambda: bus.publish(event))


@dataclass(frozen=True, slots=True)
class AutomationView:
    id: str
    household_id: str
    key: str
    spec: RuleSpec
    enabled: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


def _view(row: Automation) -> AutomationView:
    return AutomationView(row.id, row.household_id, row.key, RuleSpec.model_validate(row.spec), row.enabled,
                          row.created_by, row.created_at, row.updated_at)


def _refuse(checked: _Checked) -> None:
    if checked.problems:
        raise Invalid([FieldError(p.pointer, p.detail) for p in checked.problems],
                      "The automation cannot run in this household.")


def list_automations(call: Call, household_id: str) -> list[AutomationView]:
    place = access.household(call, household_id)
    rows = call.session.execute(select(Automation).where(Automation.household_id == place.id)
                                .order_by(Automation.created_at, Automation.id)).scalars()
    return [_view(r) for r in rows]


def _own(call: Call, place: Place, automation_id: str) -> Automation:
    row = call.session.get(Automation, automation_id)
    if row is None or row.household_id != place.id:
        raise NotFound(f"no automation {automation_id!r}")
    return row


def get_automation(call: Call, household_id: str, automation_id: str) -> AutomationView:
    place = access.household(call, household_id)
    return _view(_own(call, place, automation_id))


def create_automation(call: Call, household_id: str, data: Mapping[str, Any]) -> AutomationView:
    place = access.household(call, household_id, Action.CREATE)
    spec = parse_rule(data)
    _refuse(check(call.session, place, spec))
    exists = call.session.execute(select(Automation.id).where(
        Automation.household_id == place.id, Automation.key == spec.key)).first()
    if exists:
        raise Conflict(f"this household already has an automation {spec.key!r}")
    now = call.now()
    row = Automation(id=new_id("aut"), household_id=place.id, household_path=place.path, key=spec.key,
                     spec=spec.model_dump(mode="json"), enabled=spec.enabled, created_by=call.principal.user_id,
                     created_at=now, updated_by=call.principal.user_id, updated_at=now)
    call.session.add(row)
    try:
        with call.session.begin_nested():
            call.session.flush()
    except IntegrityError:
        raise Conflict(f"this household already has an automation {spec.key!r}") from None
    call.audit("automation.create", "automation", row.id, place_path=place.path,
               details={"household": place.id, "key": spec.key, "spec": _audited(row.spec)})
    _announce(call, place)
    return _view(row)


def _audited(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as written to the audit trail: webhook URLs as scheme, host and port only (their
    paths and queries often carry the receiver's secret)."""
    out = dict(spec)
    out["actions"] = [
        {**a, "url": mask_url(a.get("url"))} if isinstance(a, Mapping) and a.get("type") == "webhook" else a
        for a in spec.get("actions") or []
    ]
    return out


def update_automation(call: Call, household_id: str, automation_id: str, data: Mapping[str, Any]) -> AutomationView:
    place = access.household(call, household_id, Action.UPDATE)
    row = _own(call, place, automation_id)
    spec = parse_rule(data)
    if spec.key != row.key:
        clash = call.session.execute(select(Automation.id).where(
            Automation.household_id == place.id, Automation.key == spec.key)).first()
        if clash:
            raise Conflict(f"this household already has an automation {spec.key!r}")
    _refuse(check(call.session, place, spec, exclude_id=row.id))
    row.key, row.spec, row.enabled = spec.key, spec.model_dump(mode="json"), spec.enabled
    row.updated_by, row.updated_at = call.principal.user_id, call.now()
    call.session.flush()
    call.audit("automation.update", "automation", row.id, place_path=place.path,
               details={"household": place.id, "key": spec.key, "spec": _audited(row.spec)})
    _announce(call, place)
    return _view(row)


def delete_automation(call: Call, household_id: str, automation_id: str) -> None:
    place = access.household(call, household_id, Action.DELETE)
    row = _own(call, place, automation_id)
    call.session.delete(row)
    call.audit("automation.delete", "automation", automation_id, place_path=place.path,
               details={"household": place.id, "key": row.key})
    _announce(call, place)


def dry_run(call: Call, household_id: str, data: Mapping[str, Any], *, exclude_id: str | None = None,
            adapters_by_name: Mapping[str, VendorAdapter] | None = None,
            directory: DeviceDirectory | None = None) -> DryRun:
    """Validate a RuleSpec (422 if it is malformed) and show what it would watch and do in this
    household; problems that saving would refuse are listed, not raised. Writes nothing."""
    place = access.household(call, household_id)
    spec = parse_rule(data)
    checked = check(call.session, place, spec, exclude_id=exclude_id, adapters_by_name=adapters_by_name,
                    directory=directory)
    schedule = spec.trigger.model_dump(mode="json") if isinstance(spec.trigger, ScheduleTrigger) else None
    watches = Watches(
        capabilities=sorted(spec.watched_capabilities()),
        devices=[WatchedDevice(id=d.id, name=d.name, device_type=d.device_type,
                               capabilities=sorted(spec.watched_capabilities() & actions.readable_capabilities(d)))
                 for d in checked.watched],
        schedule=schedule,
    )
    return DryRun(spec=spec.model_dump(mode="json"), watches=watches, effects=checked.effects,
                  problems=checked.problems, warnings=checked.warnings)


def dry_run_saved(call: Call, household_id: str, automation_id: str, *,
                  adapters_by_name: Mapping[str, VendorAdapter] | None = None,
                  directory: DeviceDirectory | None = None) -> DryRun:
    """A dry run of a saved automation against the household as it is now (devices may have come
    and gone since it was saved)."""
    place = access.household(call, household_id)
    row = _own(call, place, automation_id)
    return dry_run(call, household_id, row.spec, exclude_id=row.id, adapters_by_name=adapters_by_name,
                   directory=directory)


def using_scene(session: Session, household_id: str, scene_id: str) -> set[str]:
    """Keys of the household's automations that run ``scene_id``."""
    found: set[str] = set()
    for row in session.execute(select(Automation).where(Automation.household_id == household_id)).scalars():
        for action in row.spec.get("actions", []):
            if action.get("type") == "scene" and action.get("scene_id") == scene_id:
                found.add(row.key)
    return found


@dataclass(frozen=True, slots=True)
class StoredRule:
    automation_id: str
    household_id: str
    household_path: str
    spec: RuleSpec


def enabled_rules(session: Session, household_id: str | None = None) -> list[StoredRule]:
    """Every enabled automation (of one household, or all): what the rule engine loads."""
    stmt = select(Automation).where(Automation.enabled.is_(True))
    if household_id is not None:
        stmt = stmt.where(Automation.household_id == household_id)
    return [StoredRule(r.id, r.household_id, r.household_path, RuleSpec.model_validate(r.spec))
            for r in session.execute(stmt.order_by(Automation.id)).scalars()]


def engine_rule(stored: StoredRule) -> Any:
    """The engine's wrapper for a household's automation; alarms it raises are keyed by the
    household and the rule's key, so two households' rules never share a cause."""
    from cityweave.rules.engine import EngineRule

    return EngineRule(spec=stored.spec, group=f"{stored.spec.key}@{stored.household_id}")


def attach(engine: Any, ctx: Any) -> Any:
    """Load every household's enabled automations into ``engine`` (``set_household_rules``) and
    reload a household's whenever :class:`AutomationsChanged` arrives on ``ctx.bus``; a mode
    changed by a person (``modes.ModeChanged``) makes the engine forget its cached household facts.
    Returns the unsubscribe function. The runtime calls this once at start."""

    def reload(household_id: str | None = None) -> int:
        with ctx.db.session() as session:
            stored = enabled_rules(session, household_id)
        grouped: dict[str, list[Any]] = {}
        for rule in stored:
            grouped.setdefault(rule.household_id, []).append(engine_rule(rule))
        if household_id is not None:
            engine.set_household_rules(household_id, grouped.get(household_id, []))
        else:
            for household, rules in grouped.items():
                engine.set_household_rules(household, rules)
        return len(stored)

    def mode_changed(event: Any) -> None:
        invalidate = getattr(engine, "invalidate", None)
        if invalidate is not None:
            invalidate(event.household_id)  # the engine caches each household's mode briefly

    from cityweave.rules.modes import ModeChanged

    reload()
    offs = [ctx.bus.subscribe(AutomationsChanged, lambda event: reload(event.household_id)),
            ctx.bus.subscribe(ModeChanged, mode_changed)]

    def unsubscribe() -> None:
        for off in offs:
            off()

    return unsubscribe
