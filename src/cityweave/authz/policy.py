"""Role-based, scope-limited access, decided in this one module.

A caller is a :class:`Principal` holding grants: a role over a place (by path). The
:data:`POLICY` table says which actions each role may take on each kind of resource;
the grant's place says *where*. Services never check roles by hand: they ask
:func:`scope_clause` for a SQL condition to add to a query, or :func:`check` for one
object. Adding a resource kind means one row here and one ``ScopeColumns`` entry.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, exists, false, literal, or_, select, true

from cityweave.accounts.models import Role, RoleGrant, User
from cityweave.alarms.models import Alarm
from cityweave.audit.models import AuditRecord
from cityweave.devices.registry.models import Device
from cityweave.people.models import CareTag, HouseholdMember, Person
from cityweave.places.models import Place
from cityweave.workorders.models import WorkOrder


class Action(enum.StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REVEAL_CONTACT = "reveal_contact"  # see a full name and phone number
    REVEAL_ID = "reveal_id"  # see a full ID-card number
    IMPORT = "import"
    EXPORT = "export"
    DISPATCH = "dispatch"  # send people to where an alarm is (alarms)


class Resource(enum.StrEnum):
    PLACE = "place"
    PERSON = "person"
    CARE_TAG = "care_tag"
    MEMBERSHIP = "membership"
    USER = "user"
    AUDIT = "audit"
    DEVICE = "device"  # the registry record: see, claim/register, change, decommission
    COMMAND = "command"  # telling a device to do something, and the log of who did
    ALARM = "alarm"  # read; create (emergency call); update (acknowledge, resolve); dispatch
    WORK_ORDER = "work_order"  # resident reports and their handling (workorders/)
    WORK_ORDER_CATEGORY = "work_order_category"  # the category catalogue: who answers what, how fast
    AUTOMATION = "automation"  # a household's mode, scenes and automations (rules/)
    RULE_SETTING = "rule_setting"  # a household's settings of the built-in safety and care rules


A = Action
_ALL = frozenset(Action)

# role → resource → actions. Absent means denied. Least privilege: each role gets what its
# daily work needs and nothing else (why, per role, is in docs/architecture.md).
POLICY: dict[Role, dict[Resource, frozenset[Action]]] = {
    Role.RESIDENT: {
        Resource.PLACE: frozenset({A.READ}),
        Resource.PERSON: frozenset({A.READ, A.REVEAL_CONTACT}),
        Resource.CARE_TAG: frozenset({A.READ}),
        Resource.MEMBERSHIP: frozenset({A.READ}),
        Resource.DEVICE: frozenset({A.READ, A.CREATE, A.UPDATE, A.DELETE}),
        Resource.COMMAND: frozenset({A.READ, A.CREATE}),
        Resource.AUTOMATION: frozenset({A.READ, A.CREATE, A.UPDATE, A.DELETE}),
        Resource.RULE_SETTING: frozenset({A.READ, A.UPDATE}),
        # Own reports and the community's public ones (see work_order_clause).
        Resource.WORK_ORDER: frozenset({A.READ, A.CREATE}),
        Resource.ALARM: frozenset({A.READ, A.CREATE, A.UPDATE}),
    },
    Role.GRID_WORKER: {
        Resource.PLACE: frozenset({A.READ, A.UPDATE}),
        Resource.PERSON: frozenset({A.READ, A.CREATE, A.UPDATE, A.REVEAL_CONTACT, A.REVEAL_ID}),
        Resource.CARE_TAG: frozenset({A.READ, A.CREATE, A.DELETE}),
        Resource.MEMBERSHIP: frozenset({A.READ, A.CREATE, A.DELETE}),
        Resource.DEVICE: frozenset({A.READ}),
        Resource.AUTOMATION: frozenset({A.READ}),
        Resource.RULE_SETTING: frozenset({A.READ}),
        Resource.WORK_ORDER: frozenset({A.READ, A.CREATE, A.UPDATE}),
        Resource.ALARM: frozenset({A.READ, A.UPDATE, A.DISPATCH}),
    },
    Role.PROPERTY_STAFF: {
        Resource.PLACE: frozenset({A.READ, A.CREATE, A.UPDATE}),
        Resource.PERSON: frozenset({A.READ, A.REVEAL_CONTACT}),
        Resource.MEMBERSHIP: frozenset({A.READ}),
        Resource.DEVICE: frozenset({A.READ, A.CREATE, A.UPDATE, A.DELETE}),
        Resource.COMMAND: frozenset({A.READ, A.CREATE}),
        Resource.AUTOMATION: frozenset({A.READ}),
        Resource.RULE_SETTING: frozenset({A.READ, A.UPDATE}),
        Resource.WORK_ORDER: frozenset({A.READ, A.CREATE, A.UPDATE}),
        Resource.ALARM: frozenset({A.READ, A.UPDATE, A.DISPATCH}),
    },
    Role.COMMUNITY_ADMIN: {
        Resource.PLACE: _ALL - {A.REVEAL_CONTACT, A.REVEAL_ID},
        Resource.PERSON: _ALL,
        Resource.CARE_TAG: frozenset({A.READ, A.CREATE, A.DELETE}),
        Resource.MEMBERSHIP: frozenset({A.READ, A.CREATE, A.DELETE, A.IMPORT, A.EXPORT}),
        Resource.USER: frozenset({A.READ, A.CREATE, A.UPDATE}),
        Resource.AUDIT: frozenset({A.READ}),
        Resource.DEVICE: frozenset({A.READ, A.CREATE, A.UPDATE, A.DELETE}),
        Resource.COMMAND: frozenset({A.READ, A.CREATE}),
        Resource.AUTOMATION: frozenset({A.READ}),
        Resource.RULE_SETTING: frozenset({A.READ, A.UPDATE}),
        Resource.WORK_ORDER: frozenset({A.READ, A.CREATE, A.UPDATE}),
        Resource.ALARM: frozenset({A.READ, A.UPDATE, A.DISPATCH}),
    },
    Role.DEPARTMENT_OFFICER: {
        Resource.PLACE: frozenset({A.READ}),
        # Only the categories named in the grant, inside its area (see work_order_clause).
        Resource.WORK_ORDER: frozenset({A.READ, A.UPDATE}),
    },
    Role.SERVICE_PROVIDER: {
        # Only the work orders assigned to them (see work_order_clause).
        Resource.WORK_ORDER: frozenset({A.READ, A.UPDATE}),
    },
    Role.CITY_OPERATOR: {
        Resource.PLACE: frozenset({A.READ, A.CREATE, A.UPDATE, A.EXPORT}),
        Resource.PERSON: frozenset({A.READ}),
        Resource.MEMBERSHIP: frozenset({A.READ}),
        Resource.USER: frozenset({A.READ, A.CREATE, A.UPDATE}),
        Resource.AUDIT: frozenset({A.READ}),
        Resource.DEVICE: frozenset({A.READ}),
        Resource.WORK_ORDER: frozenset({A.READ}),  # statistics and supervision; reporters stay masked
        Resource.ALARM: frozenset({A.READ}),
    },
    Role.PLATFORM_ADMIN: {resource: _ALL for resource in Resource},
}

# Which roles a holder of a role may hand out (within its own scope).
GRANTABLE: dict[Role, frozenset[Role]] = {
    Role.COMMUNITY_ADMIN: frozenset(
        {Role.RESIDENT, Role.GRID_WORKER, Role.PROPERTY_STAFF, Role.COMMUNITY_ADMIN}
    ),
    Role.CITY_OPERATOR: frozenset(
        {
            Role.RESIDENT,
            Role.GRID_WORKER,
            Role.PROPERTY_STAFF,
            Role.COMMUNITY_ADMIN,
            Role.DEPARTMENT_OFFICER,
            Role.SERVICE_PROVIDER,
            Role.CITY_OPERATOR,
        }
    ),
    Role.PLATFORM_ADMIN: frozenset(Role),
}

# The place kind each role's scope must be (None: no place, the scope is global or not a place).
SCOPE_KIND: dict[Role, str | None] = {
    Role.RESIDENT: "household",
    Role.GRID_WORKER: "grid",
    Role.PROPERTY_STAFF: "community",
    Role.COMMUNITY_ADMIN: "community",
    Role.DEPARTMENT_OFFICER: "any",
    Role.SERVICE_PROVIDER: None,
    Role.CITY_OPERATOR: "city",
    Role.PLATFORM_ADMIN: None,
}


# What anybody may do to their own person record, whatever their role: see it whole and
# correct it ("my profile"). Deleting oneself or tagging oneself goes through staff.
SELF_ACTIONS = frozenset({Action.READ, Action.REVEAL_CONTACT, Action.REVEAL_ID, Action.UPDATE})


class Unauthorized(Exception):
    """The caller may not do this. ``hidden`` means: answer as if the object did not exist."""

    def __init__(self, message: str, *, hidden: bool = False) -> None:
        super().__init__(message)
        self.hidden = hidden


@dataclass(frozen=True)
class Grant:
    role: Role
    place_path: str | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as every service sees it."""

    user_id: str
    username: str
    grants: tuple[Grant, ...] = ()
    person_id: str | None = None
    via: str = "token"  # token | api_key | session | system
    source_ip: str | None = None
    locale: str = "zh-CN"
    _cache: dict[tuple[Resource, Action], list[str] | None] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @classmethod
    def system(cls, label: str = "system") -> Principal:
        """The platform itself (CLI, demo loader, schedulers): unrestricted, still audited."""
        return cls(user_id="system", username=label, grants=(Grant(Role.PLATFORM_ADMIN),), via="system")

    @classmethod
    def from_user(cls, user: User, *, via: str, source_ip: str | None = None) -> Principal:
        grants = tuple(
            Grant(g.role, g.place_path, tuple(g.categories or ())) for g in user.grants
        )
        return cls(
            user_id=user.id,
            username=user.username,
            grants=grants,
            person_id=user.person_id,
            via=via,
            source_ip=source_ip,
            locale=user.locale,
        )

    @property
    def roles(self) -> set[Role]:
        return {g.role for g in self.grants}

    def scope_paths(self, resource: Resource, action: Action) -> list[str] | None:
        """Path prefixes where the action is allowed; ``None`` means everywhere."""
        key = (resource, action)
        if key not in self._cache:
            paths: list[str] | None = []
            for grant in self.grants:
                if action not in POLICY[grant.role].get(resource, ()):
                    continue
                if grant.place_path is None:
                    paths = None
                    break
                assert paths is not None
                paths.append(grant.place_path)
            self._cache[key] = paths
        return self._cache[key]

    def may(self, resource: Resource, action: Action) -> bool:
        """Whether the action is allowed anywhere at all (for 403 vs. empty answers)."""
        return self.scope_paths(resource, action) != []


