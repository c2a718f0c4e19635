"""A household's settings of the built-in safety and care rules (``Resource.RULE_SETTING``).

``GET /households/{id}/rules`` lists every built-in rule with its effective parameters;
``PUT`` changes some of them: ``{"gas": {"params": {"co_ppm_max": 80}}, "water": {"enabled": false}}``
(a parameter set to null goes back to its default). Residents of the household, property staff and
admins may change adjustable parameters within their bounds; fire, gas and the elderly rules
cannot be switched off (``rules/builtin.py`` says why). Bodies are checked by the rules module so
that a 422 points into the document as sent (``/gas/params/co_ppm_max``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel

from cityweave.api.deps import CallDep
from cityweave.api.problems import Problem
from cityweave.rules import builtin

router = APIRouter(
    prefix="/api/v1/households/{household_id}",
    tags=["rules"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
HouseholdPath = Annotated[str, Path(max_length=64)]


class ParamOut(BaseModel):
    name: str
    value: Any
    default: Any
    minimum: float | None
    maximum: float | None
    unit: str | None
    adjustable: bool
    description: str


class RuleSettingOut(BaseModel):
    key: str
    name: dict[str, str]
    enabled: bool
    may_disable: bool
    applies_to: str
    params: list[ParamOut]


class RuleSettingsOut(BaseModel):
    household_id: str
    items: list[RuleSettingOut]


def _out(household_id: str, views: list[builtin.RuleView]) -> RuleSettingsOut:
    return RuleSettingsOut(household_id=household_id, items=[RuleSettingOut.model_validate(v.__dict__) for v in views])


@router.get("/rules", response_model=RuleSettingsOut)
def list_rules(call: CallDep, household_id: HouseholdPath) -> RuleSettingsOut:
    return _out(household_id, builtin.list_settings(call, household_id))


@router.put("/rules", response_model=RuleSettingsOut)
def update_rules(call: CallDep, request: Request, household_id: HouseholdPath,
                 body: Annotated[dict[str, Any], Body(openapi_examples={"gas": {"value": {
                     "gas": {"params": {"co_ppm_max": 80}}, "electricity": {"params": {"cut_off": True}}}}})],
                 ) -> RuleSettingsOut:
    engine = getattr(request.app.state, "rule_engine", None)
    return _out(household_id, builtin.update_settings(call, household_id, body, engine=engine))
