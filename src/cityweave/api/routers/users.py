"""Accounts, role grants and API keys. Every permission change lands in the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from cityweave.accounts import service
from cityweave.accounts.models import Role
from cityweave.accounts.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    GrantIn,
    UserCreate,
    UserOut,
    UserUpdate,
)
from cityweave.api.deps import CallDep, PageDep, PageOut
from cityweave.api.problems import Problem

router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)
UserIdPath = Annotated[str, Path(max_length=40)]


@router.get("", response_model=PageOut[UserOut])
def list_users(call: CallDep, page: PageDep, role: Role | None = None,
               q: Annotated[str | None, Query(max_length=64)] = None) -> PageOut[UserOut]:
    result = service.list_users(call, page, role=role, q=q)
    now = call.now()
    return PageOut[UserOut](items=[service.user_out(u, now) for u in result.items],
                            total=result.total, limit=result.limit, offset=result.offset)


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses={409: {"model": Problem}})
def create_user(call: CallDep, body: UserCreate) -> UserOut:
    return service.user_out(service.create_user(call, body), call.now())


@router.get("/{user_id}", response_model=UserOut)
def get_user(call: CallDep, user_id: UserIdPath) -> UserOut:
    return service.user_out(service.get_user(call, user_id), call.now())


@router.patch("/{user_id}", response_model=UserOut)
def update_user(call: CallDep, user_id: UserIdPath, body: UserUpdate) -> UserOut:
    return service.user_out(service.update_user(call, user_id, body), call.now())


@router.post("/{user_id}/unlock", response_model=UserOut)
def unlock_user(call: CallDep, user_id: UserIdPath) -> UserOut:
    return service.user_out(service.unlock_user(call, user_id), call.now())


@router.post("/{user_id}/grants", response_model=UserOut, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}})
def add_grant(call: CallDep, user_id: UserIdPath, body: GrantIn) -> UserOut:
    service.add_grant(call, user_id, body)
    return service.user_out(service.get_user(call, user_id), call.now())


@router.delete("/{user_id}/grants/{grant_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_grant(call: CallDep, user_id: UserIdPath, grant_id: Annotated[int, Path(ge=1, le=2**62)]) -> None:
    service.remove_grant(call, user_id, grant_id)


@router.get("/{user_id}/api-keys", response_model=list[ApiKeyOut])
def list_api_keys(call: CallDep, user_id: UserIdPath) -> list[ApiKeyOut]:
    service.get_user(call, user_id, service.Action.UPDATE)
    return [ApiKeyOut.model_validate(k) for k in service.list_api_keys(call, user_id)]


@router.post("/{user_id}/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}})
def create_api_key(call: CallDep, user_id: UserIdPath, body: ApiKeyCreate) -> ApiKeyCreated:
    key, secret = service.create_api_key(call, user_id, body)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


@router.delete("/{user_id}/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(call: CallDep, user_id: UserIdPath, key_id: Annotated[int, Path(ge=1, le=2**62)]) -> None:
    service.revoke_api_key(call, user_id, key_id)
