"""Scenes: named lists of actions a household runs with one tap (or a rule runs for it).

Four built-in scenes are offered to every household and are not stored (``BUILTIN_SCENES``):
离家 leave home (lights and air conditioning off, mode armed), 回家 come home (mode home, the hall
light on), 睡眠 sleep (lights off, mode sleep) and 节能 energy saving (air conditioning at 26 °C,
fan auto), which the example automation ``energy-saving-night`` runs every night. Households add
their own (table ``scenes``). A scene holds only ``command`` and ``set_mode`` actions.

Every change and every run is audited with the household's place path; a run's commands are also
audited one by one by the registry (``device.command``) and published only after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.authz.policy import Action
from cityweave.context import Call
from cityweave.db.base import new_id
from cityweave.devices.adapters import VendorAdapter
from cityweave.devices.binding import DeviceDirectory
from cityweave.devices.registry import commands as registry_commands
from cityweave.errors import Conflict, NotFound
from cityweave.places.models import Place
from cityweave.rules import access, actions
from cityweave.rules.model import Names, RuleSpec, SceneSpec, parse
from cityweave.rules.models import Scene

_LIGHTS_OFF = {"type": "command", "target": {"device_type": "light"}, "capability": "on_off", "value": False}

BUILTIN_SCENES: dict[str, SceneSpec] = {
    key: SceneSpec.model_validate(spec) for key, spec in {
        "leave-home": {"name": {"zh-CN": "离家", "en": "Leave home"}, "actions": [
            _LIGHTS_OFF,
            {"type": "command", "target": {"device_type": "climate"}, "capability": "hvac_mode", "value": "off"},
            {"type": "set_mode", "mode": "armed"},
        ]},
        "come-home": {"name": {"zh-CN": "回家", "en": "Come home"}, "actions": [
            {"type": "set_mode", "mode": "home"},
            {"type": "command", "target": {"device_type": "light", "names": ["玄关", "门厅", "hall", "entrance"]},
             "capability": "on_off", "value": True},
        ]},
        "sleep": {"name": {"zh-CN": "睡眠", "en": "Sleep"}, "actions": [
            _LIGHTS_OFF,
            {"type": "set_mode", "mode": "sleep"},
        ]},
        "energy-saving": {"name": {"zh-CN": "节能", "en": "Energy saving"}, "actions": [
            {"type": "command", "target": {"device_type": "climate"}, "capability": "target_temperature",
             "value": 26},
            {"type": "command", "target": {"device_type": "climate"}, "capability": "fan_mode", "value": "auto"},
        ]},
    }.items()
}

# Automations offered as starting points (``GET …/automations/templates``).
TEMPLATES: dict[str, RuleSpec] = {
    "energy-saving-night": RuleSpec.model_validate({
        "key": "energy-saving-night",
        "name": {"zh-CN": "夜间节能", "en": "Energy saving at night"},
        "trigger": {"type": "schedule", "at": "23:30"},
        "actions": [{"type": "scene", "scene_id": "energy-saving"}],
    }),
    "lights-off-when-leaving": RuleSpec.model_validate({
        "key": "lights-off-when-leaving",
        "name": {"zh-CN": "离家关灯", "en": "Lights off when everyone has left"},
        "trigger": {"type": "schedule", "at": "09:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
        "conditions": [{"type": "mode", "in": ["away", "armed"]}],
        "actions": [_LIGHTS_OFF],
    }),
}


@dataclass(frozen=True, slots=True)
class SceneView:
    id: str
    household_id: str
    name: Names
    actions: list[Any]
    builtin: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _view(row: Scene) -> SceneView:
    spec = SceneSpec.model_validate({"name": row.name, "actions": row.actions})
    return SceneView(row.id, row.household_id, spec.name, list(spec.actions), False, row.created_at, row.updated_at)


def _builtin_view(household_id: str, key: str) -> SceneView:
    spec = BUILTIN_SCENES[key]
    return SceneView(key, household_id, spec.name, list(spec.actions), True)


def scene_actions(session: Session, household_id: str, scene_id: str) -> list[Any] | None:
    """The actions of a built-in or the household's own scene; None if there is none."""
    if scene_id in BUILTIN_SCENES:
        return list(BUILTIN_SCENES[scene_id].actions)
    row = session.get(Scene, scene_id)
    if row is None or row.household_id != household_id:
        return None
    return list(SceneSpec.model_validate({"name": row.name, "actions": row.actions}).actions)


def list_scenes(call: Call, household_id: str) -> list[SceneView]:
    place = access.household(call, household_id)
    own = call.session.execute(
        select(Scene).where(Scene.household_id == place.id).order_by(Scene.created_at, Scene.id)
    ).scalars()
    return [_builtin_view(place.id, key) for key in BUILTIN_SCENES] + [_view(row) for row in own]


def _own(call: Call, place: Place, scene_id: str) -> Scene:
    row = call.session.get(Scene, scene_id)
    if row is None or row.household_id != place.id:
        raise NotFound(f"no scene {scene_id!r}")
    return row


