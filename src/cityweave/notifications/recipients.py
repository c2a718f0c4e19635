"""Who is told: the users of an audience for a place, from the role grants (active users only).

A grant *covers* a place when the place's path starts with the grant's path (the grant is on the
place or on one enclosing it); that is one indexed comparison, like every scope check.

* ``family``: residents whose grant covers the place (for a household: its residents);
* ``grid_worker``: grid workers of the grid around it;
* ``property_staff``: property staff of the community;
* ``community_staff``: property staff and community admins of the community.
"""

from __future__ import annotations

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from cityweave.accounts.models import Role, RoleGrant, User

AUDIENCE_ROLES: dict[str, frozenset[Role]] = {
    "family": frozenset({Role.RESIDENT}),
    "grid_worker": frozenset({Role.GRID_WORKER}),
    "property_staff": frozenset({Role.PROPERTY_STAFF}),
    "community_staff": frozenset({Role.PROPERTY_STAFF, Role.COMMUNITY_ADMIN}),
}

# Told when an alarm is raised without an escalation chain.
DEFAULT_AUDIENCES = ("family", "property_staff")


def users_for(session: Session, place_path: str, audience: str) -> list[str]:
    """Ids of the active users of ``audience`` whose grant covers ``place_path`` (sorted)."""
    roles = AUDIENCE_ROLES.get(audience)
    if roles is None:
        raise ValueError(f"unknown audience {audience!r}; use one of {sorted(AUDIENCE_ROLES)}")
    rows = session.execute(
        select(User.id)
        .join(RoleGrant, RoleGrant.user_id == User.id)
        .where(
            User.is_active.is_(True),
            RoleGrant.role.in_(sorted(roles)),
            RoleGrant.place_path.is_not(None),
            literal(place_path).startswith(RoleGrant.place_path),
        )
        .distinct()
    )
    return sorted(rows.scalars())


def users_for_all(session: Session, place_path: str, audiences: tuple[str, ...] | list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for audience in audiences:
        seen.update(dict.fromkeys(users_for(session, place_path, audience)))
    return list(seen)
