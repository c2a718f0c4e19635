"""Each built-in rule end to end: a real vendor payload (the simulator's encoders, shaped like the
shared fixtures) published on the real Mosquitto, through the DeviceRuntime's ingest, to the alarm
row, and the valve or siren command the rule sends arriving on the broker in the vendor's format.
Both backends. Durations and absences run on the ManualClock, ticked by the runtime's timer."""

from __future__ import annotations

import json

from sqlalchemy import select

from cityweave.alarms.models import Alarm, AlarmStatus
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.devices.registry.models import DeviceCommand
from cityweave.rules import modes
from cityweave.rules.model import Mode
from cityweave.simulator.fleet import (
    AIR,
    DOOR,
    FALL_RADAR,
    GAS,
    LEAK,
    MOTION,
    PLUG,
    SHELLY,
    SIREN,
    SMOKE,
    SOS,
    TUYA,
    VALVE,
    ZIGBEE2MQTT,
)
from tests.rules.e2e import (
    Harness,
    harness_fixture,  # noqa: F401 - the fixture
    payload,
    until,
)
from tests.rules.support import ELDERLY_HOME, OTHER_HOME, add_device


def _alarm(ctx: AppContext, cause: str, *, status: AlarmStatus | None = None) -> Alarm | None:
    with ctx.db.session() as session:
        stmt = select(Alarm).where(Alarm.cause_key == cause).order_by(Alarm.first_at.desc())
        if status is not None:
            stmt = stmt.where(Alarm.status == status)
        return session.execute(stmt).scalars().first()


def _commands(ctx: AppContext, device: str) -> list[DeviceCommand]:
    with ctx.db.session() as session:
        return list(session.execute(select(DeviceCommand).where(DeviceCommand.device_id == device)).scalars())


def test_fire_smoke_raises_a_critical_alarm_and_sounds_the_siren(harness: Harness, ctx: AppContext) -> None:
    smoke = harness.bind(OTHER_HOME, SMOKE, ZIGBEE2MQTT)
    siren = harness.bind(OTHER_HOME, SIREN, TUYA)
    harness.start()
    listener = harness.listen(f"tylink/{siren.virtual.tuya_id}/thing/property/set")
    harness.report(smoke, smoke=True)
    alarm = until(lambda: _alarm(ctx, f"fire:{smoke.id}"))
    assert alarm is not None and alarm.kind == "fire" and alarm.severity == "critical"
    assert alarm.place_id == OTHER_HOME and alarm.status is AlarmStatus.RAISED
    assert alarm.escalation and alarm.escalation[0]["audience"] == "family"
    command = listener.expect(f"tylink/{siren.virtual.tuya_id}/thing/property/set")
    assert payload(command)["data"] == {"alarm_switch": True}
    assert [c.capability for c in _commands(ctx, siren.id)] == ["siren"]


def test_gas_closes_the_gas_valve_and_clears(harness: Harness, ctx: AppContext) -> None:
    detector = harness.bind(OTHER_HOME, GAS, ZIGBEE2MQTT)
    valve = harness.bind(OTHER_HOME, VALVE, ZIGBEE2MQTT, name="厨房燃气阀")
    water = harness.bind(OTHER_HOME, VALVE, ZIGBEE2MQTT, name="进户水阀")
    harness.start()
    gas_topic = f"zigbee2mqtt/{valve.virtual.friendly_name}/set"
    water_topic = f"zigbee2mqtt/{water.virtual.friendly_name}/set"
    listener = harness.listen(gas_topic, water_topic)
    harness.report(detector, gas=True, gas_ppm=9000)
    alarm = until(lambda: _alarm(ctx, f"gas:{detector.id}"))
    assert alarm is not None and alarm.severity == "critical" and alarm.kind == "gas"
    command = listener.expect(gas_topic)
    assert payload(command) == {"state": "OFF"}
    assert _commands(ctx, water.id) == [], "the water valve stays open for a gas leak"
    # the detector reports normal again: the alarm clears (the valve stays closed)
    harness.clock.advance(seconds=5)
    harness.report(detector, gas=False, gas_ppm=0)
    assert until(lambda: _alarm(ctx, f"gas:{detector.id}", status=AlarmStatus.CLEARED))


def test_water_leak_closes_the_water_valve(harness: Harness, ctx: AppContext) -> None:
    leak = harness.bind(OTHER_HOME, LEAK, SHELLY)
    valve = harness.bind(OTHER_HOME, VALVE, ZIGBEE2MQTT, name="总水阀")
    harness.start()
    topic = f"zigbee2mqtt/{valve.virtual.friendly_name}/set"
    listener = harness.listen(topic)
    harness.report(leak, water_leak=True)
    alarm = until(lambda: _alarm(ctx, f"water_leak:{leak.id}"))
    assert alarm is not None and alarm.severity == "major"
    assert payload(listener.expect(topic)) == {"state": "OFF"}


