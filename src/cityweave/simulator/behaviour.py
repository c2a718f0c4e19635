"""What a virtual device measures at a simulated moment, as CityWeave capability values.

:func:`sample` is a pure function of (device, simulated time, rng): the slow parts of the story
(is the kitchen light on this quarter hour, is today the day the old man does not get up, when
does the kettle boil) come from :func:`~cityweave.simulator.fleet.stable_unit`, a hash of the
device and the time bucket, so asking twice gives the same answer and neighbouring messages tell
a consistent story; ``rng`` only adds measurement noise. Values are vendor-neutral (``contact``
true = closed, ``brightness`` in %, energy in kWh); the payload encoders translate them.

The patterns are the ones alarms and dashboards are built on: lights mostly in the evening,
motion that follows a household's routine (out on working days), an elderly resident's day
(bathroom and kitchen in the morning, lunch, a nap, television, bed) with an occasional day of
abnormal inactivity, meters that only ever increase along day/night load curves, drifting
temperature and humidity (steamy bathrooms), cooking peaks in air quality, batteries that drain,
and rare smoke, gas, leak, SOS and fall events at configurable rates. Every value stays inside
its capability's range (:mod:`cityweave.devices.capabilities`); the tests decode them to check.

Time is Beijing time (UTC+8, no daylight saving) whatever the input's zone: the demo district is
in Shenzhen.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from cityweave.simulator.fleet import (
    AIR,
    CLIMATE,
    DOOR,
    FALL_RADAR,
    GAS,
    LEAK,
    LIGHT,
    METER,
    MOTION,
    PLUG,
    PRESENCE,
    SIREN,
    SMOKE,
    SOS,
    VALVE,
    Household,
    VirtualDevice,
    stable_constant,
    stable_unit,
)

CHINA = timezone(timedelta(hours=8), "CST")
_EPOCH = date(2026, 1, 1)  # batteries count their drain from here
_METER_EPOCH = date(2019, 1, 1)  # meters were installed about here: counters are in the thousands


@dataclass(frozen=True, slots=True)
class BehaviourConfig:
    """Rates of the rare events, per household (per device for none) and per day.

    The defaults are plausible for a real community (a kitchen fire alarm every few years per
    flat); a demo that wants to show alarms raises them.
    """

    smoke_per_day: float = 1 / 2000
    gas_per_day: float = 1 / 4000
    leak_per_day: float = 1 / 1500
    sos_per_day: float = 1 / 300  # elderly-alone homes only
    fall_per_day: float = 1 / 1000  # elderly-alone homes only
    inactive_day_rate: float = 0.03  # elderly-alone homes: a day with almost no movement


DEFAULT_CONFIG = BehaviourConfig()


@dataclass(frozen=True, slots=True)
class Moment:
    """A simulated time in local terms."""

    day: int  # days since 2026-01-01 (negative before)
    hour: float  # 0 <= hour < 24, fractional
    weekday: int  # Monday = 0
    day_of_year: int
    minute: int  # minutes since 2026-01-01 00:00 local

    @classmethod
    def of(cls, when: datetime) -> Moment:
        local = when.astimezone(CHINA)
        day = (local.date() - _EPOCH).days
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        return cls(day, hour, local.weekday(), local.timetuple().tm_yday, day * 1440 + local.hour * 60 + local.minute)

    @property
    def workday(self) -> bool:
        return self.weekday < 5


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else min(value, high)


def _bump(hour: float, centre: float, width: float) -> float:
    """A smooth peak of height 1 at ``centre`` (hours), about ``width`` hours wide."""
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


# -- routines --------------------------------------------------------------------------------------
def inactive_day(home: Household, day: int, config: BehaviourConfig = DEFAULT_CONFIG) -> bool:
    """An elderly resident living alone barely moves today (unwell, or worse): what care alarms look for."""
    return home.elderly_alone and stable_constant("inactive", home.id, day) < config.inactive_day_rate


def _elderly_rooms(hour: float, offset: float) -> dict[str, float]:
    """Where an elderly resident is likely to be moving, by room, at ``hour``."""
    h = hour - offset
    rooms = {"bedroom": 0.03, "bathroom": 0.03, "kitchen": 0.03, "living_room": 0.05, "hallway": 0.03,
             "entrance": 0.0}
    if h < 6.0 or h >= 22.0:  # asleep; one trip to the bathroom around 3
        rooms["bedroom"] = 0.04
        rooms["bathroom"] = 0.25 * _bump(h % 24, 3.0, 0.3)
    elif h < 6.6:
        rooms.update(bathroom=0.75, bedroom=0.3, hallway=0.3)
    elif h < 8.5:
        rooms.update(kitchen=0.7, living_room=0.3, hallway=0.3)
    elif h < 10.5:  # morning walk, the market
        rooms.update(entrance=0.08, living_room=0.15, hallway=0.1)
    elif h < 12.5:
        rooms.update(kitchen=0.65, living_room=0.3, hallway=0.2)
    elif h < 14.5:  # nap
        rooms.update(bedroom=0.08)
    elif h < 17.0:
        rooms.update(living_room=0.45, hallway=0.15, bathroom=0.1)
    elif h < 18.5:
        rooms.update(kitchen=0.65, hallway=0.25)
    elif h < 21.3:  # television
        rooms.update(living_room=0.55, hallway=0.1)
    else:
        rooms.update(bathroom=0.7, bedroom=0.35, hallway=0.3)
    return rooms


def _family_level(home: Household, moment: Moment) -> float:
    h = moment.hour
    if h < 6.0:
        return 0.03
    if h < 8.5:
        return 0.7
    if h < 17.0:
        return 0.05 if home.away_by_day and moment.workday else 0.4
    if h < 18.0:
        return 0.45
    if h < 23.0:
        return 0.75
    return 0.25


def room_activity(home: Household, room: str, moment: Moment, config: BehaviourConfig = DEFAULT_CONFIG) -> float:
    """Chance that someone moves in ``room`` during a given minute (0..1)."""
    if home.elderly_alone:
        offset = stable_constant("wake", home.id) - 0.5
        level = _elderly_rooms(moment.hour, offset).get(room, 0.05)
        if inactive_day(home, moment.day, config) and moment.hour >= 7.0:
            level *= 0.05
        return level
    level = _family_level(home, moment)
    h = moment.hour
    if room == "kitchen":
        level *= 0.4 + 0.8 * max(_bump(h, 7.2, 0.5), _bump(h, 12.0, 0.5), _bump(h, 18.7, 0.6))
    elif room == "bathroom":
        level *= 0.3 + 0.9 * max(_bump(h, 7.0, 0.4), _bump(h, 21.8, 0.7))
    elif room == "entrance":
        level = 0.1 * max(_bump(h, 8.0, 0.5), _bump(h, 18.0, 0.8)) + 0.01 * level
    elif room == "bedroom" and 6.0 <= h < 22.0:
        level *= 0.4
    return _clamp(level, 0.0, 1.0)


def _darkness(hour: float) -> float:
    if hour < 6.3 or hour >= 19.0:
        return 1.0
    if hour < 7.3:
        return 7.3 - hour
    if hour >= 18.0:
        return hour - 18.0
    return 0.08


# kind -> (rate attribute of the config, duration range in minutes, hours it may start in, elderly-alone only)
EVENTS: dict[str, tuple[str, tuple[float, float], tuple[float, float], bool]] = {
    "smoke": ("smoke_per_day", (3, 15), (6.5, 21.0), False),
    "gas": ("gas_per_day", (5, 30), (6.5, 21.0), False),
    "leak": ("leak_per_day", (20, 90), (0.0, 22.0), False),
    "sos": ("sos_per_day", (1, 2), (0.0, 23.5), True),
    "fall": ("fall_per_day", (5, 40), (6.0, 22.5), True),
}


def event_window(kind: str, home: Household, day: int,
                 config: BehaviourConfig = DEFAULT_CONFIG) -> tuple[float, float] | None:
    """``(start hour, end hour)`` of the household's ``kind`` event on ``day``, or None.

    At most one event of a kind per household and day; the runner uses the windows to publish
    alarms the moment they start and end, as real detectors do, instead of waiting for the
    device's next turn.
    """
    attribute, minutes, hours, elderly_only = EVENTS[kind]
    rate = getattr(config, attribute)
    if (elderly_only and not home.elderly_alone) or rate <= 0 or stable_constant(kind, home.id, day) >= rate:
        return None
    start = hours[0] + (hours[1] - hours[0]) * stable_constant(kind, "start", home.id, day)
    length = (minutes[0] + (minutes[1] - minutes[0]) * stable_constant(kind, "length", home.id, day)) / 60.0
    return start, start + length


def _event(kind: str, home: Household, moment: Moment, config: BehaviourConfig) -> bool:
    window = event_window(kind, home, moment.day, config)
    return window is not None and window[0] <= moment.hour < window[1]


def smoke_event(home: Household, moment: Moment, config: BehaviourConfig = DEFAULT_CONFIG) -> bool:
    return _event("smoke", home, moment, config)


def gas_event(home: Household, moment: Moment, config: BehaviourConfig = DEFAULT_CONFIG) -> bool:
    return _event("gas", home, moment, config)


def leak_event(home: Household, moment: Moment, config: BehaviourConfig = DEFAULT_CONFIG) -> bool:
    return _event("leak", home, moment, config)


def sos_event(home: Household, moment: Moment, config: BehaviourConfig = DEFAULT_CONFIG) -> bool:
    return _event("sos", home, moment, config)


def fall_event(home: Household, moment: Moment, config: BehaviourConfig = DEFAULT_CONFIG) -> bool:
    return _event("fall", home, moment, config)


# -- load curves -------------------------------------------------------------------------------------
# Household consumption relative to its typical load, by hour: base load at night (fridge, standby),
# breakfast, a quiet day, the evening peak.
_HOUSE_CURVE = (0.35, 0.32, 0.3, 0.3, 0.3, 0.35, 0.8, 1.25, 0.85, 0.5, 0.45, 0.55, 0.7, 0.5, 0.45,
                0.45, 0.5, 0.9, 1.45, 1.7, 1.6, 1.35, 0.95, 0.6)
_APPLIANCE_CURVES: dict[str, tuple[float, ...]] = {
    # share of each hour the appliance draws its rated power, on average
    "fridge": (0.35,) * 24,
    "tv": (0,) * 7 + (0.2, 0.1) + (0.05,) * 9 + (0.2, 0.6, 0.85, 0.9, 0.7, 0.3),
    "kettle": (0,) * 6 + (0.02, 0.06, 0.02) + (0.005,) * 3 + (0.03,) + (0.005,) * 5 + (0.02, 0.04, 0.02) + (0,) * 3,
    "washer": (0,) * 8 + (0.05, 0.12, 0.08) + (0.02,) * 8 + (0.1, 0.1, 0.05) + (0,) * 2,
    "rice_cooker": (0,) * 6 + (0.15, 0.2) + (0,) * 3 + (0.35, 0.15) + (0,) * 4 + (0.35, 0.35) + (0,) * 5,
    "air_conditioner": (0.5,) * 6 + (0.2, 0.1) + (0.1,) * 4 + (0.3,) * 5 + (0.3, 0.5, 0.6, 0.6, 0.6, 0.55, 0.5),
    "water_heater": (0,) * 6 + (0.1, 0.15) + (0,) * 12 + (0.2, 0.35, 0.3, 0.05),
    "computer": (0.02,) * 8 + (0.1,) * 10 + (0.5, 0.6, 0.6, 0.5, 0.3, 0.1),
}


def _cumulative(curve: tuple[float, ...], hour: float) -> float:
    """Integral of a 24-step hourly curve from midnight to ``hour`` (in curve-hours)."""
    whole = int(hour)
    return sum(curve[:whole]) + curve[whole % 24] * (hour - whole)


def _curve(device: VirtualDevice) -> tuple[float, ...]:
    if device.kind == METER:
        return _HOUSE_CURVE
    return _APPLIANCE_CURVES.get(device.appliance or "fridge", _APPLIANCE_CURVES["fridge"])


def energy_kwh(device: VirtualDevice, moment: Moment) -> float:
    """The cumulative energy counter: never decreases, steeper in the evening.

    The integral of the mean load curve, in closed form so that any moment can be asked in
    any order (the open-loop generator jumps around) and the counter is still monotonic.
    """
    curve = _curve(device)
    day = moment.day + (_EPOCH - _METER_EPOCH).days
    start = 50.0 + 400.0 * stable_constant("meter-start", device.id)
    hours = day * sum(curve) + _cumulative(curve, moment.hour)
    return round(start + device.rated_w * hours / 1000.0, 3)


def _battery(device: VirtualDevice, moment: Moment) -> float:
    start = 55.0 + 45.0 * stable_constant("battery", device.id)
    drain = 0.01 + 0.03 * stable_constant("drain", device.id)  # % per day: one to eight years per battery
    return round(_clamp(start - drain * max(0, moment.day), 3.0, 100.0))


def _season(moment: Moment) -> float:
    """-1 in mid-January, +1 in mid-July."""
    return -math.cos(2 * math.pi * (moment.day_of_year - 15) / 365.0)


def _temperature(device: VirtualDevice, moment: Moment, rng: random.Random) -> float:
    home = device.household
    value = 23.5 + 5.0 * _season(moment) + 1.3 * math.sin(2 * math.pi * (moment.hour - 9.0) / 24.0)
    value += 1.6 * (stable_constant("temp-offset", device.id) - 0.5)
    if _season(moment) > 0.3 and room_activity(home, "living_room", moment) > 0.3:
        value -= 2.0 * _season(moment)  # air conditioning while people are home
    if device.room == "bathroom":
        value += 2.0 * room_activity(home, "bathroom", moment)
    return round(value + rng.gauss(0.0, 0.08), 1)


def _humidity(device: VirtualDevice, moment: Moment, rng: random.Random) -> float:
    value = 68.0 + 12.0 * _season(moment) - 4.0 * math.sin(2 * math.pi * (moment.hour - 9.0) / 24.0)
    if device.room == "bathroom":
        value += 25.0 * room_activity(device.household, "bathroom", moment)
    return round(_clamp(value + rng.gauss(0.0, 0.6), 20.0, 99.0), 1)


def _cooking(home: Household, moment: Moment) -> float:
    """0..1: how much cooking smoke is in the air now."""
    h = moment.hour
    peaks = [_bump(h, 7.2, 0.35), _bump(h, 12.0, 0.4), _bump(h, 18.7, 0.45)]
    cooked = [stable_constant("cooks", home.id, moment.day, meal) < (0.9 if meal == 2 else 0.5) for meal in range(3)]
    level = max((p for p, c in zip(peaks, cooked, strict=True) if c), default=0.0)
    return level * (0.1 if inactive_day(home, moment.day) and moment.hour > 7 else 1.0)


# -- per kind -------------------------------------------------------------------------------------------
def _bucket_on(tag: str, device: VirtualDevice, bucket: int, chance: float) -> bool:
    return stable_unit(tag, device.id, bucket) < chance


def _light(device: VirtualDevice, m: Moment, rng: random.Random, config: BehaviourConfig) -> dict[str, Any]:
    quarter = m.minute // 15
    chance = _darkness(m.hour) * min(1.0, 1.15 * room_activity(device.household, device.room, m, config))
    if device.room == "living_room" and not device.household.elderly_alone:
        chance = max(chance, 0.9 * _darkness(m.hour) * _family_level(device.household, m))
    on = _bucket_on("light", device, quarter, chance)
    warm = m.hour >= 19.0 or m.hour < 6.0
    values: dict[str, Any] = {"on_off": on}
    values["brightness"] = round(30 + 70 * stable_constant("level", device.id, m.day))  # kept while off
    values["color_temperature"] = 2700 if warm else 4000
    return values


def _appliance_power(device: VirtualDevice, m: Moment, rng: random.Random) -> float:
    """Watts drawn now: the curve's share of the hour decides whether it runs this 5 minutes."""
    curve = _curve(device)
    share = curve[int(m.hour) % 24]
    running = stable_unit("runs", device.id, m.minute // 5) < share
    if device.appliance == "fridge":
        running = (m.minute // 12 + int(30 * stable_constant("phase", device.id))) % 3 == 0
    if not running:
        return round(0.4 + 1.2 * stable_constant("standby", device.id), 1)
    return round(max(1.0, device.rated_w * (1.0 + rng.gauss(0.0, 0.04))), 1)


def _electric(power: float, rng: random.Random) -> dict[str, Any]:
    voltage = round(220.0 + rng.gauss(0.0, 2.0), 1)
    return {"power_w": power, "voltage": voltage, "current": round(power / voltage, 3)}


def _plug(device: VirtualDevice, m: Moment, rng: random.Random, config: BehaviourConfig) -> dict[str, Any]:
    power = _appliance_power(device, m, rng)
    switched_off = device.appliance in ("tv", "computer") and m.hour < 6.5 and power < 5
    if switched_off:
        power = 0.0
    return {"on_off": not switched_off, **_electric(power, rng), "energy_kwh": energy_kwh(device, m)}


def _meter(device: VirtualDevice, m: Moment, rng: random.Random, config: BehaviourConfig) -> dict[str, Any]:
    level = _HOUSE_CURVE[int(m.hour) % 24]
    if device.household.away_by_day and m.workday and 9 <= m.hour < 17:
        level *= 0.7
    power = round(max(20.0, device.rated_w * level * (1.0 + rng.gauss(0.0, 0.12))), 1)
    return {**_electric(power, rng), "frequency": round(50.0 + rng.gauss(0.0, 0.02), 2),
            "power_factor": round(_clamp(0.93 + rng.gauss(0.0, 0.02), 0.5, 1.0), 2),
            "energy_kwh": energy_kwh(device, m)}


def sample(device: VirtualDevice, when: datetime, rng: random.Random,
           config: BehaviourConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """The device's capability values at ``when``: ``{"on_off": True, "power_w": 112.3, ...}``.

    Every battery device reports ``battery``; every radio device ``rssi`` (dBm) and Zigbee ones
    also ``link_quality``. Event capabilities (``emergency_call``) are present and true only
    while the event lasts.
    """
    m = Moment.of(when)
    home = device.household
    kind = device.kind
    values: dict[str, Any]
    if kind == LIGHT:
        values = _light(device, m, rng, config)
    elif kind == PLUG:
        values = _plug(device, m, rng, config)
    elif kind == METER:
        values = _meter(device, m, rng, config)
    elif kind == DOOR:
        opened = _bucket_on("door", device, m.minute // 2, room_activity(home, "entrance", m, config))
        values = {"contact": not opened, "battery": _battery(device, m)}
    elif kind == MOTION:
        moving = _bucket_on("motion", device, m.minute, room_activity(home, device.room, m, config))
        lux = 400.0 * max(0.0, 1.0 - _darkness(m.hour)) + 5.0 * stable_unit("lux", device.id, m.minute // 30)
        values = {"motion": moving, "illuminance": round(lux), "battery": _battery(device, m)}
    elif kind == SMOKE:
        values = {"smoke": smoke_event(home, m, config), "battery": _battery(device, m)}
    elif kind == GAS:
        alarm = gas_event(home, m, config)
        ppm = 250.0 + 600.0 * stable_constant("gas-level", home.id, m.day) if alarm else 0.0
        values = {"gas": alarm, "gas_ppm": round(ppm)}
    elif kind == LEAK:
        values = {"water_leak": leak_event(home, m, config), "battery": _battery(device, m)}
    elif kind == VALVE:  # shuts automatically a minute into a leak
        values = {"valve_open": not (leak_event(home, m, config)
                                     and leak_event(home, Moment.of(when - timedelta(minutes=1)), config))}
    elif kind == SIREN:
        values = {"siren": smoke_event(home, m, config) or gas_event(home, m, config)}
    elif kind == CLIMATE:
        values = {"temperature": _temperature(device, m, rng), "humidity": _humidity(device, m, rng),
                  "battery": _battery(device, m)}
    elif kind == AIR:
        cooking = _cooking(home, m)
        people = room_activity(home, "living_room", m, config) * home.occupants
        values = {"co2": round(430 + 260 * people + 350 * cooking + rng.gauss(0, 8)),
                  "pm2_5": round(_clamp(18 - 10 * _season(m) + 110 * cooking + rng.gauss(0, 2), 1, 900)),  # hazier winters
                  "tvoc": round(_clamp(120 + 500 * cooking + 40 * people + rng.gauss(0, 6), 5, 5000)),
                  "formaldehyde": round(0.02 + 0.03 * stable_constant("hcho", device.id) + 0.02 * cooking, 3),
                  "temperature": _temperature(device, m, rng), "humidity": _humidity(device, m, rng)}
    elif kind == SOS:
        values = {"emergency_call": sos_event(home, m, config), "battery": _battery(device, m)}
    elif kind == FALL_RADAR:
        fallen = fall_event(home, m, config)
        chance = min(1.0, 2.5 * room_activity(home, device.room, m, config))
        present = fallen or _bucket_on("radar", device, m.minute // 3, chance)
        values = {"presence": present, "fall_state": "fall" if fallen else "none"}
        if present:
            pulse = 70 + 12 * stable_constant("hr", device.id) + (25 if fallen else 0)
            values["heart_rate"] = round(pulse + rng.gauss(0, 3))
            values["respiration_rate"] = round(15 + 3 * stable_constant("rr", device.id) + rng.gauss(0, 1))
    elif kind == PRESENCE:
        present = _bucket_on("presence", device, m.minute // 5,
                             min(1.0, 1.8 * room_activity(home, device.room, m, config)))
        values = {"presence": present,
                  "illuminance": round(300.0 * max(0.0, 1.0 - _darkness(m.hour)) + (120 if present else 0))}
    else:  # pragma: no cover - fleet and behaviour list the same kinds
        raise ValueError(f"no behaviour for {kind!r}")
    values["rssi"] = round(-48 - 30 * stable_constant("rssi", device.id) + rng.gauss(0, 1.5))
    values["link_quality"] = int(_clamp(round(70 + 150 * stable_constant("lqi", device.id) + rng.gauss(0, 4)), 0, 255))
    return values
