"""Welfare of key populations for the staff console's overview: how many people with care tags
(elderly living alone, disabled, ...) live in the caller's view, and which of their households
have an open care alarm now (emergency call, fall, no activity, vital signs).

Only for roles that read care tags (``service.may_read_care_tags``); counted within the caller's
CARE_TAG and MEMBERSHIP scopes, alarms within the ALARM scope, so nothing here reveals a tag or
an alarm the caller could not read one by one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import distinct, func, select

from cityweave.alarms.models import OPEN, Alarm, AlarmStatus, Severity
from cityweave.authz.policy import Action, Resource, scope_clause
from cityweave.context import Call
from cityweave.people.models import CareTag, HouseholdMember
from cityweave.people.service import may_read_care_tags
from cityweave.places.models import Place

# The alarms about a person's welfare (rules/builtin.py: elderly, vital_signs; the emergency call).
WELFARE_ALARM_KINDS = ("emergency_call", "fall", "inactivity", "vital_signs")


@dataclass(frozen=True)
class WelfareAlarm:
    alarm_id: str
    kind: str
    severity: Severity
    status: AlarmStatus
    household_id: str
    household_name: str
    since: datetime


@dataclass
class WelfareStatus:
    persons: int  # people with at least one care tag
    by_tag: dict[str, int] = field(default_factory=dict)  # care tag → people
    households: int = 0  # households with such a member
    alarmed_households: int = 0  # ... of which have an open care alarm now
    alarms: list[WelfareAlarm] = field(default_factory=list)  # the oldest open ones first
    more: int = 0  # open care alarms not in ``alarms``


def welfare_status(call: Call, *, limit: int = 8) -> WelfareStatus | None:
    """``None`` for roles that do not read care tags."""
    principal = call.principal
    if not may_read_care_tags(principal):
        return None
    session = call.session
    tags_seen = scope_clause(principal, Resource.CARE_TAG, Action.READ)
    by_tag = {str(tag): n for tag, n in session.execute(
        select(CareTag.tag, func.count(distinct(CareTag.person_id))).where(tags_seen).group_by(CareTag.tag)).all()}
    persons = session.execute(select(func.count(distinct(CareTag.person_id))).where(tags_seen)).scalar_one()
    tagged = select(CareTag.person_id).where(tags_seen)
    homes = select(HouseholdMember.household_id).where(
        HouseholdMember.person_id.in_(tagged), scope_clause(principal, Resource.MEMBERSHIP, Action.READ))
    households = session.execute(select(func.count(distinct(HouseholdMember.household_id))).where(
        HouseholdMember.person_id.in_(tagged), scope_clause(principal, Resource.MEMBERSHIP, Action.READ))).scalar_one()
    rows = session.execute(
        select(Alarm.id, Alarm.kind, Alarm.severity, Alarm.status, Alarm.place_id, Place.name, Alarm.first_at)
        .join(Place, Place.id == Alarm.place_id)
        .where(Alarm.status.in_(sorted(OPEN)), Alarm.kind.in_(WELFARE_ALARM_KINDS),
               scope_clause(principal, Resource.ALARM, Action.READ), Alarm.place_id.in_(homes))
        .order_by(Alarm.first_at, Alarm.id)
    ).all()
    alarms = [WelfareAlarm(r.id, r.kind, Severity(r.severity), AlarmStatus(r.status), r.place_id, r.name, r.first_at)
              for r in rows]
    return WelfareStatus(
        persons=persons, by_tag=dict(Counter(by_tag).most_common()), households=households,
        alarmed_households=len({a.household_id for a in alarms}), alarms=alarms[:limit],
        more=max(len(alarms) - limit, 0),
    )
