"""The rule engine with a ManualClock on both backends: every trigger kind, conditions, state that
survives a restart (a new engine over the same database), and rolled-back batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cityweave.alarms.models import AlarmStatus
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.rules import model as m
from cityweave.rules import modes
from cityweave.rules.engine import EngineRule, RuleEngine, daytime_due
from cityweave.rules.state import RuleState
from tests.rules.support import (
    ELDERLY_HOME,
    OTHER_HOME,
    add_device,
    alarms,
    commands,
    engine_for,
    observe,
    reading,
)


def _spec(data: dict) -> m.RuleSpec:
    return m.parse_rule({"key": "t", "name": {"zh-CN": "测试", "en": "test"}, **data})


def _states(ctx: AppContext, *, absence: bool = False) -> list[RuleState]:
    """Rule state rows; without the absence timers (the elderly household's is always there)."""
    with ctx.db.session() as session:
        rows = list(session.execute(select(RuleState).order_by(RuleState.rule_key)).scalars())
    return [r for r in rows if absence or r.state.get("kind") != "absence"]


def test_threshold_fires_on_the_edge_counts_while_true_and_commands_once(ctx: AppContext, clock: ManualClock) -> None:
    smoke = add_device(ctx, OTHER_HOME, [("smoke", False)])
    siren = add_device(ctx, OTHER_HOME, [("siren", True)], device_type="siren")
    engine, publisher = engine_for(ctx)
    changes: list = []
    from cityweave.alarms import AlarmChange

    ctx.bus.subscribe(AlarmChange, changes.append)
    now = clock.now()
    fired = observe(ctx, engine, reading(smoke, "smoke", True, now))
    assert [f.change for f in fired] == ["fired"]
    for _ in range(4):
        clock.advance(seconds=1)
        assert [f.change for f in observe(ctx, engine, reading(smoke, "smoke", True, clock.now()))] == ["repeated"]
    [alarm] = alarms(ctx)
    assert alarm.cause_key == f"fire:{smoke}" and alarm.count == 5 and alarm.severity == "critical"
    assert alarm.place_id == OTHER_HOME and alarm.status is AlarmStatus.RAISED
    assert [c.device_id for c in commands(ctx)] == [siren], "the siren is switched on once, not per reading"
    assert len(publisher.messages) == 1 and publisher.messages[0][0].startswith("cityweave/v1/")
    assert [c.change for c in changes] == ["raised"] + ["repeated"] * 4
    # smoke gone: the fire alarm stays for people to resolve, the edge resets
    observe(ctx, engine, reading(smoke, "smoke", False, clock.advance(seconds=1)))
    assert alarms(ctx)[0].status is AlarmStatus.RAISED
    assert _states(ctx) == []


def test_readings_nobody_watches_cost_no_lookup(ctx: AppContext, clock: ManualClock) -> None:
    engine, _ = engine_for(ctx)
    with ctx.db.session() as session:
        from sqlalchemy import event

        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])
        event.listen(session.get_bind(), "before_cursor_execute", listener)
        try:
            assert engine.observe(session, [reading("dev-unknown", "temperature", 21.5, clock.now())]) == []
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert statements == []


def test_gas_closes_the_gas_valve_and_clears_when_normal(ctx: AppContext, clock: ManualClock) -> None:
    detector = add_device(ctx, OTHER_HOME, [("gas_ppm", False), ("gas", False)])
    gas_valve = add_device(ctx, OTHER_HOME, [("valve_open", True)], name="燃气阀", device_type="valve")
    water_valve = add_device(ctx, OTHER_HOME, [("valve_open", True)], name="总水阀", device_type="valve")
    engine, _ = engine_for(ctx)
    observe(ctx, engine, reading(detector, "gas_ppm", 800.0, clock.now()))
    assert alarms(ctx) == []
    observe(ctx, engine, reading(detector, "gas_ppm", 6000.0, clock.advance(seconds=1)),
            reading(detector, "gas", True, clock.now()))
    [alarm] = alarms(ctx)
    assert alarm.kind == "gas" and alarm.count == 2, "two sibling conditions, one alarm per detector"
    assert [(c.device_id, c.capability, c.value) for c in commands(ctx)] == [(gas_valve, "valve_open", False)] * 2
    assert water_valve not in {c.device_id for c in commands(ctx)}
    # the ppm goes back to normal, but the flag still says gas: the alarm stays open
    observe(ctx, engine, reading(detector, "gas_ppm", 100.0, clock.advance(seconds=1)))
    assert alarms(ctx)[0].status is AlarmStatus.RAISED
    observe(ctx, engine, reading(detector, "gas", False, clock.advance(seconds=1)))
    assert alarms(ctx)[0].status is AlarmStatus.CLEARED


