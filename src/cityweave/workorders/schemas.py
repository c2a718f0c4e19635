"""Validated shapes at the edge for work orders (the native API; Open311 has its own)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from cityweave.places.schemas import PlaceId
from cityweave.schema import InputModel
from cityweave.workorders.models import Channel, Priority, Status

Note = Annotated[str, Field(min_length=1, max_length=2000)]
Reason = Annotated[str, Field(min_length=2, max_length=2000)]
Description = Annotated[str, Field(min_length=2, max_length=4000)]
CategoryId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]


class Contact(InputModel):
    """Who to call back, when the reporter is not a signed-in resident (hotline, Open311)."""

    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    phone: Annotated[str, Field(min_length=3, max_length=40)] | None = None
    email: Annotated[str, Field(max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


class WorkOrderSubmit(InputModel):
    category_id: CategoryId
    description: Description
    place_id: PlaceId | None = Field(None, description="a household, building, facility or grid")
    lon: Longitude | None = None
    lat: Latitude | None = None
    address: Annotated[str, Field(min_length=2, max_length=300)] | None = None
    anonymous: bool = Field(False, description="hide who reported it, even from the handlers")
    channel: Channel | None = Field(None, description="staff only: patrol or hotline; residents' reports are 'resident'")
    contact: Contact | None = Field(None, description="hotline: the caller, stored encrypted")
    priority: Priority | None = Field(None, description="staff only; otherwise the category's default")

    @model_validator(mode="after")
    def _somewhere(self) -> WorkOrderSubmit:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat, or neither")
        if self.place_id is None and self.lon is None and not self.address:
            raise ValueError("say where: place_id, lon/lat or an address")
        return self


class StepNote(InputModel):
    note: Note | None = None


class StepReason(InputModel):
    reason: Reason


class AssignInput(InputModel):
    user_id: Annotated[str, Field(min_length=1, max_length=40)]
    note: Note | None = None


class TransferInput(InputModel):
    category_id: CategoryId
    reason: Reason


class MergeInput(InputModel):
    into: Annotated[str, Field(min_length=1, max_length=40, description="the work order to keep")]
    note: Note | None = None


class ReplyInput(InputModel):
    note: Note
    public: bool = Field(True, description="shown to the reporter and as an Open311 update")


class RateInput(InputModel):
    satisfaction: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, Field(max_length=1000)] | None = None


class CategoryPatch(InputModel):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    name_en: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    department_id: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    default_priority: Priority | None = None
    accept_within_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 30)] | None = None
    resolve_within_hours: Annotated[int, Field(ge=1, le=24 * 365)] | None = None
    public: bool | None = None
    active: bool | None = None


class WorkOrderOut(BaseModel):
    id: str
    number: str
    category_id: str
    department_id: str
    status: Status
    priority: Priority
    channel: Channel
    description: str
    place_id: str | None
    grid_id: str | None
    lon: float | None
    lat: float | None
    address: str | None
    assignee_user_id: str | None
    reporter: str | None = Field(None, description="masked; absent in public views and for anonymous reports")
    merged_into: str | None
    reopen_count: int
    accept_due_at: datetime
    resolve_due_at: datetime
    escalation: int
    satisfaction: int | None
    feedback: str | None
    public: bool
    alarm_id: str | None
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None
    resolved_at: datetime | None
    confirmed_at: datetime | None
    closed_at: datetime | None
    photos: list[str] = Field(default_factory=list)


class WorkOrderEventOut(BaseModel):
    at: datetime
    action: str
    actor: str
    from_status: str | None
    to_status: str | None
    note: str | None
    public: bool


class CategoryOut(BaseModel):
    id: str
    name: str
    name_en: str
    description: str
    description_en: str
    group: str
    department_id: str
    handler_role: str
    assignment: str
    default_priority: Priority
    accept_within_minutes: int
    resolve_within_hours: int
    public: bool
    active: bool
