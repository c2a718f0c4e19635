"""A small, fully known world for tests: two cities, three communities, one user per role.

Built through the real services (so building it exercises them), once per backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role
from cityweave.accounts.schemas import GrantIn, UserCreate
from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.devices.registry import service as devices
from cityweave.devices.registry.schemas import CapabilityRefModel, DeviceRegister
from cityweave.people import service as people
from cityweave.people.models import CareTagKind, MembershipRole
from cityweave.people.schemas import MembershipIn, PersonCreate
from cityweave.places import service as places
from cityweave.places.models import FacilityType, PlaceKind
from cityweave.places.schemas import PlaceCreate

PASSWORD = "Test-pass-2026"

SQUARE = {"type": "Polygon", "coordinates": [[[113.9, 22.5], [113.95, 22.5], [113.95, 22.55], [113.9, 22.55], [113.9, 22.5]]]}

# (id, kind, parent)
TREE: list[tuple[str, PlaceKind, str | None]] = [
    ("tc", PlaceKind.CITY, None),
    ("tc-d1", PlaceKind.DISTRICT, "tc"),
    ("tc-d1-s1", PlaceKind.STREET, "tc-d1"),
    ("ca", PlaceKind.COMMUNITY, "tc-d1-s1"),
    ("ca-g1", PlaceKind.GRID, "ca"),
    ("ca-g2", PlaceKind.GRID, "ca"),
    ("ca-b1", PlaceKind.BUILDING, "ca-g1"),
    ("ca-b1-u1", PlaceKind.UNIT, "ca-b1"),
    ("ca-b1-u1-101", PlaceKind.HOUSEHOLD, "ca-b1-u1"),
    ("ca-b1-u1-102", PlaceKind.HOUSEHOLD, "ca-b1-u1"),
    ("ca-b2", PlaceKind.BUILDING, "ca-g2"),
    ("ca-b2-u1", PlaceKind.UNIT, "ca-b2"),
    ("ca-b2-u1-201", PlaceKind.HOUSEHOLD, "ca-b2-u1"),
    ("cb", PlaceKind.COMMUNITY, "tc-d1-s1"),
    ("cb-g1", PlaceKind.GRID, "cb"),
    ("cb-b1", PlaceKind.BUILDING, "cb-g1"),
    ("cb-b1-u1", PlaceKind.UNIT, "cb-b1"),
    ("cb-b1-u1-101", PlaceKind.HOUSEHOLD, "cb-b1-u1"),
    ("oc", PlaceKind.CITY, None),
    ("oc-d1", PlaceKind.DISTRICT, "oc"),
    ("oc-d1-s1", PlaceKind.STREET, "oc-d1"),
    ("cc", PlaceKind.COMMUNITY, "oc-d1-s1"),
    ("cc-g1", PlaceKind.GRID, "cc"),
    ("cc-b1", PlaceKind.BUILDING, "cc-g1"),
    ("cc-b1-u1", PlaceKind.UNIT, "cc-b1"),
    ("cc-b1-u1-101", PlaceKind.HOUSEHOLD, "cc-b1-u1"),
]

# household → (name, phone, id number, care tags)
RESIDENTS = {
    "ca-b1-u1-101": ("王秀英", "13800001101", "110101194501011230", [CareTagKind.ELDERLY_ALONE]),
    "ca-b1-u1-102": ("李建国", "13800001102", None, []),
    "ca-b2-u1-201": ("张伟", "13800001201", None, [CareTagKind.DISABLED]),
    "cb-b1-u1-101": ("刘芳", "13800002101", None, [CareTagKind.CHRONIC_ILLNESS]),
    "cc-b1-u1-101": ("陈静", "13800003101", None, []),
}

# role → (username, scope place)
ROLE_USERS: dict[Role, tuple[str, str | None]] = {
    Role.RESIDENT: ("resident_a", "ca-b1-u1-101"),
    Role.GRID_WORKER: ("grid_a", "ca-g1"),
    Role.PROPERTY_STAFF: ("property_a", "ca"),
    Role.COMMUNITY_ADMIN: ("admin_a", "ca"),
    Role.DEPARTMENT_OFFICER: ("officer_a", "ca"),
    Role.SERVICE_PROVIDER: ("provider", None),
    Role.CITY_OPERATOR: ("city_op", "tc"),
    Role.PLATFORM_ADMIN: ("platform", None),
}


@dataclass
class World:
    person_of_household: dict[str, str] = field(default_factory=dict)
    user_ids: dict[Role, str] = field(default_factory=dict)
    tokens: dict[Role, str] = field(default_factory=dict)
    # One extra resident account per household: targets for "may X manage this account?".
    household_user: dict[str, str] = field(default_factory=dict)
    # A second member of the resident account's household (not the account's own person).
    family_member: str = ""
    # One Zigbee plug per household (a bound device: commands encode), for device rules.
    device_of_household: dict[str, str] = field(default_factory=dict)

    def token(self, role: Role) -> str:
        return self.tokens[role]


def build_world(ctx: AppContext) -> World:
    world = World()
    with ctx.db.session() as session:
        call = Call(ctx, session, Principal.system("test-world"))
        for place_id, kind, parent in TREE:
            geometry = None
            if kind in (PlaceKind.COMMUNITY, PlaceKind.GRID):
                geometry = SQUARE
            elif kind is PlaceKind.BUILDING:
                geometry = {"type": "Point", "coordinates": [113.92, 22.52]}
            places.create_place(call, PlaceCreate(id=place_id, kind=kind, parent_id=parent,
                                                  name=f"地点 {place_id}", geometry=geometry))
        places.create_place(call, PlaceCreate(id="ca-gate1", kind=PlaceKind.FACILITY, parent_id="ca",
                                              facility_type=FacilityType.GATE, name="东门"))
        for household, (name, phone, id_number, tags) in RESIDENTS.items():
            person = people.create_person(call, PersonCreate(
                name=name, phone=phone, id_number=id_number, care_tags=tags,
                households=[MembershipIn(household_id=household, role=MembershipRole.OWNER)],
            ))
            world.person_of_household[household] = person.id
        world.family_member = people.create_person(call, PersonCreate(
            name="王小明", phone="13900001101", care_tags=[CareTagKind.MINOR],
            households=[MembershipIn(household_id="ca-b1-u1-101", role=MembershipRole.FAMILY)],
        )).id
        for role, (username, place) in ROLE_USERS.items():
            user = accounts.create_user(call, UserCreate(
                username=username,
                password=PASSWORD if role in (Role.RESIDENT, Role.COMMUNITY_ADMIN) else None,
                display_name=username,
                person_id=world.person_of_household["ca-b1-u1-101"] if role is Role.RESIDENT else None,
                grants=[GrantIn(role=role, place_id=place,
                                categories=["repairs"] if role is Role.DEPARTMENT_OFFICER else None)],
            ))
            world.user_ids[role] = user.id
            # Long-lived tokens so every cloned test database can use them as they are.
            ctx.settings.access_token_minutes = 60 * 24 * 365 * 10
            world.tokens[role] = accounts.issue_tokens(ctx, session, user, source_ip=None).access_token
            ctx.settings.access_token_minutes = 15
        for household in RESIDENTS:
            user = accounts.create_user(call, UserCreate(
                username=f"res-{household}", display_name=household,
                grants=[GrantIn(role=Role.RESIDENT, place_id=household)],
            ))
            world.household_user[household] = user.id
        for number, household in enumerate(RESIDENTS, start=1):
            device, _, _ = devices.register(call, plug(household, number))
            world.device_of_household[household] = device.id
    return world


def plug(place_id: str, number: int) -> DeviceRegister:
    """A Zigbee2MQTT smart plug as its bridge describes it: switchable, metering power."""
    friendly = f"plug-{place_id}"
    return DeviceRegister(
        place_id=place_id, name=f"插座 {place_id}", adapter="zigbee2mqtt",
        address=f"0x00158d00000{number:05d}", aliases=[friendly], device_type="plug",
        manufacturer="Xiaomi", model="ZNCZ02LM", protocol="zigbee",
        capabilities=[CapabilityRefModel(capability="on_off", writable=True),
                      CapabilityRefModel(capability="power_w")],
        profile={"friendly_name": friendly, "properties": {
            "state": {"type": "binary", "access": 7, "value_on": "ON", "value_off": "OFF",
                      "parent": "switch", "capability": "on_off"},
            "power": {"type": "numeric", "access": 5, "unit": "W", "parent": None, "capability": "power_w"},
        }},
    )