def test_duration_survives_a_restart(ctx: AppContext, clock: ManualClock) -> None:
    plug = add_device(ctx, OTHER_HOME, [("power_w", False), ("on_off", True)], device_type="plug")
    engine, _ = engine_for(ctx)
    start = clock.now()
    observe(ctx, engine, reading(plug, "power_w", 3200.0, start))
    [row] = [r for r in _states(ctx) if r.rule_key == "builtin.electricity.overload"]
    assert row.rule_key == "builtin.electricity.overload" and row.due_at == start + timedelta(seconds=30)
    clock.advance(seconds=10)
    observe(ctx, engine, reading(plug, "power_w", 3300.0, clock.now()))  # still over: no new write
    assert engine.tick(clock.now()) == [] and alarms(ctx) == []
    # the process stops; a new one resumes the duration from the database
    engine.stop()
    clock.advance(seconds=25)
    restarted, _ = engine_for(ctx)
    [fired] = restarted.tick(clock.now())
    assert fired.rule_key == "builtin.electricity.overload"
    [alarm] = alarms(ctx)
    assert alarm.kind == "electricity" and alarm.status is AlarmStatus.RAISED
    # the load drops: cleared, state gone
    observe(ctx, restarted, reading(plug, "power_w", 40.0, clock.advance(seconds=1)))
    assert alarms(ctx)[0].status is AlarmStatus.CLEARED and _states(ctx) == []
    assert "builtin.electricity.night" not in {f.rule_key for f in restarted.firings}, "08:00 is no night"


def test_duration_left_early_does_not_fire(ctx: AppContext, clock: ManualClock) -> None:
    plug = add_device(ctx, OTHER_HOME, [("power_w", False)])
    engine, _ = engine_for(ctx)
    observe(ctx, engine, reading(plug, "power_w", 3200.0, clock.now()))
    observe(ctx, engine, reading(plug, "power_w", 100.0, clock.advance(seconds=20)))
    assert _states(ctx) == []
    assert engine.tick(clock.advance(seconds=60)) == [] and alarms(ctx) == []


def test_cut_off_is_a_household_setting(ctx: AppContext, clock: ManualClock) -> None:
    from cityweave.authz.policy import Principal
    from cityweave.context import Call
    from cityweave.rules import builtin

    plug = add_device(ctx, OTHER_HOME, [("power_w", False), ("on_off", True)])
    other = add_device(ctx, OTHER_HOME, [("on_off", True)])
    with ctx.db.session() as session:
        builtin.update_settings(Call(ctx, session, Principal.system("t")), OTHER_HOME,
                                {"electricity": {"params": {"cut_off": True, "max_w": 2000}}})
    engine, _ = engine_for(ctx)
    observe(ctx, engine, reading(plug, "power_w", 2100.0, clock.now()))
    engine.tick(clock.advance(seconds=31))
    assert [(c.device_id, c.capability, c.value) for c in commands(ctx)] == [(plug, "on_off", False)]
    assert other not in {c.device_id for c in commands(ctx)}


