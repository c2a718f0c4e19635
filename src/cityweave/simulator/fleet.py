"""Which virtual devices exist: a deterministic fleet for a list of households.

A fleet is plain data. The same seed and the same households give the same devices, vendors,
addresses and names, byte for byte, so a test, the demo and the benchmark all talk about the
same "xfl-b03-u2-1801-smoke1". Each household gets a realistic mix (lights, metered plugs, an
entrance door contact, motion, smoke, gas in the kitchen, a leak sensor, climate, sometimes air
quality, one energy meter; an emergency button, a fall radar and a presence sensor where an
elderly person lives alone; now and then a water valve or a siren), spread over the vendor
ecosystems CityWeave has adapters for. A household leans towards one ecosystem, as real homes do
(one gateway, one app), with strays from others, so every adapter gets traffic.

Addresses are derived from the device's position in the fleet, not from a hash, so they never
collide (a Tasmota topic keeps only six hex digits of the MAC).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Vendor ecosystems, named as the adapters are (cityweave.devices.adapters).
ZIGBEE2MQTT = "zigbee2mqtt"
TASMOTA = "tasmota"
SHELLY = "shelly"
TUYA = "tuya"
HOMEASSISTANT = "homeassistant"
NATIVE = "native"
VENDORS: tuple[str, ...] = (ZIGBEE2MQTT, TASMOTA, SHELLY, TUYA, HOMEASSISTANT, NATIVE)

# Device kinds. Behaviour is per kind; payloads are per (vendor, kind).
LIGHT, PLUG, DOOR, MOTION, SMOKE, GAS, LEAK = "light", "plug", "door", "motion", "smoke", "gas", "leak"
CLIMATE, AIR, METER, SOS, FALL_RADAR, PRESENCE = "climate", "air", "meter", "sos", "fall_radar", "presence"
VALVE, SIREN = "valve", "siren"
KINDS: tuple[str, ...] = (LIGHT, PLUG, DOOR, MOTION, SMOKE, GAS, LEAK, CLIMATE, AIR, METER, SOS,
                          FALL_RADAR, PRESENCE, VALVE, SIREN)

# Which ecosystems make which kind of device (a product line the payloads module encodes).
SUPPORTED: dict[str, tuple[str, ...]] = {
    LIGHT: VENDORS,
    PLUG: VENDORS,
    DOOR: (ZIGBEE2MQTT, TUYA, HOMEASSISTANT, NATIVE),
    MOTION: (ZIGBEE2MQTT, TUYA, HOMEASSISTANT, NATIVE),
    SMOKE: (ZIGBEE2MQTT, SHELLY, TUYA, HOMEASSISTANT, NATIVE),
    GAS: (ZIGBEE2MQTT, TUYA, HOMEASSISTANT, NATIVE),
    LEAK: (ZIGBEE2MQTT, SHELLY, TUYA, HOMEASSISTANT, NATIVE),
    CLIMATE: VENDORS,
    AIR: (ZIGBEE2MQTT, TUYA, HOMEASSISTANT, NATIVE),
    METER: (ZIGBEE2MQTT, TASMOTA, SHELLY, TUYA, NATIVE),
    SOS: (ZIGBEE2MQTT, TUYA, NATIVE),
    FALL_RADAR: (ZIGBEE2MQTT, TUYA, NATIVE),
    PRESENCE: (ZIGBEE2MQTT, SHELLY, TUYA, HOMEASSISTANT, NATIVE),
    VALVE: (ZIGBEE2MQTT, TUYA, HOMEASSISTANT, NATIVE),
    SIREN: (TUYA, HOMEASSISTANT, NATIVE),
}
# How often a household's main ecosystem is each vendor (Tuya and Zigbee dominate Chinese homes).
_PREFERENCE: tuple[tuple[str, float], ...] = (
    (TUYA, 30), (ZIGBEE2MQTT, 26), (HOMEASSISTANT, 14), (SHELLY, 10), (TASMOTA, 8), (NATIVE, 12),
)
_STRAY = 0.3  # share of a household's devices bought outside its main ecosystem

# What a metered plug feeds: (appliance, mean watts when running).
APPLIANCES: tuple[tuple[str, float], ...] = (
    ("fridge", 120.0), ("tv", 95.0), ("kettle", 1800.0), ("washer", 500.0), ("rice_cooker", 700.0),
    ("air_conditioner", 1100.0), ("water_heater", 2000.0), ("computer", 150.0),
)


def stable_unit(*parts: Any) -> float:
    """A uniform number in [0, 1) fixed by ``parts``: randomness that is the same on every call.

    Behaviour must give the same light state for the same device and quarter hour however often
    it is asked, so it cannot draw from a stream; it hashes instead.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@lru_cache(maxsize=1 << 18)
