"""Shapes for users, grants, tokens and API keys at the edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cityweave.accounts.models import Role
from cityweave.places.schemas import PlaceId
from cityweave.schema import InputModel

Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{3,64}$")]
Locale = Annotated[str, Field(pattern=r"^(zh-CN|en)$")]


class GrantIn(InputModel):
    role: Role
    place_id: PlaceId | None = None
    categories: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=50)


class GrantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    role: Role
    place_id: str | None
    categories: list[str] | None


class UserCreate(InputModel):
    username: Username
    password: Annotated[str, Field(min_length=8, max_length=256)] | None = None
    display_name: Annotated[str, Field(min_length=1, max_length=100)]
    person_id: Annotated[str, Field(max_length=40)] | None = None
    locale: Locale = "zh-CN"
    is_service_account: bool = False
    grants: list[GrantIn] = Field(default_factory=list, max_length=20)


class UserUpdate(InputModel):
    display_name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    locale: Locale | None = None
    is_active: bool | None = None


class PasswordChange(InputModel):
    current_password: Annotated[str, Field(max_length=256)]
    new_password: Annotated[str, Field(min_length=8, max_length=256)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    username: str
    display_name: str
    person_id: str | None
    locale: str
    is_active: bool
    is_service_account: bool
    locked: bool = False
    last_login_at: datetime | None
    created_at: datetime
    grants: list[GrantOut]


class TokenPair(BaseModel):
    """The OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    scope: str = ""


class ApiKeyCreate(InputModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; store it now, CityWeave keeps only a hash")
