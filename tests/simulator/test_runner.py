"""The schedule (deterministic, paced, alarms first), the open loop, and a run through Mosquitto."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Self

import orjson
import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from cityweave.devices.adapters import adapter_for_topic, create_all
from cityweave.simulator.behaviour import CHINA, BehaviourConfig, Moment, event_window
from cityweave.simulator.fleet import build_fleet, synthetic_households
from cityweave.simulator.registry import bind_fleet
from cityweave.simulator.runner import Broker, Schedule, open_loop_schedule, run_open_loop, simulate
from tests.conftest import need_service

START = datetime(2026, 6, 1, 18, 0, tzinfo=CHINA)
BROKER = "mqtt://127.0.0.1:1883"
TOPICS = ["zigbee2mqtt/#", "tele/#", "tylink/#", "home/#", "cityweave/v1/#", "+/events/rpc"]


def _first(schedule: Schedule, count: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for planned in schedule:
        out += [(m.topic, m.payload) for m in planned.messages]
        if len(out) >= count:
            return out[:count]
    raise AssertionError("schedule ended")


def test_same_seed_gives_the_same_first_messages() -> None:
    def make(seed: int) -> Schedule:
        return Schedule(build_fleet(synthetic_households(40, seed), seed).devices, rate=100, speed=60,
                        start=START, seed=seed)

    first = _first(make(3), 400)
    assert first == _first(make(3), 400)
    assert first != _first(make(4), 400)


def test_slots_follow_rate_and_speed() -> None:
    schedule = Schedule(build_fleet(synthetic_households(10, 1), 1).devices, rate=50, speed=60, start=START,
                        urgent_events=False)
    previous = -1
    for planned in schedule:
        assert planned.slot > previous
        assert planned.when == START + timedelta(seconds=60 * planned.slot / 50)
        previous = planned.slot + len(planned.messages) - 1
        if planned.slot > 1000:
            break


def test_accelerated_runs_stamp_payloads_with_the_wall_clock() -> None:
    clock = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    fleet = build_fleet(synthetic_households(10, 1), 1)
    schedule = Schedule(fleet.devices, rate=10, speed=3600, start=START, clock_start=clock, urgent_events=False)
    checked = 0
    for planned in schedule:
        if planned.device.vendor == "native":
            body = orjson.loads(planned.messages[0].payload)
            assert body["ts"] == int((clock + timedelta(seconds=planned.slot / 10)).timestamp() * 1000)
            assert planned.when == START + timedelta(hours=planned.slot / 10)  # behaviour: an hour per slot
            checked += 1
        if planned.slot > 300:
            break
    assert checked > 5


def test_alarms_are_reported_when_they_start_not_at_the_next_turn() -> None:
    config = BehaviourConfig(smoke_per_day=1.0)
    fleet = build_fleet(synthetic_households(30, 2), 2)
    start = datetime(2026, 6, 1, 0, 0, tzinfo=CHINA)
    # one slot per simulated minute: each device's own turn comes only every few hours
    schedule = Schedule(fleet.devices, rate=10, speed=600, start=start, seed=2, config=config)
    reports: dict[str, list[datetime]] = {}
    for planned in schedule:
        if planned.when >= start + timedelta(days=1):
            break
        reports.setdefault(planned.device.id, []).append(planned.when)
    day = Moment.of(start).day
    for device in (d for d in fleet.devices if d.kind == "smoke"):
        window = event_window("smoke", device.household, day, config)
        assert window is not None
        began = start + timedelta(hours=window[0])
        assert any(began <= t <= began + timedelta(seconds=5) for t in reports[device.id]), device.id


def test_open_loop_embeds_sequence_numbers_where_the_format_allows() -> None:
    schedule = open_loop_schedule(500, rate=1000, seed=1, start=START)
    assert len(schedule.devices) == 500
    vendors: set[str] = set()
    for planned in schedule:
        vendors.add(planned.device.vendor)
        message = planned.messages[0]
        if planned.device.vendor == "native":
            assert orjson.loads(message.payload)["seq"] == planned.slot
        elif planned.device.vendor == "tuya":
            assert orjson.loads(message.payload)["msgId"] == str(planned.slot)
        elif planned.device.vendor == "homeassistant" and planned.device.kind != "light":
            assert orjson.loads(message.payload)["seq"] == planned.slot
        if planned.slot > 2000:
            break
    assert len(vendors) == 6


def test_broker_urls() -> None:
    assert Broker.parse("mqtt://127.0.0.1:1883") == Broker("127.0.0.1", 1883)
    assert Broker.parse("mqtts://u:p%40ss@example.org") == Broker("example.org", 8883, True, "u", "p@ss")
    assert Broker.parse("localhost") == Broker("localhost", 1883)
    with pytest.raises(ValueError):
        Broker.parse("http://example.org")


# -- against the real broker -------------------------------------------------------------------------
def _need_mosquitto() -> None:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError as exc:
        need_service("Mosquitto", f"nothing listens on 127.0.0.1:1883 ({exc})")


class Listener:
    """A paho subscriber that keeps every message it gets."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cw-sim-test-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in TOPICS])
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def __enter__(self) -> Self:
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _clear_retained(topics: list[str]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cw-sim-clean-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    info = None
    for topic in topics:
        info = client.publish(topic, b"", qos=1, retain=True)
    if info is not None:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_end_to_end_through_mosquitto() -> None:
    _need_mosquitto()
    fleet = build_fleet(synthetic_households(25, 5, prefix=f"t{uuid.uuid4().hex[:6]}"), 5)
    ours = {d.id for d in fleet.devices}
    adapters = create_all(directory=bind_fleet(fleet))
    try:
        with Listener() as listener:
            summary = simulate(fleet, BROKER, rate=250, speed=60, duration=2.0, qos=1, handle_signals=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with listener.lock:
                    live = [m for m in listener.messages if not m[2]]
                results = []
                for topic, payload, _ in live:
                    adapter = adapter_for_topic(adapters, topic)
                    if adapter is not None:
                        result = adapter.decode(topic, payload, datetime.now(UTC))
                        if result.device_key in ours:
                            results.append(result)
                if len(results) >= summary.messages:
                    break
                time.sleep(0.2)
    finally:
        _clear_retained([f"cityweave/v1/{d.id}/state" for d in fleet.of_vendor("native")])
    assert 350 <= summary.messages <= 520  # 250 msg/s for 2 s, roughly
    assert summary.stopped_by == "duration"
    assert len(results) == summary.messages
    assert {r.adapter for r in results} == set(summary.by_vendor)
    for result in results:
        assert result.readings and not result.rejections, (result.topic, result.rejections)


def test_open_loop_against_mosquitto() -> None:
    _need_mosquitto()
    summary = run_open_loop(BROKER, rate=400, devices=300, duration=1.0, seed=77)
    _clear_retained([f"cityweave/v1/{d.id}/state" for d in open_loop_schedule(300, seed=77).devices
                     if d.vendor == "native"])
    assert 300 <= summary.messages <= 420
    assert len(summary.by_vendor) >= 5


def test_cli_simulate_runs_and_summarises() -> None:
    _need_mosquitto()
    from cityweave.cli.main import app

    result = CliRunner().invoke(app, ["simulate", "--households", "3", "--duration", "1", "--rate", "40",
                                      "--broker", BROKER, "--seed", "5"])
    fleet = build_fleet(synthetic_households(3, 5), 5)
    _clear_retained([f"cityweave/v1/{d.id}/state" for d in fleet.of_vendor("native")])
    assert result.exit_code == 0, result.output
    assert "messages in" in result.output and "stopped by duration" in result.output


def test_cli_reports_an_unreachable_broker() -> None:
    from cityweave.cli.main import app

    result = CliRunner().invoke(app, ["simulate", "--households", "1", "--duration", "1",
                                      "--broker", "mqtt://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach MQTT broker" in result.output


def test_background_simulation_for_the_demo_starts_and_stops() -> None:
    _need_mosquitto()
    from cityweave.simulator.runner import start_background

    fleet = build_fleet(synthetic_households(5, 8, prefix=f"t{uuid.uuid4().hex[:6]}"), 8)
    ours = {d.id for d in fleet.devices}
    adapters = create_all(directory=bind_fleet(fleet))
    with Listener() as listener:
        background = start_background(BROKER, fleet=fleet, rate=100, speed=60, announce=False)
        time.sleep(1.0)
        assert background.running
        summary = background.stop()
        time.sleep(0.5)
    _clear_retained([f"cityweave/v1/{d.id}/state" for d in fleet.of_vendor("native")])
    assert not background.running and background.error is None
    assert summary is not None and summary.stopped_by == "stop" and 50 <= summary.messages <= 130
    with listener.lock:
        mine = [r for topic, payload, _ in listener.messages
                if (a := adapter_for_topic(adapters, topic)) is not None
                and (r := a.decode(topic, payload, datetime.now(UTC))).device_key in ours]
    assert len(mine) == summary.messages