def stable_constant(*parts: Any) -> float:
    """:func:`stable_unit` for keys asked again and again (a device's own offsets): cached."""
    return stable_unit(*parts)


@dataclass(frozen=True, slots=True)
class Household:
    """What the simulator needs to know about a home: its id and who lives there."""

    id: str
    occupants: int = 2
    elderly_alone: bool = False
    # Nobody home on working days from about 9 to 17 (working adults, children at school).
    away_by_day: bool = True


@dataclass(frozen=True, slots=True)
class VirtualDevice:
    id: str  # CityWeave-side name, also the native device id: "<household>-<slot>"
    index: int  # position in the fleet; addresses derive from it
    household: Household
    kind: str
    vendor: str
    room: str
    slot: str  # "light2", "smoke1"...
    appliance: str | None = None  # plugs: what they feed
    rated_w: float = 0.0  # plugs and meters: typical load

    @property
    def seed(self) -> str:
        return self.id

    # -- vendor addresses -----------------------------------------------------------------------
    @property
    def ieee(self) -> str:
        """Zigbee IEEE address (Xiaomi/Aqara OUI 00158d)."""
        return f"0x00158d00{self.index:08x}"

    @property
    def friendly_name(self) -> str:
        """Zigbee2MQTT friendly name; slashes group devices by home, as installers do."""
        return f"{self.household.id}/{self.slot}"

    @property
    def mac(self) -> str:
        return f"A8032A{self.index:06X}"

    @property
    def tasmota_topic(self) -> str:
        return f"tasmota_{self.mac[-6:]}"

    @property
    def shelly_id(self) -> str:
        app = {PLUG: "shellyplusplugs", LIGHT: "shellyplus1", SMOKE: "shellyplussmoke",
               CLIMATE: "shellyplusht", LEAK: "shellyfloodg4", METER: "shellyproem50",
               PRESENCE: "shellypresenceg4"}[self.kind]
        return f"{app}-{self.mac.lower()}"

    @property
    def tuya_id(self) -> str:
        tail = hashlib.blake2b(self.id.encode(), digest_size=7).hexdigest()
        return f"6c{self.index:06x}{tail}"

    @property
    def ha_node(self) -> str:
        """Home Assistant discovery node id and device identifier."""
        return f"cwsim_{self.mac.lower()}"

    @property
    def ha_state_topic(self) -> str:
        return f"home/{self.household.id}/{self.slot}/state"

    @property
    def address(self) -> str:
        """The adapter's address for this device (what a binding stores)."""
        if self.vendor == ZIGBEE2MQTT:
            return self.ieee
        if self.vendor == TASMOTA:
            return self.mac
        if self.vendor == SHELLY:
            return self.shelly_id
        if self.vendor == TUYA:
            return self.tuya_id
        if self.vendor == HOMEASSISTANT:
            return self.ha_node
        return self.id


@dataclass(frozen=True)
class Fleet:
    seed: int
    households: tuple[Household, ...]
    devices: tuple[VirtualDevice, ...]
    _by_id: dict[str, VirtualDevice] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({d.id: d for d in self.devices})

    def device(self, device_id: str) -> VirtualDevice:
        return self._by_id[device_id]

    def of_vendor(self, vendor: str) -> list[VirtualDevice]:
        return [d for d in self.devices if d.vendor == vendor]

    def counts(self) -> dict[str, Counter[str]]:
        """``{"vendor": Counter, "kind": Counter}`` for summaries."""
        return {"vendor": Counter(d.vendor for d in self.devices),
                "kind": Counter(d.kind for d in self.devices)}


# -- households ---------------------------------------------------------------------------------
def synthetic_households(count: int, seed: int = 1, prefix: str = "sim") -> list[Household]:
    """``count`` invented homes with ids shaped like the demo's (``sim-b01-u1-0101``).

    ``prefix`` keeps fleets apart on a shared broker (tests, several simulators at once).
    """
    rng = random.Random(f"households:{seed}")
    homes: list[Household] = []
    for n in range(count):
        building, rest = divmod(n, 72)
        unit, rest = divmod(rest, 36)
        floor, position = divmod(rest, 2)
        elderly_alone = rng.random() < 0.08
        occupants = 1 if elderly_alone else rng.choice((1, 2, 2, 3, 3, 3, 4, 5))
        homes.append(Household(f"{prefix}-b{building + 1:02d}-u{unit + 1}-{floor + 1:02d}{position + 1:02d}",
                               occupants, elderly_alone, away_by_day=not elderly_alone and rng.random() < 0.8))
    return homes


