"""Input and output shapes for persons, memberships and care tags."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from cityweave.people.models import CareTagKind, MembershipRole
from cityweave.places.schemas import PlaceId
from cityweave.schema import InputModel

PersonName = Annotated[str, Field(min_length=1, max_length=100)]
Gender = Literal["male", "female", "other"]


class MembershipIn(InputModel):
    household_id: PlaceId
    role: MembershipRole = MembershipRole.FAMILY
    since: date | None = None


class PersonCreate(InputModel):

    name: PersonName
    phone: Annotated[str, Field(max_length=32)] | None = None
    id_number: Annotated[str, Field(max_length=18)] | None = None
    gender: Gender | None = None
    birth_date: date | None = None
    households: list[MembershipIn] = Field(default_factory=list, max_length=10)
    care_tags: list[CareTagKind] = Field(default_factory=list, max_length=len(CareTagKind))


class PersonUpdate(InputModel):

    name: PersonName | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None
    id_number: Annotated[str, Field(max_length=18)] | None = None
    gender: Gender | None = None
    birth_date: date | None = None


class MembershipOut(BaseModel):
    household_id: str
    role: MembershipRole
    since: date | None


class PersonOut(BaseModel):
    """A person as lists show them: personal data masked (张**, 138****1234)."""

    id: str
    name: str
    phone: str | None
    id_number: str | None
    gender: str | None
    birth_year: int | None
    households: list[MembershipOut]
    care_tags: list[CareTagKind] | None = Field(
        description="null when the caller's role may not see care tags"
    )
    created_at: datetime


class PersonalData(BaseModel):
    """Unmasked personal data: only for roles that need it, and every view is audited."""

    id: str
    name: str
    phone: str | None
    id_number: str | None


class CareTagIn(InputModel):
    tag: CareTagKind
    note: Annotated[str, Field(max_length=500)] | None = None
