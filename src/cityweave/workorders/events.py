"""What the work-order domain announces on the bus after each committed step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class WorkOrderChange:
    work_order_id: str
    number: str
    action: str  # submitted, routed, accepted, assigned, ..., escalated, replied, rated
    status: str
    category_id: str
    place_path: str
    at: datetime
    actor: str
    reporter_user_id: str | None  # who to tell (never shown publicly)
    assignee_user_id: str | None
    note: str | None = None
    public: bool = False  # the note is for the reporter too
    escalation: int = 0
    priority: str = "normal"
    order_public: bool = False  # the work order shows in public listings (not the same as the note)
