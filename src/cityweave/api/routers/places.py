"""Places: the tree from city to household, and community facilities."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem
from cityweave.places import service
from cityweave.places.models import PlaceKind
from cityweave.places.schemas import PlaceCreate, PlaceOut, PlaceUpdate

router = APIRouter(
    prefix="/api/v1/places",
    tags=["places"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
PlaceIdPath = Annotated[str, Path(max_length=64)]


@router.get("", response_model=PageOut[PlaceOut])
def list_places(
    call: CallDep,
    page: PageDep,
    kind: PlaceKind | None = None,
    parent_id: Annotated[str | None, Query(max_length=64)] = None,
    within: Annotated[str | None, Query(max_length=64, description="only places inside this one")] = None,
    q: Annotated[str | None, Query(max_length=100, description="name or id contains")] = None,
) -> PageOut[PlaceOut]:
    result = service.list_places(call, page, kind=kind, parent_id=parent_id, within=within, q=q)
    return PageOut[PlaceOut](
        items=[PlaceOut.model_validate(p) for p in result.items],
        total=result.total, limit=result.limit, offset=result.offset,
    )


@router.post("", response_model=PlaceOut, status_code=status.HTTP_201_CREATED, responses={409: {"model": Problem}})
def create_place(call: CallDep, body: PlaceCreate) -> PlaceOut:
    return PlaceOut.model_validate(service.create_place(call, body))


@router.get("/{place_id}", response_model=PlaceOut)
def get_place(call: CallDep, place_id: PlaceIdPath) -> PlaceOut:
    return PlaceOut.model_validate(service.get_place(call, place_id))


@router.get("/{place_id}/ancestors", response_model=list[PlaceOut])
def get_ancestors(call: CallDep, place_id: PlaceIdPath) -> list[PlaceOut]:
    place = service.get_place(call, place_id)
    return [PlaceOut.model_validate(p) for p in service.ancestors(call, place)]


@router.patch("/{place_id}", response_model=PlaceOut)
def update_place(call: CallDep, place_id: PlaceIdPath, body: PlaceUpdate) -> PlaceOut:
    return PlaceOut.model_validate(service.update_place(call, place_id, body))


@router.delete("/{place_id}", status_code=status.HTTP_204_NO_CONTENT, responses={409: {"model": Problem}})
def delete_place(call: CallDep, place_id: PlaceIdPath) -> None:
    service.delete_place(call, place_id)
