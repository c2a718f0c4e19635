"""One table for every place, with a materialised path that makes scope checks a prefix match."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cityweave.db.base import Base, StrEnumColumn


class PlaceKind(enum.StrEnum):
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"
    BUILDING = "building"
    UNIT = "unit"
    HOUSEHOLD = "household"
    FACILITY = "facility"


# Which kind may sit directly under which: the hierarchy of the national guidance.
ALLOWED_PARENTS: dict[PlaceKind, tuple[PlaceKind | None, ...]] = {
    PlaceKind.CITY: (None,),
    PlaceKind.DISTRICT: (PlaceKind.CITY,),
    PlaceKind.STREET: (PlaceKind.DISTRICT,),
    PlaceKind.COMMUNITY: (PlaceKind.STREET,),
    PlaceKind.GRID: (PlaceKind.COMMUNITY,),
    PlaceKind.BUILDING: (PlaceKind.GRID,),
    PlaceKind.UNIT: (PlaceKind.BUILDING,),
    PlaceKind.HOUSEHOLD: (PlaceKind.UNIT,),
    PlaceKind.FACILITY: (PlaceKind.COMMUNITY, PlaceKind.GRID, PlaceKind.BUILDING),
}


class FacilityType(enum.StrEnum):
    GATE = "gate"
    PARKING_LOT = "parking_lot"
    PARKING_SPACE = "parking_space"
    PARCEL_LOCKER = "parcel_locker"
    CHARGING_PILE = "charging_pile"
    STREET_LIGHT = "street_light"
    WASTE_BIN = "waste_bin"
    CAMERA = "camera"
    KIOSK = "kiosk"


class Place(Base):
    """A node of the place tree.

    ``id`` is a stable, URL-safe string (``[a-z0-9-]``) that can become an NGSI-LD URN
    (``urn:ngsi-ld:Building:<id>``). ``path`` is ``/<root id>/.../<own id>/``: a place is
    inside another exactly when its path starts with the other's path.
    """

    __tablename__ = "places"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[PlaceKind] = mapped_column(StrEnumColumn(PlaceKind, 16))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("places.id", ondelete="RESTRICT"), index=True
    )
    path: Mapped[str] = mapped_column(String(600), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(64), doc="official code, e.g. the 12-digit admin code")
    facility_type: Mapped[FacilityType | None] = mapped_column(
        StrEnumColumn(FacilityType, 32)
    )
    # GeoJSON geometry: Point for buildings and facilities, Polygon for communities and grids.
    geometry: Mapped[dict[str, Any] | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_places_kind_path", "kind", "path"),)

    def is_within(self, other_path: str) -> bool:
        return self.path.startswith(other_path)
