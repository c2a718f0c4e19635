"""Household mode: home, away, armed, sleep.

Rules read it as a condition (``{"type": "mode", "in": ["armed"]}``: intrusion alarms only while
armed), scenes set it (leave home arms), residents arm and disarm through
``PUT /api/v1/households/{id}/mode``. A household without a row is ``home``.

:func:`current` and :func:`store` work on a bare session (the engine, scenes run by rules);
:func:`get_mode` and :func:`change_mode` are the authorised and audited operations for people.
After a change commits, a :class:`ModeChanged` event goes out on the context's bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.authz.policy import Action
from cityweave.context import Call
from cityweave.db.engine import on_commit
from cityweave.rules import access
from cityweave.rules.model import Mode
from cityweave.rules.models import HouseholdMode

DEFAULT_MODE = Mode.HOME


@dataclass(frozen=True, slots=True)
class ModeChanged:
    household_id: str
    place_path: str
    mode: Mode
    previous: Mode
    at: datetime
    by: str


@dataclass(frozen=True, slots=True)
class ModeState:
    household_id: str
    mode: Mode
    changed_at: datetime | None
    changed_by: str | None


def current(session: Session, household_id: str) -> Mode:
    row = session.get(HouseholdMode, household_id)
    return row.mode if row is not None else DEFAULT_MODE


def modes_of(session: Session, household_ids: list[str]) -> dict[str, Mode]:
    """Modes of several households in one query (the engine's conditions over a batch)."""
    rows = session.execute(
        select(HouseholdMode.household_id, HouseholdMode.mode).where(HouseholdMode.household_id.in_(household_ids)))
    found = {household: mode for household, mode in rows}
    return {h: found.get(h, DEFAULT_MODE) for h in household_ids}


def store(session: Session, household_id: str, mode: Mode, now: datetime, *,
          actor_id: str | None, actor_name: str) -> Mode:
    """Set the mode; returns the previous one. No authorisation and no audit: callers do that."""
    row = session.get(HouseholdMode, household_id)
    if row is None:
        session.add(HouseholdMode(household_id=household_id, mode=mode, changed_at=now,
                                  changed_by=actor_id, changed_by_name=actor_name[:100]))
        session.flush()
        return DEFAULT_MODE
    previous = row.mode
    if previous is not mode:
        row.mode, row.changed_at = mode, now
        row.changed_by, row.changed_by_name = actor_id, actor_name[:100]
    return previous


def get_mode(call: Call, household_id: str) -> ModeState:
    place = access.household(call, household_id)
    row = call.session.get(HouseholdMode, place.id)
    if row is None:
        return ModeState(place.id, DEFAULT_MODE, None, None)
    return ModeState(place.id, row.mode, row.changed_at, row.changed_by_name)


def change_mode(call: Call, household_id: str, mode: Mode, *, via: str | None = None) -> ModeState:
    """Arm, disarm, sleep: authorised (``automation`` update on the household) and audited.
    ``via`` names the scene that did it, for the audit record."""
    place = access.household(call, household_id, Action.UPDATE)
    set_mode(call, place.id, place.path, mode, via=via)
    return get_mode(call, household_id)


def set_mode(call: Call, household_id: str, place_path: str, mode: Mode, *, via: str | None = None) -> Mode:
    """Store, audit and announce a mode change for an already authorised caller (scene runs,
    the engine's system principal). Returns the previous mode."""
    now = call.now()
    previous = store(call.session, household_id, mode, now, actor_id=call.principal.user_id,
                     actor_name=call.principal.username)
    details: dict[str, str] = {"mode": mode.value, "previous": previous.value}
    if via:
        details["via"] = via
    call.audit("household.mode", "place", household_id, place_path=place_path, details=details)
    if previous is not mode:
        event = ModeChanged(household_id, place_path, mode, previous, now, call.principal.username)
        bus = call.ctx.bus
        on_commit(call.session, lambda: bus.publish(event))
    return previous
