"""The fleet is deterministic and realistic; the daily patterns are the ones alarms are built on."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from cityweave.devices import capabilities
from cityweave.simulator.behaviour import (
    CHINA,
    BehaviourConfig,
    Moment,
    inactive_day,
    sample,
)
from cityweave.simulator.fleet import (
    KINDS,
    SUPPORTED,
    VENDORS,
    Household,
    bench_fleet,
    build_fleet,
    households_from_demo,
    synthetic_households,
)

DAY = datetime(2026, 3, 2, tzinfo=CHINA)  # a Monday


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    first = build_fleet(synthetic_households(60, 7), 7)
    again = build_fleet(synthetic_households(60, 7), 7)
    other = build_fleet(synthetic_households(60, 8), 8)
    assert first.devices == again.devices
    assert [(d.id, d.vendor) for d in first.devices] != [(d.id, d.vendor) for d in other.devices]


def test_mix_covers_every_vendor_and_kind_with_unique_addresses() -> None:
    fleet = build_fleet(synthetic_households(300, 1), 1)
    counts = fleet.counts()
    assert set(counts["vendor"]) == set(VENDORS)
    assert set(counts["kind"]) == set(KINDS)
    for device in fleet.devices:
        assert device.vendor in SUPPORTED[device.kind]
    for vendor in VENDORS:
        addresses = [d.address for d in fleet.of_vendor(vendor)]
        assert len(addresses) == len(set(addresses)), vendor
    assert len({d.tasmota_topic for d in fleet.devices}) == len(fleet.devices)
    homes = {h.id: h for h in fleet.households}
    for home_id, home in homes.items():
        kinds = Counter(d.kind for d in fleet.devices if d.household.id == home_id)
        assert kinds["meter"] == 1 and kinds["smoke"] == 1 and kinds["door"] == 1 and kinds["light"] >= 2
        if home.elderly_alone:
            assert kinds["sos"] == kinds["fall_radar"] == kinds["presence"] == 1
        else:
            assert kinds["sos"] == 0


def test_demo_households_carry_elderly_living_alone() -> None:
    from cityweave.demo.generator import generate

    homes = households_from_demo(generate())
    assert 800 < len(homes) < 1100
    assert any(h.id == "xfl-b02-u1-0302" and h.elderly_alone for h in homes)  # the `elder` account
    fleet = build_fleet(homes, 1)
    assert 8_000 < len(fleet.devices) < 20_000


def test_bench_fleet_has_exactly_the_size_asked() -> None:
    fleet = bench_fleet(1234, 3)
    assert len(fleet.devices) == 1234
    assert len(set(fleet.counts()["vendor"])) == len(VENDORS)


def test_every_value_is_inside_its_capability() -> None:
    fleet = build_fleet(synthetic_households(40, 2), 2)
    rng = random.Random(1)
    config = BehaviourConfig(smoke_per_day=0.5, gas_per_day=0.5, leak_per_day=0.5, sos_per_day=1, fall_per_day=1)
    for step in range(48):
        when = DAY + timedelta(minutes=31 * step)
        for device in fleet.devices:
            for name, value in sample(device, when, rng, config).items():
                checked = capabilities.validate(name, value)
                assert checked.ok, (device.id, name, value, checked.detail)


def _light_share(fleet, hour: int, days: int = 8) -> float:
    lights = [d for d in fleet.devices if d.kind == "light"]
    rng = random.Random(2)
    on = sum(sample(d, DAY + timedelta(days=n, hours=hour), rng)["on_off"] for d in lights for n in range(days))
    return on / (len(lights) * days)


def test_lights_are_on_in_the_evening_and_off_before_dawn() -> None:
    fleet = build_fleet(synthetic_households(150, 3), 3)
    evening, night, noon = _light_share(fleet, 20), _light_share(fleet, 4), _light_share(fleet, 13)
    assert evening > 0.35
    assert evening > 5 * night
    assert evening > 3 * noon


def test_meters_only_increase_with_an_evening_peak() -> None:
    fleet = build_fleet(synthetic_households(30, 4), 4)
    counters = [d for d in fleet.devices if d.kind in ("meter", "plug")]
    rng = random.Random(3)
    times = [DAY + timedelta(minutes=7 * k) for k in range(3 * 24 * 60 // 7)]
    random.Random(4).shuffle(times)  # asked in any order, the counter is a function of time
    for device in counters:
        series = sorted((t, sample(device, t, rng)["energy_kwh"]) for t in times)
        values = [v for _, v in series]
        assert values == sorted(values), device.id
        assert values[-1] > values[0]
    meters = [d for d in fleet.devices if d.kind == "meter"]

    def used(device, start_hour: int) -> float:
        start = DAY + timedelta(hours=start_hour)
        return sample(device, start + timedelta(hours=2), rng)["energy_kwh"] - sample(device, start, rng)["energy_kwh"]

    assert sum(used(m, 18) for m in meters) > 2 * sum(used(m, 2) for m in meters)


def _kitchen_motion(homes: list[Household], hours: tuple[float, float], days: int) -> float:
    fleet = build_fleet(homes, 5)
    kitchens = [d for d in fleet.devices if d.kind == "motion" and d.room == "kitchen"]
    rng = random.Random(5)
    moves = total = 0
    for n in range(days):
        minute = hours[0] * 60
        while minute < hours[1] * 60:
            when = DAY + timedelta(days=n, minutes=minute)
            for device in kitchens:
                if inactive_day(device.household, Moment.of(when).day):
                    continue
                moves += sample(device, when, rng)["motion"]
                total += 1
            minute += 10
    return moves / total


def test_elderly_routine_has_morning_kitchen_activity_and_quiet_nights() -> None:
    homes = [Household(f"old-{n:03d}", 1, elderly_alone=True, away_by_day=False) for n in range(40)]
    breakfast = _kitchen_motion(homes, (6.5, 8.5), 5)
    night = _kitchen_motion(homes, (1.0, 4.0), 5)
    assert breakfast > 0.4
    assert breakfast > 8 * night


def test_an_inactive_day_is_almost_motionless() -> None:
    config = BehaviourConfig(inactive_day_rate=1.0)
    home = Household("old-inactive", 1, elderly_alone=True, away_by_day=False)
    fleet = build_fleet([home], 6)
    sensors = [d for d in fleet.devices if d.kind == "motion"]
    rng = random.Random(6)
    moves = sum(sample(d, DAY + timedelta(hours=8, minutes=m), rng, config)["motion"]
                for d in sensors for m in range(0, 12 * 60, 3))
    normal = sum(sample(d, DAY + timedelta(hours=8, minutes=m), rng)["motion"]
                 for d in sensors for m in range(0, 12 * 60, 3))
    assert moves * 10 < normal


def test_rare_events_follow_their_rate() -> None:
    homes = synthetic_households(200, 9)
    fleet = build_fleet(homes, 9)
    smoke = [d for d in fleet.devices if d.kind == "smoke"]
    rng = random.Random(9)
    none = BehaviourConfig(smoke_per_day=0.0)
    often = BehaviourConfig(smoke_per_day=0.5)
    times = [DAY + timedelta(minutes=m) for m in range(6 * 60, 22 * 60, 2)]  # every event lasts 3+ min
    assert not any(sample(d, t, rng, none)["smoke"] for d in smoke for t in times)
    alarmed = {d.id for d in smoke if any(sample(d, t, rng, often)["smoke"] for t in times)}
    assert 0.3 * len(smoke) < len(alarmed) < 0.7 * len(smoke)


def test_time_is_read_in_beijing_time() -> None:
    utc = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert Moment.of(utc).hour == 20.0
