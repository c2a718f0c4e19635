"""Persons hold personal data only in encrypted columns; lookups go through keyed hashes."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cityweave.db.base import Base, StrEnumColumn


class MembershipRole(enum.StrEnum):
    OWNER = "owner"
    TENANT = "tenant"
    FAMILY = "family"


class CareTagKind(enum.StrEnum):
    ELDERLY_ALONE = "elderly_alone"
    ELDERLY = "elderly"
    DISABLED = "disabled"
    MINOR = "minor"
    CHRONIC_ILLNESS = "chronic_illness"
    LOW_INCOME = "low_income"
    VETERAN = "veteran"
    PREGNANT = "pregnant"


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Encrypted with the field cipher (cityweave.security.crypto); never stored in plain text.
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Keyed hashes (HMAC-SHA256) allow exact-match search without decrypting every row.
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    id_number_index: Mapped[str | None] = mapped_column(String(64), index=True)
    gender: Mapped[str | None] = mapped_column(String(8))
    birth_date: Mapped[date | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    memberships: Mapped[list[HouseholdMember]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )
    care_tags: Mapped[list[CareTag]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )


class HouseholdMember(Base):
    __tablename__ = "household_members"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    role: Mapped[MembershipRole] = mapped_column(StrEnumColumn(MembershipRole, 16))
    # Copy of the household's path: scope checks on persons stay one indexed prefix match.
    household_path: Mapped[str] = mapped_column(String(600), index=True)
    since: Mapped[date | None]

    person: Mapped[Person] = relationship(back_populates="memberships")

    __table_args__ = (UniqueConstraint("household_id", "person_id"),)


class CareTag(Base):
    __tablename__ = "care_tags"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    tag: Mapped[CareTagKind] = mapped_column(StrEnumColumn(CareTagKind, 32))
    note_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]

    person: Mapped[Person] = relationship(back_populates="care_tags")

    __table_args__ = (UniqueConstraint("person_id", "tag"),)