def get_scene(call: Call, household_id: str, scene_id: str) -> SceneView:
    place = access.household(call, household_id)
    if scene_id in BUILTIN_SCENES:
        return _builtin_view(place.id, scene_id)
    return _view(_own(call, place, scene_id))


def _check_devices(call: Call, place: Place, spec: SceneSpec) -> None:
    """Device ids named in a scene must be devices of this household (selectors may match none)."""
    from cityweave.errors import FieldError, Invalid
    from cityweave.rules.model import CommandAction

    ids = {d.id for d in actions.household_devices(call.session, place.id)}
    errors = [
        FieldError(f"/actions/{i}/target", f"no device {a.target!r} in service in this household")
        for i, a in enumerate(spec.actions)
        if isinstance(a, CommandAction) and isinstance(a.target, str) and a.target not in ids
    ]
    if errors:
        raise Invalid(errors)


def create_scene(call: Call, household_id: str, data: Mapping[str, Any]) -> SceneView:
    place = access.household(call, household_id, Action.CREATE)
    spec = parse(SceneSpec, data)
    _check_devices(call, place, spec)
    now = call.now()
    document = spec.model_dump(mode="json")
    row = Scene(id=new_id("scn"), household_id=place.id, household_path=place.path, name=document["name"],
                actions=document["actions"], created_by=call.principal.user_id, created_at=now,
                updated_by=call.principal.user_id, updated_at=now)
    call.session.add(row)
    call.session.flush()
    call.audit("scene.create", "scene", row.id, place_path=place.path,
               details={"household": place.id, "name": document["name"]})
    return _view(row)


def update_scene(call: Call, household_id: str, scene_id: str, data: Mapping[str, Any]) -> SceneView:
    place = access.household(call, household_id, Action.UPDATE)
    if scene_id in BUILTIN_SCENES:
        raise Conflict("built-in scenes cannot be changed; create a scene of your own")
    row = _own(call, place, scene_id)
    spec = parse(SceneSpec, data)
    _check_devices(call, place, spec)
    document = spec.model_dump(mode="json")
    row.name, row.actions = document["name"], document["actions"]
    row.updated_by, row.updated_at = call.principal.user_id, call.now()
    call.session.flush()
    call.audit("scene.update", "scene", row.id, place_path=place.path,
               details={"household": place.id, "name": document["name"]})
    return _view(row)


def delete_scene(call: Call, household_id: str, scene_id: str) -> None:
    place = access.household(call, household_id, Action.DELETE)
    if scene_id in BUILTIN_SCENES:
        raise Conflict("built-in scenes cannot be deleted")
    row = _own(call, place, scene_id)
    from cityweave.rules import automations

    users = automations.using_scene(call.session, place.id, scene_id)
    if users:
        raise Conflict(f"the scene is used by automations {sorted(users)}; change them first")
    call.session.delete(row)
    call.audit("scene.delete", "scene", scene_id, place_path=place.path, details={"household": place.id})


def dry_run(call: Call, household_id: str, scene_id: str, *,
            adapters_by_name: Mapping[str, VendorAdapter] | None = None,
            directory: DeviceDirectory | None = None) -> list[actions.PlannedEffect]:
    """What running the scene would do now; changes nothing (reading the scene is enough)."""
    scene = get_scene(call, household_id, scene_id)
    return actions.plan(call.session, scene.household_id, scene.actions, call.now(),
                        adapters_by_name=adapters_by_name, directory=directory)


def run(call: Call, household_id: str, scene_id: str, *,
        publisher: registry_commands.Publisher | None,
        tracker: registry_commands.CommandTracker | None = None,
        directory: DeviceDirectory | None = None,
        adapters_by_name: Mapping[str, VendorAdapter] | None = None) -> list[actions.ExecutedEffect]:
    """Run the scene as the caller: needs ``automation`` update on the household (residents of
    it, platform admins). Commands are logged now and published after the commit."""
    place = access.household(call, household_id, Action.UPDATE)
    scene = get_scene(call, household_id, scene_id)
    effects = actions.plan(call.session, place.id, scene.actions, call.now(),
                           adapters_by_name=adapters_by_name, directory=directory)
    done = actions.execute(call, place.id, place.path, effects, publisher=publisher, tracker=tracker,
                           directory=directory, adapters_by_name=adapters_by_name, via=f"scene:{scene_id}")
    call.audit("scene.run", "scene", scene_id, place_path=place.path, details={
        "household": place.id,
        "commands": [d.command_id for d in done if d.command_id],
        "skipped": sum(1 for d in done if d.status == "skipped"),
    })
    return done


def run_for_rule(session: Session, household_id: str, scene_id: str, now: datetime, *,
                 commands: Any, rule_key: str | None = None) -> int:
    """The rule engine runs a scene inside its transaction (system principal, its command port)."""
    found = scene_actions(session, household_id, scene_id)
    if found is None:
        return 0
    place = session.get(Place, household_id)
    effects = actions.plan(session, household_id, found, now)
    return actions.execute_for_rule(session, household_id, place.path if place else None, effects, now,
                                    commands=commands, rule_key=rule_key or f"scene:{scene_id}")
