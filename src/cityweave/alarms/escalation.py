"""Escalation chains (named constants, one place) and the deadline walk.

An alarm carries its chain as JSON (``escalation``), the index of the current step
(``escalation_step``) and that step's deadline (``escalation_due_at``). Raising starts at step 0
(its audience is told at once) with a deadline ``ack_within_s`` later. When a deadline passes and
nobody acknowledged, :func:`cityweave.alarms.service.escalate_due` moves to the next step and tells
its audience. Past the last step the alarm stays there and the last audience is reminded once per
that step's interval, until somebody acknowledges (or the alarm closes). Acknowledging,
dispatching, resolving or clearing sets the deadline to NULL: the chain stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cityweave.alarms.events import EscalationStep

FAMILY = "family"
GRID_WORKER = "grid_worker"
COMMUNITY_STAFF = "community_staff"
PROPERTY_STAFF = "property_staff"
AUDIENCES = frozenset({FAMILY, GRID_WORKER, COMMUNITY_STAFF, PROPERTY_STAFF})

# Elderly people living alone: an emergency call or a fall. Family first, then the grid worker
# who knows the home, then the community's duty staff.
ELDERLY_CHAIN: tuple[EscalationStep, ...] = (
    EscalationStep(FAMILY, 120),
    EscalationStep(GRID_WORKER, 300),
    EscalationStep(COMMUNITY_STAFF, 600),
)
# Fire, gas, water: the household and property staff (who hold the keys and the valves) first.
SAFETY_CHAIN: tuple[EscalationStep, ...] = (
    EscalationStep(FAMILY, 60),
    EscalationStep(PROPERTY_STAFF, 180),
    EscalationStep(COMMUNITY_STAFF, 300),
)
# Health readings out of range, no activity for hours: family, then the grid worker.
WELFARE_CHAIN: tuple[EscalationStep, ...] = (
    EscalationStep(FAMILY, 600),
    EscalationStep(GRID_WORKER, 1800),
)
NO_ESCALATION: tuple[EscalationStep, ...] = ()

CHAINS: dict[str, tuple[EscalationStep, ...]] = {
    "elderly": ELDERLY_CHAIN, "safety": SAFETY_CHAIN, "welfare": WELFARE_CHAIN, "none": NO_ESCALATION,
}


def to_json(chain: Sequence[EscalationStep]) -> list[dict[str, Any]]:
    return [step.as_json() for step in chain]


def steps_of(stored: Sequence[Any] | None) -> list[EscalationStep]:
    return [EscalationStep(str(s["audience"]), int(s["ack_within_s"])) for s in stored or ()]