def test_absence_daytime_hours_restart_and_grace(ctx: AppContext, clock: ManualClock) -> None:
    motion = add_device(ctx, ELDERLY_HOME, [("motion", False)])
    engine, _ = engine_for(ctx, grace_s=1800)
    start = clock.now()  # 2026-01-01 08:00 in Shanghai
    engine.tick(start)
    observe(ctx, engine, reading(motion, "motion", True, clock.advance(minutes=30)))  # 08:30 activity
    engine.flush(force=True)
    [row] = [r for r in _states(ctx, absence=True) if r.rule_key == "builtin.elderly.inactivity"]
    assert row.due_at == clock.now() + timedelta(hours=4)
    # motion false is no activity; three hours later: nothing yet
    observe(ctx, engine, reading(motion, "motion", False, clock.advance(minutes=1)))
    assert engine.tick(clock.advance(hours=3)) == []
    engine.stop()
    # restart at 11:31; due at 12:30; but the grace period runs until 12:01 - and then 12:30 comes
    restarted, _ = engine_for(ctx, grace_s=1800)
    restarted.tick(clock.now())
    assert restarted.tick(clock.advance(minutes=45)) == [] or clock.now() >= row.due_at
    fired = restarted.tick(clock.advance(minutes=20))  # 12:36
    assert [f.rule_key for f in fired] == ["builtin.elderly.inactivity"]
    [alarm] = alarms(ctx, kind="inactivity")
    assert alarm.place_id == ELDERLY_HOME and alarm.cause_key == f"inactivity:{ELDERLY_HOME}"
    assert restarted.tick(clock.advance(hours=1)) == [], "one alarm per episode"
    # activity again starts a new episode
    observe(ctx, restarted, reading(motion, "motion", True, clock.advance(minutes=1)))
    restarted.flush(force=True)
    assert not any(r.state.get("fired") for r in _states(ctx, absence=True) if r.rule_key == "builtin.elderly.inactivity")


def test_grace_period_after_restart_holds_back_an_overdue_absence(ctx: AppContext, clock: ManualClock) -> None:
    add_device(ctx, ELDERLY_HOME, [("motion", False)])
    engine, _ = engine_for(ctx, grace_s=1800)
    engine.tick(clock.now())
    engine.stop()
    clock.advance(hours=6)  # down for six daytime hours: overdue by two
    restarted, _ = engine_for(ctx, grace_s=1800)
    assert restarted.tick(clock.now()) == []
    assert restarted.tick(clock.advance(minutes=29)) == []
    assert [f.rule_key for f in restarted.tick(clock.advance(minutes=2))] == ["builtin.elderly.inactivity"]


def test_absence_applies_only_to_elderly_households(ctx: AppContext, clock: ManualClock) -> None:
    add_device(ctx, OTHER_HOME, [("motion", False)])
    engine, _ = engine_for(ctx, grace_s=0)
    engine.tick(clock.now())
    engine.tick(clock.advance(hours=10))
    assert [a.place_id for a in alarms(ctx, kind="inactivity")] == [ELDERLY_HOME]


def test_daytime_due_skips_the_night() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    last = datetime(2026, 1, 1, 20, 0, tzinfo=tz)  # two daytime hours left that day
    due = daytime_due(last, 4 * 3600, tz)
    assert due == datetime(2026, 1, 2, 9, 0, tzinfo=tz).astimezone(UTC)


def test_repeat_count_within_a_window(ctx: AppContext, clock: ManualClock) -> None:
    door = add_device(ctx, OTHER_HOME, [("contact", False)])
    spec = _spec({"trigger": {"type": "repeat", "capability": "contact", "value": False, "count": 3,
                              "within_seconds": 60},
                  "actions": [{"type": "raise_alarm", "kind": "door_chatter", "severity": "warning"}]})
    engine = RuleEngine(ctx.db, clock, bus=ctx.bus)
    engine.set_household_rules(OTHER_HOME, [EngineRule(spec, group="door_chatter")])
    engine.load()
    for _ in range(2):
        observe(ctx, engine, reading(door, "contact", False, clock.advance(seconds=25)))
    observe(ctx, engine, reading(door, "contact", False, clock.advance(seconds=25)))  # the first is 50 s old
    assert len(alarms(ctx)) == 1
    for _ in range(2):
        observe(ctx, engine, reading(door, "contact", False, clock.advance(seconds=40)))
    assert alarms(ctx)[0].count == 1, "two in 80 s is no burst"


