"""Tables of the resident-facing rules: household mode, scenes, automations.

* ``household_modes``: one row per household that ever changed its mode (no row = ``home``).
* ``scenes``: a household's own scenes (the built-in ones are offered to every household from
  code, ``rules/scenes.py``, and are not stored).
* ``automations``: a household's :class:`~cityweave.rules.model.RuleSpec` documents.

Each scene and automation copies its household's place path (as devices and household members do),
so reading "what runs in the homes of my grid" is one indexed prefix match.
The engine's own tables (``rule_state``, ``household_rule_settings``) live in ``rules/state.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cityweave.db.base import Base, JsonDocument, StrEnumColumn
from cityweave.rules.model import Mode


class HouseholdMode(Base):
    __tablename__ = "household_modes"

    household_id: Mapped[str] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), primary_key=True)
    mode: Mapped[Mode] = mapped_column(StrEnumColumn(Mode, 16))
    changed_at: Mapped[datetime]
    changed_by: Mapped[str | None] = mapped_column(String(40))  # user id; "system" for rules
    changed_by_name: Mapped[str] = mapped_column(String(100))


class Scene(Base):
    __tablename__ = "scenes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), index=True)
    household_path: Mapped[str] = mapped_column(String(600), index=True)
    name: Mapped[dict[str, Any]] = mapped_column(JsonDocument)  # {"zh-CN": ..., "en": ...}
    actions: Mapped[list[Any]] = mapped_column(JsonDocument)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime]


class Automation(Base):
    __tablename__ = "automations"
    __table_args__ = (UniqueConstraint("household_id", "key", name="uq_automations_household_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), index=True)
    household_path: Mapped[str] = mapped_column(String(600), index=True)
    key: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonDocument)  # RuleSpec, as JSON
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime]