def _within(column: ColumnElement[str], paths: list[str]) -> ColumnElement[bool]:
    return or_(*(column.startswith(p, autoescape=True) for p in paths))


def _place_clause(paths: list[str], action: Action) -> ColumnElement[bool]:
    inside = _within(Place.path, paths)
    if action is not Action.READ:
        return inside
    # Everybody may read the names of the places that enclose their scope (their building,
    # community, city): that is public information and pages need it for breadcrumbs.
    enclosing = or_(*(literal(p).startswith(Place.path) for p in paths))
    return or_(inside, enclosing)


def _person_clause(paths: list[str], action: Action) -> ColumnElement[bool]:
    return exists(
        select(HouseholdMember.id).where(
            HouseholdMember.person_id == Person.id, _within(HouseholdMember.household_path, paths)
        )
    )


def _care_tag_clause(paths: list[str], action: Action) -> ColumnElement[bool]:
    return exists(
        select(HouseholdMember.id).where(
            HouseholdMember.person_id == CareTag.person_id,
            _within(HouseholdMember.household_path, paths),
        )
    )


def _user_clause(paths: list[str], action: Action) -> ColumnElement[bool]:
    return exists(
        select(RoleGrant.id).where(
            RoleGrant.user_id == User.id, _within(RoleGrant.place_path, paths)
        )
    )


