"""Who may see and change a household's mode, scenes and automations (``Resource.AUTOMATION``).

Decided by the policy (``authz/policy.py``); this module only finds the household: not visible
(or not a household) answers 404, visible but not allowed answers 403.
"""

from __future__ import annotations

from cityweave.authz.policy import Action, Resource, check
from cityweave.context import Call
from cityweave.errors import NotFound
from cityweave.places import service as places
from cityweave.places.models import Place, PlaceKind


def household(call: Call, household_id: str, action: Action = Action.READ) -> Place:
    place = places.get_place(call, household_id)
    if place.kind is not PlaceKind.HOUSEHOLD:
        raise NotFound(f"no household {household_id!r}")
    check(call.principal, Resource.AUTOMATION, Action.READ, [place.path])
    if action is not Action.READ:
        check(call.principal, Resource.AUTOMATION, action, [place.path])
    return place
