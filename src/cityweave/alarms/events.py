"""What rules (and people) ask of the alarms domain, and what it answers.

Domain functions return :class:`AlarmChange` values and never call the web layer or the
notifications package: the runtime (or a router, through ``on_commit``) publishes them after the
transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cityweave.alarms.models import AlarmStatus, Severity

ChangeKind = Literal["raised", "repeated", "acknowledged", "dispatched", "resolved", "cleared", "escalated"]


@dataclass(frozen=True)
class EscalationStep:
    """Who is told at this step, and how long they have to acknowledge before the next step."""

    audience: str  # "family" | "grid_worker" | "community_staff" | "property_staff"
    ack_within_s: int

    def as_json(self) -> dict[str, Any]:
        return {"audience": self.audience, "ack_within_s": self.ack_within_s}


@dataclass(frozen=True)
class AlarmRaise:
    """A request to raise (or count again) the open alarm of one cause."""

    cause_key: str  # rule key + ":" + source (device id or place id)
    kind: str  # "fire", "gas", "water_leak", "emergency_call", "fall", ...
    severity: Severity
    place_id: str  # household or facility; the path is looked up
    title: dict[str, str]  # {"zh-CN": ..., "en": ...}
    rule_key: str | None = None
    device_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    escalation: tuple[EscalationStep, ...] = ()  # ordered; empty = no escalation
    # How many occurrences this request stands for: the rule engine folds a batch's repeats of
    # one cause into one request (a smoke detector chattering at 10 Hz costs one statement).
    occurrences: int = 1


@dataclass(frozen=True)
class AlarmChange:
    """Something happened to an alarm; published to live pages and notification channels."""

    alarm_id: str
    cause_key: str
    kind: str
    severity: Severity
    status: AlarmStatus
    count: int
    place_path: str
    place_id: str
    at: datetime
    change: ChangeKind
    audience: str | None  # the escalation step's audience (raised, escalated), else None
    title: dict[str, str]
    device_id: str | None = None
    actor: str | None = None  # who took a person's step (username); None for the platform
    note: str | None = None