def test_state_change_with_from(ctx: AppContext, clock: ManualClock) -> None:
    lock = add_device(ctx, OTHER_HOME, [("lock", False)])
    spec = _spec({"trigger": {"type": "state", "capability": "lock", "from": "locked", "to": "unlocked"},
                  "actions": [{"type": "notify", "audience": "family", "message": {"key": "rules.unlocked"}}]})
    engine = RuleEngine(ctx.db, clock, bus=ctx.bus)
    engine.set_household_rules(OTHER_HOME, [EngineRule(spec, group="unlock")])
    notices: list = []
    from cityweave.rules.engine import RuleNotice

    ctx.bus.subscribe(RuleNotice, notices.append)
    observe(ctx, engine, reading(lock, "lock", "unlocked", clock.now()))  # from unknown: no
    observe(ctx, engine, reading(lock, "lock", "locked", clock.advance(seconds=1)))
    observe(ctx, engine, reading(lock, "lock", "unlocked", clock.advance(seconds=1)))
    observe(ctx, engine, reading(lock, "lock", "unlocked", clock.advance(seconds=1)))  # no change
    assert [n.message_key for n in notices] == ["rules.unlocked"]
    assert notices[0].household_id == OTHER_HOME and notices[0].audience == "family"


def test_schedule_fires_at_local_time(ctx: AppContext, clock: ManualClock) -> None:
    add_device(ctx, OTHER_HOME, [("on_off", True)])
    spec = _spec({"trigger": {"type": "schedule", "at": "09:00"},
                  "actions": [{"type": "set_mode", "mode": "away"}]})
    engine = RuleEngine(ctx.db, clock, bus=ctx.bus)
    engine.set_household_rules(OTHER_HOME, [EngineRule(spec, group="leave")])
    engine.tick(clock.now())  # 08:00 local: schedules the first run
    assert engine.tick(clock.advance(minutes=59)) == []
    assert [f.rule_key for f in engine.tick(clock.advance(minutes=1))] == ["t"]
    with ctx.db.session() as session:
        assert modes.current(session, OTHER_HOME) == m.Mode.AWAY
    assert engine.tick(clock.advance(minutes=1)) == []


def test_intrusion_only_while_armed(ctx: AppContext, clock: ManualClock) -> None:
    door = add_device(ctx, OTHER_HOME, [("contact", False)])
    engine, _ = engine_for(ctx)
    observe(ctx, engine, reading(door, "contact", True, clock.now()))
    observe(ctx, engine, reading(door, "contact", False, clock.advance(seconds=1)))
    assert alarms(ctx) == [], "an opened door at home is no intrusion"
    observe(ctx, engine, reading(door, "contact", True, clock.advance(seconds=1)))
    with ctx.db.session() as session:
        modes.store(session, OTHER_HOME, m.Mode.ARMED, clock.now(), actor_id=None, actor_name="t")
    engine.invalidate(OTHER_HOME)
    observe(ctx, engine, reading(door, "contact", False, clock.advance(seconds=1)))
    [alarm] = alarms(ctx)
    assert alarm.kind == "intrusion" and alarm.severity == "major"