HOUSEHOLD = "household"


def _device_clause(paths: list[str], action: Action) -> ColumnElement[bool]:
    """Devices at or under the scope; but a household's devices are the household's business.

    Reading follows the place tree (a grid worker sees the alarms of the homes in the grid).
    Changing a household's device, and commanding it or reading its command log (which says
    when the family switched what), needs a grant on that very household: a community-wide grant
    reaches the community's facility devices, not those inside homes. A device not yet in a
    place (discovered) matches no path; see :func:`sees_unplaced_devices`.
    """
    if action is Action.READ:
        return _within(Device.place_path, paths)
    return or_(*(
        and_(Device.place_path.startswith(p, autoescape=True),
             or_(Device.place_kind != HOUSEHOLD, Device.place_path == p))
        for p in paths
    ))


def _command_clause(paths: list[str], action: Action) -> ColumnElement[bool]:
    # Commands are checked against their device: the household rule holds for reads too.
    return _device_clause(paths, Action.CREATE)


_SCOPE_CLAUSES: dict[Resource, Callable[[list[str], Action], ColumnElement[bool]]] = {
    Resource.PLACE: _place_clause,
    Resource.PERSON: _person_clause,
    Resource.CARE_TAG: _care_tag_clause,
    Resource.MEMBERSHIP: lambda paths, _a: _within(HouseholdMember.household_path, paths),
    Resource.USER: _user_clause,
    Resource.AUDIT: lambda paths, _a: _within(AuditRecord.place_path, paths),
    Resource.DEVICE: _device_clause,
    Resource.COMMAND: _command_clause,
    Resource.ALARM: lambda paths, _a: _within(Alarm.place_path, paths),
    # Work orders need more than a path (categories, reporters, assignees): work_order_clause.
    Resource.WORK_ORDER: lambda paths, _a: _within(WorkOrder.place_path, paths),
    Resource.WORK_ORDER_CATEGORY: lambda paths, _a: true(),
    # Mode, scenes and automations belong to a household: checked against the household place.
    Resource.AUTOMATION: lambda paths, _a: _within(Place.path, paths),
    Resource.RULE_SETTING: lambda paths, _a: _within(Place.path, paths),
}

