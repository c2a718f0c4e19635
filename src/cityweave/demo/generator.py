"""A deterministic, realistic demo district: places, residents, facilities and demo accounts.

Everything comes from ``random.Random`` seeded with the seed (one stream per community, so a
change to one community does not reshuffle the others) and from ``today``, the day ages are
counted from. Nothing reads the wall clock: the same seed and day give the same district, byte
for byte, which keeps screenshots, the README and the tests honest.

The output is plain data (frozen dataclasses): :mod:`cityweave.demo.loader` writes it to a
database, tests inspect it without one.

What it describes: 深圳市 › 南山区 › 粤海街道 with three communities of different character:

* 幸福里 (xfl): a 2013 high-rise estate, 12 buildings × 18 floors × 2 units × 2 households
  (864 households), young families, some renters, four grids;
* 翠竹苑 (czy): a 1990s walk-up estate, 6 buildings × 7 floors, an older population;
* 南风村 (nfc): an urban village (城中村) of narrow "handshake" buildings, mostly young renters.

The people are invented. Their ID-card numbers have valid check digits and their phone numbers
the shape of mainland mobiles, so every form and import check accepts them; by chance some may
equal real numbers, as with any invented data, so never contact them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from cityweave.demo import names
from cityweave.demo.accounts import DEMO_ACCOUNTS, DemoAccount
from cityweave.people.identity_numbers import id_check_digit
from cityweave.people.models import CareTagKind, MembershipRole
from cityweave.people.schemas import Gender
from cityweave.places.models import FacilityType, PlaceKind

DEFAULT_SEED = 20260101
REFERENCE_DAY = date(2026, 1, 1)

CITY_ID, DISTRICT_ID, STREET_ID = "sz", "ns", "ns-yh"
NANSHAN_CODE = "440305"

# Birthplace codes (the first six digits of an ID number) of people who moved to Shenzhen, by
# rough share of Shenzhen's migrants: Guangdong first, then the neighbouring provinces.
ORIGINS: tuple[tuple[str, float], ...] = (
    ("440304", 4), ("440303", 3), ("440306", 3), ("440106", 3), ("445202", 5), ("440514", 4),
    ("441402", 4), ("430104", 4), ("430602", 3), ("420106", 3), ("360102", 3), ("510104", 2),
    ("450102", 2), ("350102", 1), ("410105", 2),
)
MOBILE_PREFIXES = (
    "134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182",
    "183", "187", "188", "130", "131", "132", "155", "156", "185", "186", "133", "153", "180",
    "181", "189", "177", "199", "166", "198",
)

HOUSEHOLD_TYPES = (
    "single", "elderly_alone", "couple", "elderly_couple", "nuclear1", "nuclear2", "three_gen",
    "shared", "single_parent",
)


# -- the description --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlaceSpec:
    """One place, in parent-before-child order; ``path`` as :class:`~cityweave.places.models.Place` has it."""

    id: str
    kind: PlaceKind
    parent_id: str | None
    path: str
    name: str
    name_en: str
    code: str | None = None
    facility_type: FacilityType | None = None
    geometry: dict[str, Any] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResidentSpec:
    """One resident with one household membership; ``id`` is the person id to store."""

    id: str
    name: str
    gender: Gender
    birth_date: date
    id_number: str
    phone: str | None
    household_id: str
    role: MembershipRole
    since: date
    care_tags: tuple[CareTagKind, ...]

    def age(self, today: date) -> int:
        before_birthday = (today.month, today.day) < (self.birth_date.month, self.birth_date.day)
        return today.year - self.birth_date.year - before_birthday


@dataclass(frozen=True)
class AccountSpec:
    """A demo account bound to this district: residents get their person and name here."""

    account: DemoAccount
    person_id: str | None
    display_name: str


@dataclass(frozen=True)
class DemoDistrict:
    seed: int
    today: date
    places: tuple[PlaceSpec, ...]
    residents: tuple[ResidentSpec, ...]
    accounts: tuple[AccountSpec, ...]

    @cached_property
    def _by_id(self) -> dict[str, PlaceSpec]:
        return {p.id: p for p in self.places}

    def place(self, place_id: str) -> PlaceSpec:
        return self._by_id[place_id]

    def places_of(self, kind: PlaceKind) -> list[PlaceSpec]:
        return [p for p in self.places if p.kind is kind]

    def residents_within(self, place_id: str) -> list[ResidentSpec]:
        """Residents whose household lies inside ``place_id`` (or is it)."""
        prefix = self.place(place_id).path
        return [r for r in self.residents if self._by_id[r.household_id].path.startswith(prefix)]

    def household_members(self, household_id: str) -> list[ResidentSpec]:
        return [r for r in self.residents if r.household_id == household_id]


# -- the plan: what each community is like ----------------------------------------------------------
@dataclass(frozen=True)
class CommunityPlan:
    id: str
    name: str
    name_en: str
    center: tuple[float, float]  # lon, lat
    size_m: tuple[float, float]  # east-west, north-south
    rotation_deg: float
    grids: int
    buildings: int
    floors: int
    units: int
    per_floor: int  # households per floor in one unit
    built_year: int
    elevators: int  # per unit
    flats: tuple[tuple[float, str], ...]  # per position on a floor: (m², layout)
    vacancy: float
    rented: float
    low_income: float
    mix: tuple[tuple[str, float], ...]  # household type → weight
    gates: tuple[tuple[str, str, str, str], ...]  # (id suffix, name, name_en, side e|w|n|s)
    parking_spaces: int
    per_grid: tuple[tuple[FacilityType, int], ...]


_HIGH_RISE_FACILITIES = (
    (FacilityType.PARCEL_LOCKER, 1), (FacilityType.CHARGING_PILE, 2), (FacilityType.STREET_LIGHT, 4),
    (FacilityType.WASTE_BIN, 2), (FacilityType.CAMERA, 3),
)
_SMALL_FACILITIES = (
    (FacilityType.PARCEL_LOCKER, 1), (FacilityType.CHARGING_PILE, 1), (FacilityType.STREET_LIGHT, 3),
    (FacilityType.WASTE_BIN, 1), (FacilityType.CAMERA, 2),
)

COMMUNITIES: tuple[CommunityPlan, ...] = (
    CommunityPlan(
        id="xfl", name="幸福里", name_en="Xingfuli", center=(113.9290, 22.5240), size_m=(420, 300),
        rotation_deg=12, grids=4, buildings=12, floors=18, units=2, per_floor=2, built_year=2013,
        elevators=2, flats=((89.5, "3室2厅"), (126.0, "4室2厅")), vacancy=0.15, rented=0.25,
        low_income=0.01,
        mix=(("single", 17), ("elderly_alone", 7), ("couple", 18), ("elderly_couple", 8),
             ("nuclear1", 24), ("nuclear2", 8), ("three_gen", 7), ("shared", 6), ("single_parent", 5)),
        gates=(("gate-e", "东门", "East Gate", "e"), ("gate-s", "南门", "South Gate", "s"),
               ("gate-n", "北门（人行）", "North Gate (pedestrians)", "n")),
        parking_spaces=620, per_grid=_HIGH_RISE_FACILITIES,
    ),
    CommunityPlan(
        id="czy", name="翠竹苑", name_en="Cuizhuyuan", center=(113.9368, 22.5208), size_m=(220, 160),
        rotation_deg=-8, grids=2, buildings=6, floors=7, units=1, per_floor=2, built_year=1996,
        elevators=0, flats=((68.0, "2室1厅"), (82.5, "3室1厅")), vacancy=0.05, rented=0.15,
        low_income=0.04,
        mix=(("single", 8), ("elderly_alone", 20), ("couple", 8), ("elderly_couple", 25),
             ("nuclear1", 14), ("nuclear2", 5), ("three_gen", 12), ("shared", 3), ("single_parent", 5)),
        gates=(("gate-w", "西门", "West Gate", "w"), ("gate-n", "北门", "North Gate", "n")),
        parking_spaces=80, per_grid=_SMALL_FACILITIES,
    ),
    CommunityPlan(
        id="nfc", name="南风村", name_en="Nanfengcun", center=(113.9326, 22.5152), size_m=(240, 180),
        rotation_deg=4, grids=2, buildings=5, floors=6, units=1, per_floor=3, built_year=2004,
        elevators=0, flats=((28.0, "1室0厅"), (36.5, "1室1厅"), (45.0, "2室1厅")), vacancy=0.08,
        rented=0.85, low_income=0.03,
        mix=(("single", 34), ("elderly_alone", 5), ("couple", 20), ("elderly_couple", 4),
             ("nuclear1", 14), ("nuclear2", 4), ("three_gen", 3), ("shared", 14), ("single_parent", 2)),
        gates=(("gate-e", "村口牌坊", "Village Arch", "e"),),
        parking_spaces=40, per_grid=_SMALL_FACILITIES,
    ),
)

_FACILITY_LABELS: dict[FacilityType, tuple[str, str, str]] = {
    FacilityType.PARCEL_LOCKER: ("pl", "智能快递柜", "Parcel locker"),
    FacilityType.CHARGING_PILE: ("ev", "电动自行车充电桩", "E-bike charging pile"),
    FacilityType.STREET_LIGHT: ("sl", "路灯", "Street light"),
    FacilityType.WASTE_BIN: ("wb", "垃圾分类投放点", "Waste sorting station"),
    FacilityType.CAMERA: ("cam", "监控摄像头", "Camera"),
}
_FACILITY_ATTRIBUTES: dict[FacilityType, dict[str, Any]] = {
    FacilityType.PARCEL_LOCKER: {"compartments": 96},
    FacilityType.CHARGING_PILE: {"ports": 10, "power_w": 400, "vehicle": "e-bike"},
    FacilityType.STREET_LIGHT: {"power_w": 60, "led": True},
    FacilityType.WASTE_BIN: {"streams": ["kitchen", "recyclable", "hazardous", "other"]},
    FacilityType.CAMERA: {"resolution": "4MP", "night_vision": True},
}


# -- geometry ---------------------------------------------------------------------------------------
M_PER_DEG_LAT = 110_574.0


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle in a community's local frame (metres east, metres north)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def inset(self, margin: float) -> Rect:
        return Rect(self.x0 + margin, self.y0 + margin, self.x1 - margin, self.y1 - margin)

    def split_x(self, parts: int, gap: float) -> list[Rect]:
        """Side-by-side strips with a road of ``gap`` metres between them."""
        width = (self.x1 - self.x0 - gap * (parts - 1)) / parts
        return [
            Rect(self.x0 + i * (width + gap), self.y0, self.x0 + i * (width + gap) + width, self.y1)
            for i in range(parts)
        ]

    def random_point(self, rng: random.Random, margin: float) -> tuple[float, float]:
        return rng.uniform(self.x0 + margin, self.x1 - margin), rng.uniform(self.y0 + margin, self.y1 - margin)


@dataclass(frozen=True)
class Frame:
    """Local metres → WGS 84 lon/lat: rotated about the community's centre, then projected.

    An affine map keeps "inside" inside, so a layout built from nested rectangles stays nested
    after rotation; the local scale is exact enough for a few hundred metres.
    """

    lon0: float
    lat0: float
    rotation_deg: float

    def lonlat(self, x: float, y: float) -> list[float]:
        angle = math.radians(self.rotation_deg)
        xr = x * math.cos(angle) - y * math.sin(angle)
        yr = x * math.sin(angle) + y * math.cos(angle)
        lon = self.lon0 + xr / (M_PER_DEG_LAT * math.cos(math.radians(self.lat0)))
        return [round(lon, 7), round(self.lat0 + yr / M_PER_DEG_LAT, 7)]

    def point(self, x: float, y: float) -> dict[str, Any]:
        return {"type": "Point", "coordinates": self.lonlat(x, y)}

    def polygon(self, rect: Rect) -> dict[str, Any]:
        # Counter-clockwise outer ring, as RFC 7946 §3.1.6 asks.
        corners = [(rect.x0, rect.y0), (rect.x1, rect.y0), (rect.x1, rect.y1), (rect.x0, rect.y1)]
        ring = [self.lonlat(x, y) for x, y in corners]
        return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


# -- people -----------------------------------------------------------------------------------------
@dataclass
class _Draft:
    """A household member before naming: relation, gender, age in years, surname."""

    relation: str  # head | spouse | child | grandparent | housemate
    gender: Gender
    age: float
    surname: str


SEXES: tuple[Gender, Gender] = ("male", "female")


def _opposite(gender: Gender) -> Gender:
    return "female" if gender == "male" else "male"


def _couple(rng: random.Random, low: float, high: float) -> list[_Draft]:
    wife = rng.uniform(low, high)
    husband = max(low, wife + rng.uniform(-2, 6))
    head_gender: Gender = "male" if rng.random() < 0.6 else "female"
    head_age, spouse_age = (husband, wife) if head_gender == "male" else (wife, husband)
    return [
        _Draft("head", head_gender, head_age, names.surname(rng)),
        _Draft("spouse", _opposite(head_gender), spouse_age, names.surname(rng)),
    ]


def _mother_and_father(members: list[_Draft]) -> tuple[_Draft, _Draft | None]:
    women = [m for m in members if m.gender == "female" and m.relation in ("head", "spouse")]
    men = [m for m in members if m.gender == "male" and m.relation in ("head", "spouse")]
    parent = women[0] if women else men[0]
    return parent, (men[0] if women and men else None)


def _children(rng: random.Random, parents: list[_Draft], count: int) -> list[_Draft]:
    """Children born when the (younger) mother was 22-40, at least 18 months apart."""
    mother, father = _mother_and_father(parents)
    oldest = max(0.1, min(mother.age - 22, 24))
    youngest = min(max(0.05, mother.age - 40), oldest)
    ages: list[float] = []
    for _ in range(count):
        age = rng.uniform(youngest, oldest)
        for _retry in range(10):
            if all(abs(age - a) >= 1.5 for a in ages):
                break
            age = rng.uniform(youngest, oldest)
        ages.append(age)
    family_surname = father.surname if father and rng.random() < 0.93 else mother.surname
    return [_Draft("child", rng.choice(SEXES), a, family_surname) for a in ages]


def _grandparents(rng: random.Random, parents: list[_Draft]) -> list[_Draft]:
    """One or two parents of one spouse; a lone grandparent is most often a grandmother."""
    child = rng.choice(parents)
    base = min(98.0, child.age + rng.uniform(24, 34))
    if rng.random() < 0.55:
        return [
            _Draft("grandparent", "male", min(99.0, base + rng.uniform(0, 4)), child.surname),
            _Draft("grandparent", "female", base, names.surname(rng)),
        ]
    if rng.random() < 0.7:
        return [_Draft("grandparent", "female", base, names.surname(rng))]
    return [_Draft("grandparent", "male", base, child.surname)]


def compose(rng: random.Random, kind: str) -> list[_Draft]:
    """Who lives in a household of ``kind``: the head first."""
    if kind == "single":
        return [_Draft("head", rng.choice(SEXES), rng.uniform(22, 59), names.surname(rng))]
    if kind == "elderly_alone":
        gender: Gender = "female" if rng.random() < 0.68 else "male"  # women outlive their husbands
        return [_Draft("head", gender, rng.triangular(65, 96, 72), names.surname(rng))]
    if kind == "couple":
        return _couple(rng, 24, 58)
    if kind == "elderly_couple":
        return _couple(rng, 60, 86)
    if kind in ("nuclear1", "nuclear2"):
        parents = _couple(rng, 27, 50)
        return parents + _children(rng, parents, 1 if kind == "nuclear1" else 2)
    if kind == "three_gen":
        parents = _couple(rng, 30, 46)
        kids = _children(rng, parents, 1 if rng.random() < 0.6 else 2)
        return parents + kids + _grandparents(rng, parents)
    if kind == "shared":
        gender = rng.choice(SEXES)
        return [
            _Draft("head" if i == 0 else "housemate", gender, rng.uniform(20, 34), names.surname(rng))
            for i in range(rng.choice((2, 2, 3)))
        ]
    if kind == "single_parent":
        sex: Gender = "female" if rng.random() < 0.8 else "male"
        parent = _Draft("head", sex, rng.uniform(28, 50), names.surname(rng))
        return [parent] + _children(rng, [parent], 1)
    raise ValueError(f"unknown household type {kind!r}")


def _weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _birth_date(today: date, age: float) -> date:
    return today - timedelta(days=max(1, round(age * 365.2425)))


def _years_between(earlier: date, later: date) -> int:
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


# -- the builder ------------------------------------------------------------------------------------
class _Builder:
    """Accumulates the description; holds the sets that keep phones and ID numbers unique."""

    def __init__(self, seed: int, today: date) -> None:
        self.seed = seed
        self.today = today
        self.places: list[PlaceSpec] = []
        self.paths: dict[str, str] = {}
        self.residents: list[ResidentSpec] = []
        self.heads: dict[str, ResidentSpec] = {}
        self.phones: set[str] = set()
        self.id_numbers: set[str] = set()
        self.anchors = {a.place_id: a.household_type for a in DEMO_ACCOUNTS if a.household_type}

    # places
    def place(self, place_id: str, kind: PlaceKind, parent_id: str | None, name: str, name_en: str,
              **extra: Any) -> PlaceSpec:
        path = (self.paths[parent_id] if parent_id else "/") + place_id + "/"
        spec = PlaceSpec(id=place_id, kind=kind, parent_id=parent_id, path=path, name=name,
                         name_en=name_en, **extra)
        self.paths[place_id] = path
        self.places.append(spec)
        return spec

    def admin_areas(self) -> None:
        self.place(CITY_ID, PlaceKind.CITY, None, "深圳市", "Shenzhen", code="440300",
                   attributes={"demo": True, "seed": self.seed})
        self.place(DISTRICT_ID, PlaceKind.DISTRICT, CITY_ID, "南山区", "Nanshan District", code=NANSHAN_CODE)
        self.place(STREET_ID, PlaceKind.STREET, DISTRICT_ID, "粤海街道", "Yuehai Subdistrict")

    def community(self, plan: CommunityPlan) -> None:
        rng = random.Random(f"cityweave-demo/{self.seed}/{plan.id}")
        frame = Frame(plan.center[0], plan.center[1], plan.rotation_deg)
        width, height = plan.size_m
        area = Rect(-width / 2, -height / 2, width / 2, height / 2)
        self.place(plan.id, PlaceKind.COMMUNITY, STREET_ID, f"{plan.name}社区", f"{plan.name_en} Community",
                   geometry=frame.polygon(area),
                   attributes={"built_year": plan.built_year, "buildings": plan.buildings,
                               "households": plan.buildings * plan.floors * plan.units * plan.per_floor})
        numbers = iter(range(1, plan.buildings + 1))
        strips = area.inset(3).split_x(plan.grids, gap=6)
        counts = _spread(plan.buildings, plan.grids)
        for index, (strip, count) in enumerate(zip(strips, counts, strict=True), 1):
            grid_id = f"{plan.id}-g{index}"
            self.place(grid_id, PlaceKind.GRID, plan.id, f"{plan.name}第{index}网格",
                       f"{plan.name_en} Grid {index}", geometry=frame.polygon(strip),
                       attributes={"number": index})
            for slot in range(count):
                spot = _building_spot(rng, strip, slot, count)
                self.building(rng, plan, frame, grid_id, next(numbers), spot)
            self.grid_facilities(rng, plan, frame, grid_id, index, strip)
        self.community_facilities(rng, plan, frame, area)

    def building(self, rng: random.Random, plan: CommunityPlan, frame: Frame, grid_id: str, number: int,
                 spot: tuple[float, float]) -> None:
        building_id = f"{plan.id}-b{number:02d}"
        self.place(building_id, PlaceKind.BUILDING, grid_id, f"{plan.name}{number}栋",
                   f"{plan.name_en} Bldg {number}", geometry=frame.point(*spot),
                   attributes={"number": number, "floors": plan.floors, "units": plan.units,
                               "households_per_floor": plan.units * plan.per_floor,
                               "built_year": plan.built_year, "elevators": plan.elevators * plan.units})
        variant = rng.uniform(-3, 3)  # buildings of one estate differ a little in their flats
        for unit in range(1, plan.units + 1):
            unit_id = f"{building_id}-u{unit}"
            self.place(unit_id, PlaceKind.UNIT, building_id, f"{plan.name}{number}栋{unit}单元",
                       f"{plan.name_en} Bldg {number} Unit {unit}",
                       attributes={"number": unit, "floors": plan.floors})
            for floor in range(1, plan.floors + 1):
                for position, (area_m2, layout) in enumerate(plan.flats[: plan.per_floor], 1):
                    self.household(rng, plan, unit_id, number, unit, floor, position,
                                   round(area_m2 + variant, 1), layout)
        lobby = (spot[0], spot[1] - 6)
        self.place(f"{building_id}-cam1", PlaceKind.FACILITY, building_id, f"{plan.name}{number}栋 门禁摄像头",
                   f"{plan.name_en} Bldg {number} entrance camera", facility_type=FacilityType.CAMERA,
                   geometry=frame.point(*lobby), attributes=dict(_FACILITY_ATTRIBUTES[FacilityType.CAMERA]))

    def household(self, rng: random.Random, plan: CommunityPlan, unit_id: str, number: int, unit: int,
                  floor: int, position: int, area_m2: float, layout: str) -> None:
        room = f"{floor}{position:02d}"
        household_id = f"{unit_id}-{floor:02d}{position:02d}"  # 4 digits: ids sort by floor
        occupancy = self.occupy(rng, plan, household_id)
        self.place(household_id, PlaceKind.HOUSEHOLD, unit_id, f"{plan.name}{number}栋{unit}单元{room}",
                   f"{plan.name_en} Bldg {number} Unit {unit} Rm {room}",
                   attributes={"floor": floor, "room": room, "area_m2": area_m2, "layout": layout,
                               "occupancy": occupancy})

    def grid_facilities(self, rng: random.Random, plan: CommunityPlan, frame: Frame, grid_id: str, index: int,
                        strip: Rect) -> None:
        for facility_type, count in plan.per_grid:
            short, label, label_en = _FACILITY_LABELS[facility_type]
            for n in range(1, count + 1):
                self.place(f"{grid_id}-{short}{n:02d}", PlaceKind.FACILITY, grid_id,
                           f"{plan.name}{index}区 {label}{n}号", f"{plan.name_en} G{index} {label_en} {n}",
                           facility_type=facility_type, geometry=frame.point(*strip.random_point(rng, 4)),
                           attributes=dict(_FACILITY_ATTRIBUTES[facility_type]))

    def community_facilities(self, rng: random.Random, plan: CommunityPlan, frame: Frame, area: Rect) -> None:
        inner = area.inset(1.5)
        sides = {"e": (inner.x1, 0.0), "w": (inner.x0, 0.0), "n": (0.0, inner.y1), "s": (0.0, inner.y0)}
        for suffix, name, name_en, side in plan.gates:
            x, y = sides[side]
            self.place(f"{plan.id}-{suffix}", PlaceKind.FACILITY, plan.id, f"{plan.name}{name}",
                       f"{plan.name_en} {name_en}", facility_type=FacilityType.GATE,
                       geometry=frame.point(x, y + rng.uniform(-10, 10) if side in "ew" else y),
                       attributes={"face_recognition": True, "vehicles": "人行" not in name})  # 人行: on foot
        self.place(f"{plan.id}-parking", PlaceKind.FACILITY, plan.id, f"{plan.name}停车场",
                   f"{plan.name_en} car park", facility_type=FacilityType.PARKING_LOT,
                   geometry=frame.point(0.0, inner.y0 + 1),
                   attributes={"spaces": plan.parking_spaces, "charging_spaces": plan.parking_spaces // 15})
        gate_x, gate_y = sides[plan.gates[0][3]]  # the kiosk stands just inside the main gate
        self.place(f"{plan.id}-kiosk", PlaceKind.FACILITY, plan.id, f"{plan.name}智慧社区服务终端",
                   f"{plan.name_en} self-service kiosk", facility_type=FacilityType.KIOSK,
                   geometry=frame.point(gate_x - math.copysign(5, gate_x), gate_y - math.copysign(5, gate_y)),
                   attributes={"services": ["payments", "repairs", "certificates"]})

    # people
    def occupy(self, rng: random.Random, plan: CommunityPlan, household_id: str) -> str:
        """Fill a household (or leave it empty); returns its occupancy."""
        anchor = self.anchors.get(household_id)
        if anchor is None and rng.random() < plan.vacancy:
            return "vacant"
        kind = anchor or _weighted(rng, plan.mix)
        # Old people rarely rent: they stay in the flat they bought (or were allotted) long ago.
        renting = plan.rented * (0.3 if kind in ("elderly_alone", "elderly_couple") else 1.0)
        rented = anchor is None and (kind == "shared" or rng.random() < renting)
        drafts = compose(rng, kind)
        poor = anchor is None and rng.random() < plan.low_income
        move_in = self.move_in(rng, plan, drafts[0], rented)
        origin = self.origin(rng)
        taken: set[str] = set()
        for draft in drafts:
            resident = self.resident(rng, draft, household_id, rented, kind, len(drafts), poor, move_in,
                                     origin, taken)
            taken.add(resident.name)
            self.residents.append(resident)
            self.heads.setdefault(household_id, resident)
        return "rented" if rented else "owner_occupied"

    def move_in(self, rng: random.Random, plan: CommunityPlan, head: _Draft, rented: bool) -> date:
        latest = self.today - timedelta(days=30)
        if rented:
            return latest - timedelta(days=rng.randint(0, 6 * 365))
        adult = _birth_date(self.today, head.age - 24)
        earliest = max(date(plan.built_year, 7, 1), adult)
        if earliest >= latest:
            return latest
        return earliest + timedelta(days=rng.randint(0, (latest - earliest).days))

    def origin(self, rng: random.Random) -> str:
        if rng.random() < 0.35:
            return NANSHAN_CODE
        return rng.choices([c for c, _ in ORIGINS], weights=[w for _, w in ORIGINS])[0]

    def resident(self, rng: random.Random, draft: _Draft, household_id: str, rented: bool, kind: str,
                 size: int, poor: bool, move_in: date, origin: str, taken: set[str]) -> ResidentSpec:
        birth = _birth_date(self.today, draft.age)
        age = _years_between(birth, self.today)
        name = draft.surname + names.given_name(rng, draft.gender, birth.year)
        for _retry in range(20):
            if name not in taken:
                break
            name = draft.surname + names.given_name(rng, draft.gender, birth.year)
        region = NANSHAN_CODE if draft.relation == "child" and age < 25 and rng.random() < 0.8 else origin
        if draft.relation in ("spouse", "housemate") and rng.random() < 0.5:
            region = self.origin(rng)
        return ResidentSpec(
            id=f"p-{rng.getrandbits(64):016x}",
            name=name,
            gender=draft.gender,
            birth_date=birth,
            id_number=self.id_number(rng, region, birth, draft.gender),
            phone=self.phone(rng) if _has_phone(rng, age) else None,
            household_id=household_id,
            role=_membership_role(draft.relation, rented),
            since=max(move_in, birth),
            care_tags=care_tags(rng, draft, age, kind, size, poor),
        )

    def id_number(self, rng: random.Random, region: str, birth: date, gender: Gender) -> str:
        """GB 11643: region, birth date, a sequence whose last digit is odd for men, check digit."""
        while True:
            sequence = f"{rng.randint(0, 99):02d}{rng.randrange(1 if gender == 'male' else 0, 10, 2)}"
            first17 = f"{region}{birth:%Y%m%d}{sequence}"
            number = first17 + id_check_digit(first17)
            if number not in self.id_numbers:
                self.id_numbers.add(number)
                return number

    def phone(self, rng: random.Random) -> str:
        while True:
            number = rng.choice(MOBILE_PREFIXES) + f"{rng.randint(0, 99_999_999):08d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    # accounts
    def accounts(self) -> list[AccountSpec]:
        specs = []
        for account in DEMO_ACCOUNTS:
            if account.household_type:
                head = self.heads[account.place_id or ""]
                specs.append(AccountSpec(account, head.id, head.name))
            else:
                specs.append(AccountSpec(account, None, account.display_name or account.username))
        return specs


def _spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` nearly equal counts, the larger ones first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _building_spot(rng: random.Random, strip: Rect, slot: int, count: int) -> tuple[float, float]:
    """Buildings stand in a column down the middle of their grid, a little out of line."""
    row_height = (strip.y1 - strip.y0) / count
    x = (strip.x0 + strip.x1) / 2 + rng.uniform(-0.15, 0.15) * (strip.x1 - strip.x0)
    y = strip.y1 - row_height * (slot + 0.5) + rng.uniform(-0.1, 0.1) * row_height
    return x, y


def _has_phone(rng: random.Random, age: int) -> bool:
    if age < 12:
        return False
    if age < 18:
        return rng.random() < 0.6
    if age >= 80:
        return rng.random() < 0.75
    return rng.random() < 0.98


def _membership_role(relation: str, rented: bool) -> MembershipRole:
    if relation == "housemate" or (relation == "head" and rented):
        return MembershipRole.TENANT
    if relation == "head":
        return MembershipRole.OWNER
    return MembershipRole.FAMILY


def care_tags(
    rng: random.Random, draft: _Draft, age: int, kind: str, size: int, poor: bool
) -> tuple[CareTagKind, ...]:
    """Care tags at rates a community worker would recognise.

    ``elderly`` from 60 (the legal age in China), ``elderly_alone`` from 65 when living alone
    (the age most street offices use for their visiting lists), ``minor`` under 18; disability
    rises with age (about 2-3 % overall); chronic illness here means "registered for follow-up",
    about one in nine people over 60.
    """
    tags: list[CareTagKind] = []
    if age < 18:
        tags.append(CareTagKind.MINOR)
    if age >= 60:
        tags.append(CareTagKind.ELDERLY)
    if age >= 65 and size == 1:
        tags.append(CareTagKind.ELDERLY_ALONE)
    disabled = 0.008 if age < 18 else 0.018 if age < 60 else 0.07
    if rng.random() < disabled:
        tags.append(CareTagKind.DISABLED)
    chronic = 0.11 if age >= 60 else 0.015 if age >= 40 else 0.0
    if rng.random() < chronic:
        tags.append(CareTagKind.CHRONIC_ILLNESS)
    if poor:
        tags.append(CareTagKind.LOW_INCOME)
    if draft.gender == "male" and age >= 40 and rng.random() < 0.012:
        tags.append(CareTagKind.VETERAN)
    if (draft.gender == "female" and 23 <= age <= 38 and kind in ("couple", "nuclear1")
            and draft.relation in ("head", "spouse") and rng.random() < 0.06):
        tags.append(CareTagKind.PREGNANT)
    return tuple(tags)


def generate(seed: int = DEFAULT_SEED, today: date = REFERENCE_DAY) -> DemoDistrict:
    """The demo district for ``seed``, with ages counted on ``today``."""
    builder = _Builder(seed, today)
    builder.admin_areas()
    for plan in COMMUNITIES:
        builder.community(plan)
    return DemoDistrict(
        seed=seed,
        today=today,
        places=tuple(builder.places),
        residents=tuple(builder.residents),
        accounts=tuple(builder.accounts()),
    )