def test_time_window_and_device_state_conditions(ctx: AppContext, clock: ManualClock) -> None:
    from cityweave.devices.registry.places import RegistryPlaces
    from cityweave.telemetry.sink import TelemetrySink
    from cityweave.telemetry.store import TelemetryStore

    sensor = add_device(ctx, OTHER_HOME, [("temperature", False)])
    window = add_device(ctx, OTHER_HOME, [("window_open", False)])
    spec = _spec({"trigger": {"type": "threshold", "capability": "temperature", "op": "gt", "value": 30},
                  "conditions": [{"type": "time_window", "start": "07:00", "end": "09:00"},
                                 {"type": "device_state", "capability": "window_open", "op": "eq", "value": False}],
                  "actions": [{"type": "raise_alarm", "kind": "hot", "severity": "info"}]})
    engine = RuleEngine(ctx.db, clock, bus=ctx.bus)
    engine.set_household_rules(OTHER_HOME, [EngineRule(spec, group="hot")])
    sink = TelemetrySink(TelemetryStore(clock), places=RegistryPlaces())
    with ctx.db.session() as session:
        sink.write_batch(session, [reading(window, "window_open", True, clock.now())])
    observe(ctx, engine, reading(sensor, "temperature", 31.0, clock.advance(seconds=1)))
    assert alarms(ctx) == [], "the window is open"
    observe(ctx, engine, reading(sensor, "temperature", 20.0, clock.advance(seconds=1)))
    with ctx.db.session() as session:
        sink.write_batch(session, [reading(window, "window_open", False, clock.now())])
    observe(ctx, engine, reading(sensor, "temperature", 31.0, clock.advance(seconds=1)))
    assert len(alarms(ctx)) == 1
    observe(ctx, engine, reading(sensor, "temperature", 20.0, clock.advance(seconds=1)))
    observe(ctx, engine, reading(sensor, "temperature", 31.0, clock.advance(hours=2)))  # 10:00 local
    assert alarms(ctx)[0].count == 1


def test_a_rolled_back_batch_leaves_no_state(ctx: AppContext, clock: ManualClock) -> None:
    smoke = add_device(ctx, OTHER_HOME, [("smoke", False)])
    siren = add_device(ctx, OTHER_HOME, [("siren", True)])
    engine, publisher = engine_for(ctx)
    with pytest.raises(RuntimeError), ctx.db.session() as session:
        engine.observe(session, [reading(smoke, "smoke", True, clock.now())])
        raise RuntimeError("the batch fails after the rules ran")
    assert alarms(ctx) == [] and publisher.messages == [] and _states(ctx) == []
    # the retried batch fires again from the same state: alarm and siren, once
    observe(ctx, engine, reading(smoke, "smoke", True, clock.now()))
    assert len(alarms(ctx)) == 1 and [c.device_id for c in commands(ctx)] == [siren]
    assert len(publisher.messages) == 1


def test_self_test_readings_never_dispatch(ctx: AppContext, clock: ManualClock) -> None:
    from cityweave.devices.reading import Quality, Reading

    smoke = add_device(ctx, OTHER_HOME, [("smoke", False)])
    engine, _ = engine_for(ctx)
    observe(ctx, engine, Reading(smoke, "smoke", True, clock.now(), quality=Quality.TEST))
    assert alarms(ctx) == []


def test_offline_safety_device_and_low_battery(ctx: AppContext, clock: ManualClock) -> None:
    from cityweave.devices.reading import AvailabilityChange

    leak = add_device(ctx, OTHER_HOME, [("water_leak", False), ("battery", False)])
    plug = add_device(ctx, OTHER_HOME, [("power_w", False)])
    engine, _ = engine_for(ctx)
    with ctx.db.session() as session:
        engine.observe(session, [], [(AvailabilityChange("a", False, leak), clock.now()),
                                     (AvailabilityChange("b", False, plug), clock.now())])
    assert _health(engine.tick(clock.advance(hours=11))) == []
    [fired] = _health(engine.tick(clock.advance(hours=1, seconds=1)))
    assert fired.device_id == leak
    assert [a.kind for a in alarms(ctx) if a.kind != "inactivity"] == ["device_health"]
    with ctx.db.session() as session:
        engine.observe(session, [], [(AvailabilityChange("a", True, leak), clock.now())])
    assert alarms(ctx, kind="device_health")[0].status is AlarmStatus.CLEARED
    observe(ctx, engine, reading(leak, "battery", 9.0, clock.advance(seconds=1)))
    assert [a.cause_key for a in alarms(ctx, status=AlarmStatus.RAISED, kind="device_health")] == [
        f"device_battery:{leak}"]