def households_from_demo(district: Any) -> list[Household]:
    """The occupied households of a :class:`cityweave.demo.generator.DemoDistrict`."""
    from cityweave.people.models import CareTagKind
    from cityweave.places.models import PlaceKind

    members: dict[str, list[Any]] = {}
    for resident in district.residents:
        members.setdefault(resident.household_id, []).append(resident)
    homes: list[Household] = []
    for place in district.places_of(PlaceKind.HOUSEHOLD):
        people = members.get(place.id, [])
        if not people:
            continue  # vacant
        alone = any(CareTagKind.ELDERLY_ALONE in r.care_tags for r in people)
        retired = all(CareTagKind.ELDERLY in r.care_tags for r in people)
        homes.append(Household(place.id, len(people), alone, away_by_day=not retired))
    return homes


def demo_households(seed: int | None = None) -> list[Household]:
    """Households of the demo district (its default seed unless given)."""
    from cityweave.demo.generator import DEFAULT_SEED, generate

    return households_from_demo(generate(DEFAULT_SEED if seed is None else seed))


# -- the device mix ----------------------------------------------------------------------------
def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _mix(rng: random.Random, home: Household) -> list[tuple[str, str]]:
    """``[(kind, room)]`` for one home."""
    mix: list[tuple[str, str]] = [(LIGHT, "living_room"), (LIGHT, "bedroom")]
    if home.occupants >= 3 or rng.random() < 0.5:
        mix.append((LIGHT, "kitchen"))
    if home.occupants >= 3:
        mix.append((LIGHT, "second_bedroom"))
    mix += [(PLUG, "kitchen")] + [(PLUG, "living_room")] * (rng.random() < 0.7)
    if rng.random() < 0.4:
        mix.append((PLUG, "bathroom"))
    mix += [(DOOR, "entrance"), (MOTION, "hallway"), (SMOKE, "kitchen"), (METER, "distribution_box")]
    if rng.random() < 0.85:  # most Chinese flats cook on piped gas
        mix.append((GAS, "kitchen"))
    if rng.random() < 0.6 or home.elderly_alone:
        mix.append((LEAK, "bathroom"))
    mix.append((CLIMATE, "bedroom"))
    if rng.random() < 0.4:
        mix.append((CLIMATE, "bathroom"))
    if rng.random() < 0.3:
        mix.append((AIR, "living_room"))
    if home.elderly_alone:  # the community's care package
        mix += [(SOS, "bedroom"), (FALL_RADAR, "bathroom"), (PRESENCE, "living_room"),
                (MOTION, "kitchen"), (MOTION, "bathroom")]
    if rng.random() < 0.15:
        mix.append((VALVE, "kitchen"))
    if rng.random() < 0.1:
        mix.append((SIREN, "hallway"))
    return mix


def _vendor(rng: random.Random, kind: str, preferred: str) -> str:
    supported = SUPPORTED[kind]
    if preferred in supported and rng.random() >= _STRAY:
        return preferred
    return rng.choice(supported)


def build_fleet(households: Iterable[Household], seed: int = 1) -> Fleet:
    """The devices of ``households``; one random stream per home, so homes do not reshuffle each other."""
    homes = tuple(households)
    devices: list[VirtualDevice] = []
    for home in homes:
        rng = random.Random(f"{seed}:{home.id}")
        preferred = _weighted(rng, _PREFERENCE)
        numbers: Counter[str] = Counter()
        for kind, room in _mix(rng, home):
            numbers[kind] += 1
            vendor = _vendor(rng, kind, preferred)
            appliance, rated = None, 0.0
            if kind == PLUG:
                appliance, rated = {"kitchen": ("kettle", 1800.0), "bathroom": ("water_heater", 2000.0)}.get(
                    room, rng.choice(APPLIANCES))
                if room == "kitchen" and rng.random() < 0.5:
                    appliance, rated = "fridge", 120.0
            elif kind == METER:
                rated = 250.0 + 120.0 * home.occupants
            devices.append(VirtualDevice(
                id=f"{home.id}-{kind.replace('_', '')}{numbers[kind]}", index=len(devices), household=home,
                kind=kind, vendor=vendor, room=room, slot=f"{kind}{numbers[kind]}", appliance=appliance,
                rated_w=rated * rng.uniform(0.8, 1.2),
            ))
    return Fleet(seed=seed, households=homes, devices=tuple(devices))


def bench_fleet(size: int, seed: int = 1) -> Fleet:
    """Exactly ``size`` devices of mixed vendors, from as many synthetic homes as it takes."""
    homes = synthetic_households(max(1, size // 10 + 1), seed)
    fleet = build_fleet(homes, seed)
    while len(fleet.devices) < size:
        homes = synthetic_households(len(homes) * 2, seed)
        fleet = build_fleet(homes, seed)
    kept = fleet.devices[:size]
    ids = {d.household.id for d in kept}
    return Fleet(seed=seed, households=tuple(h for h in homes if h.id in ids), devices=kept)