# Devices that announced themselves belong to no place until someone claims them, so no path
# scope covers them. The people who install bridges and gateways see them: property staff and
# community admins (whose announcements may come from any home they serve), and platform admins.
# Residents claim their own device by its id (shown by the installer or the app), which is an
# unguessable pairing code.
UNPLACED_DEVICE_ROLES = frozenset({Role.PROPERTY_STAFF, Role.COMMUNITY_ADMIN, Role.PLATFORM_ADMIN})


def sees_unplaced_devices(principal: Principal) -> bool:
    return bool(principal.roles & UNPLACED_DEVICE_ROLES)


def allows_device_at(principal: Principal, resource: Resource, action: Action, place_path: str,
                     place_kind: str) -> bool:
    """:func:`allows` for a device that is (or is about to be) at a place: the Python twin of
    :func:`_device_clause`, for claims and registrations where no row is there to query yet."""
    scope = principal.scope_paths(resource, action)
    if scope is None:
        return True
    if action is Action.READ and resource is Resource.DEVICE:
        return any(place_path.startswith(s) for s in scope)
    return any(place_path.startswith(s) and (place_kind != HOUSEHOLD or place_path == s) for s in scope)


def scope_clause(principal: Principal, resource: Resource, action: Action) -> ColumnElement[bool]:
    """A WHERE condition limiting a query on ``resource`` to what the caller may ``action``."""
    paths = principal.scope_paths(resource, action)
    self_clause = _self_clause(principal, resource, action)
    if paths is None:
        return true()
    clauses = [_SCOPE_CLAUSES[resource](paths, action)] if paths else []
    if self_clause is not None:
        clauses.append(self_clause)
    return or_(*clauses) if clauses else false()


def _self_clause(
    principal: Principal, resource: Resource, action: Action
) -> ColumnElement[bool] | None:
    # Everybody may read their own account and their own person record.
    if action not in (Action.READ, Action.REVEAL_CONTACT):
        return None
    if resource is Resource.USER:
        return User.id == principal.user_id
    if resource is Resource.PERSON and principal.person_id:
        return Person.id == principal.person_id
    return None


def allows(principal: Principal, resource: Resource, action: Action, paths: Iterable[str]) -> bool:
    """Whether the caller may ``action`` an object that lives at any of ``paths``."""
    scope = principal.scope_paths(resource, action)
    if scope is None:
        return True
    return any(p.startswith(s) for p in paths for s in scope)


