"""A household's mode, scenes and automations (``Resource.AUTOMATION``): residents of the
household read and change them, staff in scope read them, platform admins do everything.

Rule and scene bodies are validated by ``cityweave.rules.model`` (not by FastAPI), so that a 422
points into the document as sent: ``/trigger/value``, ``/actions/2/target/device_type``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response, status
from pydantic import BaseModel

from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem
from cityweave.rules import automations, modes, scenes
from cityweave.rules.actions import ExecutedEffect, PlannedEffect
from cityweave.rules.automations import AutomationView, DryRun
from cityweave.rules.model import Mode, Names, RuleSpec, SceneSpec
from cityweave.rules.scenes import SceneView
from cityweave.schema import InputModel

router = APIRouter(
    prefix="/api/v1/households/{household_id}",
    tags=["automation"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
HouseholdPath = Annotated[str, Path(max_length=64)]
ItemPath = Annotated[str, Path(max_length=64)]
# The body is validated by the rules model (for pointers into the document as sent); the schema
# is still published, so clients and the fuzzer see what a rule looks like.
Document = Annotated[Any, Body(description="JSON document, validated as documented.")]
RULE_BODY = {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/RuleSpec"}}}}}
# A scene's parts are the rule's parts (components published through RuleSpec).
_SCENE_SCHEMA = SceneSpec.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
_SCENE_SCHEMA.pop("$defs", None)
SCENE_BODY = {"requestBody": {"content": {"application/json": {"schema": _SCENE_SCHEMA}}}}


class ModeIn(InputModel):
    mode: Mode


class ModeOut(BaseModel):
    household_id: str
    mode: Mode
    changed_at: datetime | None
    changed_by: str | None


class SceneOut(BaseModel):
    id: str
    household_id: str
    name: Names
    actions: list[dict[str, Any]]
    builtin: bool
    created_at: datetime | None
    updated_at: datetime | None


class AutomationOut(BaseModel):
    id: str
    household_id: str
    key: str
    spec: RuleSpec
    enabled: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class SceneRunOut(BaseModel):
    scene_id: str
    effects: list[ExecutedEffect]


def _mode(state: modes.ModeState) -> ModeOut:
    return ModeOut(household_id=state.household_id, mode=state.mode, changed_at=state.changed_at,
                   changed_by=state.changed_by)


def _scene(view: SceneView) -> SceneOut:
    return SceneOut(id=view.id, household_id=view.household_id, name=view.name,
                    actions=[a.model_dump(mode="json", by_alias=True) for a in view.actions],
                    builtin=view.builtin, created_at=view.created_at, updated_at=view.updated_at)


def _automation(view: AutomationView) -> AutomationOut:
    return AutomationOut(id=view.id, household_id=view.household_id, key=view.key, spec=view.spec,
                         enabled=view.enabled, created_by=view.created_by, created_at=view.created_at,
                         updated_at=view.updated_at)


def _page(items: list[Any], page: Any) -> dict[str, Any]:
    return {"items": items[page.offset:page.offset + page.limit], "total": len(items), "limit": page.limit,
            "offset": page.offset}


def _transport(request: Request) -> dict[str, Any]:
    state = request.app.state
    return {"directory": getattr(state, "device_directory", None),
            "adapters_by_name": getattr(state, "device_adapters", None)}


# -- mode ------------------------------------------------------------------------------------------------
@router.get("/mode", response_model=ModeOut)
def get_mode(call: CallDep, household_id: HouseholdPath) -> ModeOut:
    """The household's mode: home, away, armed or sleep (``home`` until it is first changed)."""
    return _mode(modes.get_mode(call, household_id))


@router.put("/mode", response_model=ModeOut)
def put_mode(call: CallDep, household_id: HouseholdPath, body: ModeIn) -> ModeOut:
    """Arm, disarm, go to sleep. Audited (``household.mode``)."""
    return _mode(modes.change_mode(call, household_id, body.mode))


# -- scenes ----------------------------------------------------------------------------------------------
@router.get("/scenes", response_model=PageOut[SceneOut])
def list_scenes(call: CallDep, household_id: HouseholdPath, page: PageDep) -> dict[str, Any]:
    """Built-in scenes (leave-home, come-home, sleep, energy-saving) first, then the household's own."""
    return _page([_scene(v) for v in scenes.list_scenes(call, household_id)], page)


@router.post("/scenes", response_model=SceneOut, status_code=status.HTTP_201_CREATED, openapi_extra=SCENE_BODY)
def create_scene(call: CallDep, household_id: HouseholdPath, body: Document) -> SceneOut:
    """Body: ``{"name": {"zh-CN", "en"}, "actions": [command | set_mode, ...]}``."""
    return _scene(scenes.create_scene(call, household_id, body))


