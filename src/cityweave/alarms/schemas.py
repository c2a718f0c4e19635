"""Validated shapes at the HTTP edge for alarms."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cityweave.alarms.models import AlarmStatus, Severity
from cityweave.places.schemas import PlaceId
from cityweave.schema import InputModel

Note = Annotated[str, Field(min_length=1, max_length=1000, description="what was done or found")]


class StatusFilter(enum.StrEnum):
    """A status, or ``open`` for raised, acknowledged and dispatched together."""

    OPEN = "open"
    RAISED = AlarmStatus.RAISED.value
    ACKNOWLEDGED = AlarmStatus.ACKNOWLEDGED.value
    DISPATCHED = AlarmStatus.DISPATCHED.value
    RESOLVED = AlarmStatus.RESOLVED.value
    CLEARED = AlarmStatus.CLEARED.value


class SummaryLevel(enum.StrEnum):
    HOUSEHOLD = "household"
    BUILDING = "building"
    COMMUNITY = "community"


class AlarmStepIn(InputModel):
    """Acknowledge or resolve: who and when come from the sign-in and the clock."""

    note: Note | None = None


class AlarmDispatchIn(InputModel):
    note: Note | None = None
    work_order: bool | None = Field(
        default=None,
        description="ask for a work order: true always, false never, null (default) when the alarm's kind "
        "needs a site visit (fire, gas, water leak, electricity, emergency call, fall, inactivity)",
    )


class EmergencyCallIn(InputModel):
    """A resident's one-tap emergency call from the web or the app."""

    household_id: PlaceId
    note: Note | None = None


class EscalationStepOut(BaseModel):
    audience: str
    ack_within_s: int


class AlarmOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    cause_key: str
    kind: str
    severity: Severity
    status: AlarmStatus
    count: int = Field(description="occurrences of the cause while this alarm was open")
    rule_key: str | None
    device_id: str | None
    place_id: str
    place_path: str
    title: dict[str, str] = Field(description='{"zh-CN": ..., "en": ...}')
    details: dict[str, Any]
    first_at: datetime
    last_at: datetime
    escalation: list[EscalationStepOut]
    escalation_step: int
    escalation_due_at: datetime | None = Field(description="when the current step's audience must have acknowledged")
    work_order_requested: bool
    work_order_ref: str | None
    acknowledged_at: datetime | None
    dispatched_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AlarmEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    alarm_id: str
    at: datetime
    action: str
    actor_id: str | None
    actor: str
    note: str | None
    details: dict[str, Any]


class SeverityCounts(BaseModel):
    critical: int = 0
    major: int = 0
    minor: int = 0
    warning: int = 0
    info: int = 0


class SummaryRowOut(BaseModel):
    place_id: str
    place_path: str
    name: str
    total: int
    counts: SeverityCounts


class AlarmSummaryOut(BaseModel):
    by: SummaryLevel
    place_id: str | None
    total: int
    counts: SeverityCounts
    items: list[SummaryRowOut]