def check(
    principal: Principal,
    resource: Resource,
    action: Action,
    paths: Iterable[str],
    *,
    visible: bool = True,
) -> None:
    """Raise :class:`Unauthorized` unless allowed. ``visible`` says whether the caller may at
    least see the object: if not, the error is *hidden* (answered as 404, not 403), so that
    ids outside one's scope cannot be probed."""
    if not allows(principal, resource, action, list(paths)):
        raise Unauthorized(f"not allowed to {action} this {resource}", hidden=not visible)


def can_grant(principal: Principal, role: Role, place_path: str | None) -> bool:
    """A grantor may hand out a role only within a scope it holds, and only roles it may give."""
    for grant in principal.grants:
        if role not in GRANTABLE.get(grant.role, ()):
            continue
        if grant.place_path is None:
            return True
        if place_path is not None and place_path.startswith(grant.place_path):
            return True
    return False


# -- work orders -----------------------------------------------------------------------------------
# A work order is seen by more than the place tree says: its reporter sees it wherever it is,
# residents see those at their home (a hotline call or an alarm's site visit) and the public
# ones of their community, department officers only their categories,
# service providers only what is assigned to them.
_COMMUNITY_DEPTH = 4  # city › district › street › community: the fixed top of the place tree


def community_path(path: str) -> str:
    """The community prefix of a path below a community (a household's, a grid's)."""
    parts = [p for p in path.strip("/").split("/") if p]
    return "/" + "/".join(parts[:_COMMUNITY_DEPTH]) + "/"


def _work_order_grant_clause(principal: Principal, grant: Grant, action: Action) -> ColumnElement[bool]:
    if grant.place_path is None and grant.role is not Role.SERVICE_PROVIDER:
        return true()
    if grant.role is Role.SERVICE_PROVIDER:
        return WorkOrder.assignee_user_id == principal.user_id
    if grant.role is Role.RESIDENT:  # READ only: what concerns their home, and the public reports around them
        return or_(WorkOrder.place_path.startswith(grant.place_path or "/"),
                   and_(WorkOrder.place_path.startswith(community_path(grant.place_path or "/")),
                        WorkOrder.public.is_(True)))
    clause = WorkOrder.place_path.startswith(grant.place_path or "/")
    if grant.role is Role.DEPARTMENT_OFFICER:
        clause = and_(clause, WorkOrder.category_id.in_(list(grant.categories)))
    return clause


def work_order_clause(principal: Principal, action: Action) -> ColumnElement[bool]:
    """The WHERE condition for work orders the caller may ``action``."""
    clauses = [
        _work_order_grant_clause(principal, grant, action)
        for grant in principal.grants
        if action in POLICY[grant.role].get(Resource.WORK_ORDER, ())
    ]
    if action is Action.READ:
        clauses.append(WorkOrder.reporter_user_id == principal.user_id)
    return or_(*clauses) if clauses else false()


def allows_work_order(principal: Principal, action: Action, order: WorkOrder) -> bool:
    """The Python twin of :func:`work_order_clause`, for one loaded work order."""
    if action is Action.READ and order.reporter_user_id == principal.user_id:
        return True
    for grant in principal.grants:
        if action not in POLICY[grant.role].get(Resource.WORK_ORDER, ()):
            continue
        if grant.role is Role.SERVICE_PROVIDER:
            if order.assignee_user_id == principal.user_id:
                return True
        elif grant.place_path is None:
            return True
        elif grant.role is Role.RESIDENT:
            if order.place_path.startswith(grant.place_path) or (
                order.public and order.place_path.startswith(community_path(grant.place_path))
            ):
                return True
        elif order.place_path.startswith(grant.place_path) and (
            grant.role is not Role.DEPARTMENT_OFFICER or order.category_id in grant.categories
        ):
            return True
    return False


def may_report_at(principal: Principal, place_path: str) -> bool:
    """Where the caller may file a report: residents anywhere in their community, staff in
    their scope, the platform anywhere."""
    for grant in principal.grants:
        if Action.CREATE not in POLICY[grant.role].get(Resource.WORK_ORDER, ()):
            continue
        if grant.place_path is None:
            return True
        area = community_path(grant.place_path) if grant.role is Role.RESIDENT else grant.place_path
        if place_path.startswith(area):
            return True
    return False
