"""The rule engine's own tables: rule state that survives a restart, and per-household settings
of the built-in rules.

``rule_state`` holds one row per (rule, subject) while something is in progress: a duration
condition entered (``due_at`` = when it fires), a threshold that is active (so a restart does not
switch the siren on again), a counter window, an absence timer's last activity. Rows are written
on transitions only, never per reading; ``due_at`` is indexed so the timer finds what is due.

``household_rule_settings`` holds a household's deviations from a built-in rule's defaults
(``enabled``, ``params``); no row means the defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cityweave.db.base import Base, JsonDocument


class RuleState(Base):
    __tablename__ = "rule_state"

    rule_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    # "<household id>" or "<device id>" or "<device id>@<endpoint>"
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime]


class HouseholdRuleSettings(Base):
    __tablename__ = "household_rule_settings"

    household_id: Mapped[str] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), primary_key=True)
    rule_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    params: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(40))
