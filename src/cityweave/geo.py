"""GeoJSON geometry validation (RFC 7946) for the two shapes places use: Point and Polygon."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from cityweave.schema import InputModel

Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Position = tuple[Longitude, Latitude]


class Point(InputModel):
    type: Literal["Point"]
    coordinates: Position


class Polygon(InputModel):
    type: Literal["Polygon"]
    coordinates: list[Annotated[list[Position], Field(min_length=4, max_length=10_000)]] = Field(
        min_length=1, max_length=100
    )

    @model_validator(mode="after")
    def _rings_closed(self) -> Polygon:
        for ring in self.coordinates:
            if ring[0] != ring[-1]:
                raise ValueError("each polygon ring must end where it starts")
        return self


Geometry = Annotated[Point | Polygon, Field(discriminator="type")]


def point_in_polygon(lon: float, lat: float, polygon: dict) -> bool:
    """Ray casting on the outer ring minus holes; good for community-sized polygons."""

    def inside(ring: list[list[float]]) -> bool:
        result = False
        j = len(ring) - 1
        for i in range(len(ring)):
            xi, yi = ring[i][0], ring[i][1]
            xj, yj = ring[j][0], ring[j][1]
            if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
                result = not result
            j = i
        return result

    rings = polygon["coordinates"]
    return inside(rings[0]) and not any(inside(hole) for hole in rings[1:])