def test_overload_for_thirty_seconds_alarms_and_cuts_the_plug_off(harness: Harness, ctx: AppContext,
                                                                   clock: ManualClock) -> None:
    from cityweave.authz.policy import Principal
    from cityweave.context import Call
    from cityweave.rules import builtin

    plug = harness.bind(OTHER_HOME, PLUG, ZIGBEE2MQTT)
    with ctx.db.session() as session:
        builtin.update_settings(Call(ctx, session, Principal.system("t")), OTHER_HOME,
                                {"electricity": {"params": {"cut_off": True}}})
    harness.start()
    topic = f"zigbee2mqtt/{plug.virtual.friendly_name}/set"
    listener = harness.listen(topic)
    harness.report(plug, on_off=True, power_w=3100.0, current=14.0)
    assert until(lambda: harness.rule_state("builtin.electricity.overload"))
    assert _alarm(ctx, f"electricity:{plug.id}") is None
    clock.advance(seconds=31)  # the runtime's timer ticks on the manual clock
    alarm = until(lambda: _alarm(ctx, f"electricity:{plug.id}"))
    assert alarm is not None and alarm.kind == "electricity"
    assert payload(listener.expect(topic)) == {"state": "OFF"}
    # the plug reports the load gone: the alarm clears
    clock.advance(seconds=1)
    harness.report(plug, on_off=False, power_w=0.0, current=0.0)
    assert until(lambda: _alarm(ctx, f"electricity:{plug.id}", status=AlarmStatus.CLEARED))


def test_intrusion_while_armed_alarms_and_sounds_the_siren(harness: Harness, ctx: AppContext,
                                                           clock: ManualClock) -> None:
    door = harness.bind(OTHER_HOME, DOOR, ZIGBEE2MQTT)
    siren = harness.bind(OTHER_HOME, SIREN, TUYA)
    with ctx.db.session() as session:
        modes.store(session, OTHER_HOME, Mode.ARMED, clock.now(), actor_id=None, actor_name="test")
    harness.start()
    listener = harness.listen(f"tylink/{siren.virtual.tuya_id}/thing/property/set")
    harness.report(door, contact=True)
    assert until(lambda: harness.stored(door.id, "contact") == 1.0)
    harness.report(door, contact=False)  # opened
    alarm = until(lambda: _alarm(ctx, f"intrusion:{door.id}"))
    assert alarm is not None and alarm.severity == "major"
    assert payload(listener.expect(f"tylink/{siren.virtual.tuya_id}/thing/property/set"))["data"] == {
        "alarm_switch": True}


def test_elderly_emergency_button_and_fall(harness: Harness, ctx: AppContext) -> None:
    button = harness.bind(ELDERLY_HOME, SOS, ZIGBEE2MQTT, elderly=True)
    radar = harness.bind(ELDERLY_HOME, FALL_RADAR, ZIGBEE2MQTT, elderly=True)
    harness.start()
    harness.report(button, emergency_call=True)
    alarm = until(lambda: _alarm(ctx, f"emergency:{button.id}"))
    assert alarm is not None and alarm.kind == "emergency_call" and alarm.severity == "critical"
    assert [step["audience"] for step in alarm.escalation] == ["family", "grid_worker", "community_staff"]
    assert alarm.escalation_due_at is not None
    harness.report(radar, presence=True, fall_state="fall")
    fall = until(lambda: _alarm(ctx, f"fall:{radar.id}"))
    assert fall is not None and fall.kind == "fall" and fall.severity == "critical"


def test_elderly_emergency_button_in_a_household_without_elderly_is_no_alarm(harness: Harness,
                                                                             ctx: AppContext) -> None:
    button = harness.bind(OTHER_HOME, SOS, ZIGBEE2MQTT)
    smoke = harness.bind(OTHER_HOME, SMOKE, ZIGBEE2MQTT)
    harness.start()
    harness.report(button, emergency_call=True)
    harness.report(smoke, smoke=True)  # processed after the button: when it is there, so was the button
    assert until(lambda: _alarm(ctx, f"fire:{smoke.id}"))
    assert _alarm(ctx, f"emergency:{button.id}") is None