def _health(fired: list) -> list:
    return [f for f in fired if f.rule_key.startswith("builtin.device_health")]


def test_work_order_action_asks_for_people_on_site_once(ctx: AppContext, clock: ManualClock) -> None:
    from cityweave.workorders.from_alarms import SiteVisitOpener

    leak = add_device(ctx, OTHER_HOME, [("water_leak", False)])
    spec = _spec({"trigger": {"type": "threshold", "capability": "water_leak", "op": "eq", "value": True},
                  "actions": [{"type": "raise_alarm", "kind": "water_leak", "severity": "major"},
                              {"type": "work_order", "category": "alarm-site-visit"}]})
    engine = RuleEngine(ctx.db, clock, bus=ctx.bus, work_orders=SiteVisitOpener(ctx))
    engine.set_household_rules(OTHER_HOME, [EngineRule(spec, group="leak-site")])
    observe(ctx, engine, reading(leak, "water_leak", True, clock.now()))
    observe(ctx, engine, reading(leak, "water_leak", False, clock.advance(seconds=1)))
    observe(ctx, engine, reading(leak, "water_leak", True, clock.advance(seconds=1)))
    [alarm] = alarms(ctx)
    assert alarm.count == 2 and alarm.work_order_requested and alarm.work_order_ref


def test_the_timer_walks_the_escalation_chain(ctx: AppContext, clock: ManualClock) -> None:
    from cityweave.alarms import AlarmChange

    button = add_device(ctx, ELDERLY_HOME, [("emergency_call", False)])
    engine, _ = engine_for(ctx)
    changes: list = []
    ctx.bus.subscribe(AlarmChange, changes.append)
    observe(ctx, engine, reading(button, "emergency_call", True, clock.now()))
    assert [(c.change, c.audience) for c in changes] == [("raised", "family")]
    engine.tick(clock.advance(seconds=119))
    assert len(changes) == 1
    engine.tick(clock.advance(seconds=2))
    engine.tick(clock.advance(seconds=301))
    assert [(c.change, c.audience) for c in changes if c.kind == "emergency_call"] == [
        ("raised", "family"), ("escalated", "grid_worker"), ("escalated", "community_staff")]


def test_conditions_that_stop_a_rule_neither_count_nor_write_state(ctx: AppContext, clock: ManualClock) -> None:
    motion = add_device(ctx, OTHER_HOME, [("motion", False)])
    engine, _ = engine_for(ctx)
    for _ in range(3):
        observe(ctx, engine, reading(motion, "motion", True, clock.advance(seconds=1)))
    assert alarms(ctx) == [] and _states(ctx) == [], "motion at home is nobody's business"
    with ctx.db.session() as session:
        modes.store(session, OTHER_HOME, m.Mode.ARMED, clock.now(), actor_id=None, actor_name="t")
    engine.invalidate(OTHER_HOME)
    observe(ctx, engine, reading(motion, "motion", True, clock.advance(seconds=1)))  # still moving, now armed
    observe(ctx, engine, reading(motion, "motion", True, clock.advance(seconds=1)))
    [alarm] = alarms(ctx)
    assert alarm.kind == "intrusion" and alarm.count == 2


def test_a_night_duration_waits_for_the_window(ctx: AppContext, clock: ManualClock) -> None:
    from datetime import UTC, datetime

    plug = add_device(ctx, OTHER_HOME, [("power_w", False)])
    clock.set(datetime(2026, 1, 1, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    engine, _ = engine_for(ctx)
    observe(ctx, engine, reading(plug, "power_w", 1800.0, clock.now()))
    assert [f.rule_key for f in engine.tick(clock.advance(minutes=20))] == [], "15 min over, but before midnight"
    assert [f.rule_key for f in engine.tick(clock.advance(minutes=11))] == ["builtin.electricity.night"]
    [alarm] = alarms(ctx)
    assert alarm.kind == "electricity_night" and alarm.severity == "warning"
