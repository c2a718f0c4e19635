"""Users, role grants, bearer tokens and API keys. Secrets are stored only as hashes."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cityweave.db.base import Base, StrEnumColumn


class Role(enum.StrEnum):
    """Each role has a scope kind; see ``cityweave.authz.policy`` for what it may do."""

    RESIDENT = "resident"  # scope: a household
    GRID_WORKER = "grid_worker"  # scope: a grid
    PROPERTY_STAFF = "property_staff"  # scope: a community
    COMMUNITY_ADMIN = "community_admin"  # scope: a community
    DEPARTMENT_OFFICER = "department_officer"  # scope: an area (any place) + categories
    SERVICE_PROVIDER = "service_provider"  # scope: its own orders
    CITY_OPERATOR = "city_operator"  # scope: a city
    PLATFORM_ADMIN = "platform_admin"  # scope: everything


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"))
    display_name: Mapped[str] = mapped_column(String(100))
    locale: Mapped[str] = mapped_column(String(10), default="zh-CN")
    is_active: Mapped[bool] = mapped_column(default=True)
    is_service_account: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)
    first_failed_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class RoleGrant(Base):
    """One role held by a user over one scope (a place, and for officers also categories)."""

    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(StrEnumColumn(Role, 32))
    place_id: Mapped[str | None] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"))
    # Copy of the place's path at grant time; places never move, so it stays true.
    place_path: Mapped[str | None] = mapped_column(String(600))
    # Department officers: the work-order categories they answer for.
    categories: Mapped[list[Any] | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(40))

    user: Mapped[User] = relationship(back_populates="grants")

    __table_args__ = (UniqueConstraint("user_id", "role", "place_id"),)


class TokenKind(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"
    SESSION = "session"  # browser sessions (web pages), same table, same revocation


class AuthToken(Base):
    """An opaque bearer token. Only its SHA-256 is stored, so a database leak leaks no token."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[TokenKind] = mapped_column(StrEnumColumn(TokenKind, 16))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # All tokens minted from one sign-in share a family: reuse of a rotated refresh token
    # revokes the whole family (RFC 6819 §5.2.2.3, refresh token rotation).
    family: Mapped[str] = mapped_column(String(32), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    client_ip: Mapped[str | None] = mapped_column(String(64))


class ApiKey(Base):
    """A key for integrations: ``cwk_<prefix>_<secret>``; it acts as its (service) user."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("name", "user_id"),)