def test_elderly_inactivity_raises_a_welfare_check(harness: Harness, ctx: AppContext, clock: ManualClock) -> None:
    motion = harness.bind(ELDERLY_HOME, MOTION, ZIGBEE2MQTT, elderly=True)
    harness.start(rules_grace_minutes=0)
    harness.report(motion, motion=True)
    assert until(lambda: harness.stored(motion.id, "occupancy") == 1.0)
    clock.advance(hours=4, minutes=1)  # 08:00 + 4 daytime hours in Shanghai
    alarm = until(lambda: _alarm(ctx, f"inactivity:{ELDERLY_HOME}"))
    assert alarm is not None and alarm.kind == "inactivity" and alarm.device_id is None


def test_vital_signs_out_of_range(harness: Harness, ctx: AppContext) -> None:
    monitor = add_device(ctx, ELDERLY_HOME, [("heart_rate", False), ("spo2", False), ("blood_pressure", False)],
                         device_type="health_monitor")
    harness.start()
    native = lambda values: [(f"cityweave/v1/{monitor}/state", json.dumps(
        {"v": 1, "kind": "state", "device": monitor, "values": values}).encode())]
    harness.publish(native({"heart_rate": 72, "spo2": 97, "blood_pressure": {"systolic": 125, "diastolic": 80}}))
    harness.publish(native({"spo2": 88}))
    alarm = until(lambda: _alarm(ctx, f"vital_signs:{monitor}"))
    assert alarm is not None and alarm.kind == "vital_signs" and alarm.details["value"] == 88


def test_environment_pm25_above_the_guideline_for_half_an_hour(harness: Harness, ctx: AppContext,
                                                               clock: ManualClock) -> None:
    air = harness.bind(OTHER_HOME, AIR, TUYA)
    harness.start()
    harness.report(air, pm2_5=85)
    assert until(lambda: harness.rule_state("builtin.environment.pm2_5"))
    clock.advance(minutes=31)
    alarm = until(lambda: _alarm(ctx, f"environment_pm2_5:{air.id}"))
    assert alarm is not None and alarm.severity == "info"
    clock.advance(seconds=1)
    harness.report(air, pm2_5=20)
    assert until(lambda: _alarm(ctx, f"environment_pm2_5:{air.id}", status=AlarmStatus.CLEARED))


def test_device_health_low_battery_and_offline(harness: Harness, ctx: AppContext, clock: ManualClock) -> None:
    smoke = harness.bind(OTHER_HOME, SMOKE, ZIGBEE2MQTT)
    leak = harness.bind(OTHER_HOME, LEAK, ZIGBEE2MQTT)
    harness.start()
    harness.report(smoke, battery=9)
    alarm = until(lambda: _alarm(ctx, f"device_battery:{smoke.id}"))
    assert alarm is not None and alarm.kind == "device_health" and alarm.severity == "minor"
    # Zigbee2MQTT's availability message for the leak sensor
    harness.publish([(f"zigbee2mqtt/{leak.virtual.friendly_name}/availability", b'{"state":"offline"}')])
    assert until(lambda: harness.rule_state("builtin.device_health.offline"))
    clock.advance(hours=12, seconds=1)
    offline = until(lambda: _alarm(ctx, f"device_offline:{leak.id}"))
    assert offline is not None and offline.kind == "device_health"


def test_environment_automation_switches_the_purifier_on(harness: Harness, ctx: AppContext,
                                                         clock: ManualClock) -> None:
    from cityweave.authz.policy import Principal
    from cityweave.context import Call
    from cityweave.rules import builtin

    air = harness.bind(OTHER_HOME, AIR, TUYA)
    purifier = harness.bind(OTHER_HOME, PLUG, ZIGBEE2MQTT, name="客厅空气净化器")
    lamp = harness.bind(OTHER_HOME, PLUG, ZIGBEE2MQTT, name="台灯")
    with ctx.db.session() as session:
        builtin.update_settings(Call(ctx, session, Principal.system("t")), OTHER_HOME,
                                {"environment": {"params": {"automate": True}}})
    harness.start()
    topic = f"zigbee2mqtt/{purifier.virtual.friendly_name}/set"
    listener = harness.listen(topic, f"zigbee2mqtt/{lamp.virtual.friendly_name}/set")
    harness.report(air, formaldehyde=0.12)
    assert until(lambda: harness.rule_state("builtin.environment.formaldehyde"))
    clock.advance(minutes=31)
    alarm = until(lambda: _alarm(ctx, f"environment_formaldehyde:{air.id}"))
    assert alarm is not None and alarm.severity == "info"
    assert payload(listener.expect(topic)) == {"state": "ON"}
    assert _commands(ctx, lamp.id) == [], "only the purifier"
