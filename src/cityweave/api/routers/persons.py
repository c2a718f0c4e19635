"""Persons (masked by default), their personal data (audited), memberships and care tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem
from cityweave.people import service
from cityweave.people.models import CareTagKind
from cityweave.people.schemas import (
    CareTagIn,
    MembershipIn,
    PersonalData,
    PersonCreate,
    PersonOut,
    PersonUpdate,
)

router = APIRouter(
    prefix="/api/v1/persons",
    tags=["persons"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
PersonIdPath = Annotated[str, Path(max_length=40)]


@router.get("", response_model=PageOut[PersonOut])
def list_persons(
    call: CallDep,
    page: PageDep,
    household_id: Annotated[str | None, Query(max_length=64)] = None,
    within: Annotated[str | None, Query(max_length=64, description="living inside this place")] = None,
    phone: Annotated[str | None, Query(max_length=32, description="exact phone number, any spelling")] = None,
    id_number: Annotated[str | None, Query(max_length=18)] = None,
    care_tag: CareTagKind | None = None,
) -> PageOut[PersonOut]:
    result = service.list_persons(
        call, page, household_id=household_id, within=within, phone=phone, id_number=id_number, care_tag=care_tag
    )
    return PageOut[PersonOut](
        items=service.to_out_many(call, result.items),
        total=result.total, limit=result.limit, offset=result.offset,
    )


@router.post("", response_model=PersonOut, status_code=status.HTTP_201_CREATED)
def create_person(call: CallDep, body: PersonCreate) -> PersonOut:
    return service.to_out(call, service.create_person(call, body))


@router.get("/{person_id}", response_model=PersonOut)
def get_person(call: CallDep, person_id: PersonIdPath) -> PersonOut:
    return service.to_out(call, service.get_person(call, person_id))


@router.get("/{person_id}/personal-data", response_model=PersonalData)
def reveal_personal_data(call: CallDep, person_id: PersonIdPath) -> PersonalData:
    """Full name, phone and (for roles that need it) ID number. Every call is audited."""
    return service.reveal(call, person_id)


@router.patch("/{person_id}", response_model=PersonOut)
def update_person(call: CallDep, person_id: PersonIdPath, body: PersonUpdate) -> PersonOut:
    return service.to_out(call, service.update_person(call, person_id, body))


@router.delete("/{person_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_person(call: CallDep, person_id: PersonIdPath) -> None:
    service.delete_person(call, person_id)


@router.post("/{person_id}/households", response_model=PersonOut, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}})
def add_membership(call: CallDep, person_id: PersonIdPath, body: MembershipIn) -> PersonOut:
    service.add_membership(call, person_id, body)
    return service.to_out(call, service.get_person(call, person_id))


@router.delete("/{person_id}/households/{household_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_membership(call: CallDep, person_id: PersonIdPath,
                      household_id: Annotated[str, Path(max_length=64)]) -> None:
    service.remove_membership(call, person_id, household_id)


@router.post("/{person_id}/care-tags", response_model=PersonOut, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}})
def add_care_tag(call: CallDep, person_id: PersonIdPath, body: CareTagIn) -> PersonOut:
    service.add_care_tag(call, person_id, body)
    return service.to_out(call, service.get_person(call, person_id))


@router.delete("/{person_id}/care-tags/{tag}", status_code=status.HTTP_204_NO_CONTENT)
def remove_care_tag(call: CallDep, person_id: PersonIdPath, tag: CareTagKind) -> None:
    service.remove_care_tag(call, person_id, tag)