@router.get("/scenes/{scene_id}", response_model=SceneOut)
def get_scene(call: CallDep, household_id: HouseholdPath, scene_id: ItemPath) -> SceneOut:
    return _scene(scenes.get_scene(call, household_id, scene_id))


@router.put("/scenes/{scene_id}", response_model=SceneOut, responses={409: {"model": Problem}},
            openapi_extra=SCENE_BODY)
def update_scene(call: CallDep, household_id: HouseholdPath, scene_id: ItemPath, body: Document) -> SceneOut:
    return _scene(scenes.update_scene(call, household_id, scene_id, body))


@router.delete("/scenes/{scene_id}", status_code=status.HTTP_204_NO_CONTENT, responses={409: {"model": Problem}})
def delete_scene(call: CallDep, household_id: HouseholdPath, scene_id: ItemPath) -> Response:
    scenes.delete_scene(call, household_id, scene_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/scenes/{scene_id}/dry-run", response_model=list[PlannedEffect])
def dry_run_scene(call: CallDep, request: Request, household_id: HouseholdPath, scene_id: ItemPath) -> list[PlannedEffect]:
    """What the scene would do now: the devices, commands (topic and payload) and mode change."""
    return scenes.dry_run(call, household_id, scene_id, **_transport(request))


@router.post("/scenes/{scene_id}/run", response_model=SceneRunOut, responses={503: {"model": Problem}})
def run_scene(call: CallDep, request: Request, household_id: HouseholdPath, scene_id: ItemPath) -> SceneRunOut:
    """Run the scene: commands are logged and sent after the commit; steps that cannot happen are
    ``skipped`` with the reason. 503 when there are commands and no device transport runs."""
    state = request.app.state
    done = scenes.run(call, household_id, scene_id, publisher=getattr(state, "device_publisher", None),
                      tracker=getattr(state, "command_tracker", None), **_transport(request))
    return SceneRunOut(scene_id=scene_id, effects=done)


# -- automations -----------------------------------------------------------------------------------------
@router.get("/automations", response_model=PageOut[AutomationOut])
def list_automations(call: CallDep, household_id: HouseholdPath, page: PageDep) -> dict[str, Any]:
    return _page([_automation(v) for v in automations.list_automations(call, household_id)], page)


@router.get("/automations/templates", response_model=list[RuleSpec])
def automation_templates(call: CallDep, household_id: HouseholdPath) -> list[RuleSpec]:
    """Example automations to start from (energy saving at night, lights off when away)."""
    automations.access.household(call, household_id)
    return list(scenes.TEMPLATES.values())


@router.post("/automations/dry-run", response_model=DryRun, openapi_extra=RULE_BODY)
def dry_run_automation(call: CallDep, request: Request, household_id: HouseholdPath, body: Document) -> DryRun:
    """Validate a rule (422 if malformed) and show what it watches, which devices match and what it
    would command; ``problems`` would make saving fail, ``warnings`` would not. Changes nothing."""
    return automations.dry_run(call, household_id, body, **_transport(request))


@router.post("/automations", response_model=AutomationOut, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}}, openapi_extra=RULE_BODY)
def create_automation(call: CallDep, household_id: HouseholdPath, body: Document) -> AutomationOut:
    """Body: a RuleSpec (see ``docs/rules-alarms.md``). 422 for a malformed rule, a device or scene
    not in the household, or a loop with other automations; 409 for a key already used."""
    return _automation(automations.create_automation(call, household_id, body))


@router.get("/automations/{automation_id}", response_model=AutomationOut)
def get_automation(call: CallDep, household_id: HouseholdPath, automation_id: ItemPath) -> AutomationOut:
    return _automation(automations.get_automation(call, household_id, automation_id))


@router.put("/automations/{automation_id}", response_model=AutomationOut, responses={409: {"model": Problem}},
            openapi_extra=RULE_BODY)
def update_automation(call: CallDep, household_id: HouseholdPath, automation_id: ItemPath,
                      body: Document) -> AutomationOut:
    return _automation(automations.update_automation(call, household_id, automation_id, body))


@router.post("/automations/{automation_id}/dry-run", response_model=DryRun)
def dry_run_saved_automation(call: CallDep, request: Request, household_id: HouseholdPath,
                             automation_id: ItemPath) -> DryRun:
    """What a saved automation watches and would command in the household as it is now."""
    return automations.dry_run_saved(call, household_id, automation_id, **_transport(request))


@router.delete("/automations/{automation_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_automation(call: CallDep, household_id: HouseholdPath, automation_id: ItemPath) -> Response:
    automations.delete_automation(call, household_id, automation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
