"""Validated input and output shapes for places (used by the API and by importers alike)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cityweave.geo import Geometry
from cityweave.places.models import FacilityType, PlaceKind
from cityweave.schema import InputModel

PlaceId = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="Stable id: lower-case letters, digits and '-'; becomes urn:ngsi-ld:<Type>:<id>",
        examples=["yuhua-b03-u2-1801"],
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Attributes = Annotated[dict[str, Any], Field(max_length=50)]


class PlaceCreate(InputModel):

    id: PlaceId
    kind: PlaceKind
    parent_id: PlaceId | None = None
    name: Name
    name_en: Name | None = None
    code: Annotated[str, Field(max_length=64)] | None = None
    facility_type: FacilityType | None = None
    geometry: Geometry | None = None
    attributes: Attributes = Field(default_factory=dict)


class PlaceUpdate(InputModel):

    name: Name | None = None
    name_en: Name | None = None
    code: Annotated[str, Field(max_length=64)] | None = None
    geometry: Geometry | None = None
    attributes: Attributes | None = None


class PlaceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: PlaceKind
    parent_id: str | None
    path: str
    name: str
    name_en: str | None
    code: str | None
    facility_type: FacilityType | None
    geometry: dict[str, Any] | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
