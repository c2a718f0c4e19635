"""Publishing the fleet over MQTT: paced, bounded, interruptible, and reproducible.

Two layers. :class:`Schedule` is pure: it decides, message slot by message slot, which device
reports at which simulated time and what it sends, so the same seed gives the same messages in
the same order (what the determinism test checks). Message ``k`` is due ``k / rate`` seconds
after the start and reports the world at ``start + speed * k / rate``. Devices take turns in a
seeded round robin; alarm events (smoke, gas, leak, SOS, fall) jump the queue the moment they
start and end, as real detectors report immediately rather than at their next heartbeat.

:func:`run` publishes a schedule with paho-mqtt 2.x. It is open loop: message ``k`` is sent at
its due time whatever the broker does (if publishing falls behind it sends as fast as it can and
the summary shows the rate achieved). :func:`run_open_loop` is the benchmark's entry point:
a fixed rate, round robin over N devices of mixed vendors, sequence numbers in every payload that
has room for one. :func:`start_background` runs a simulation in a daemon thread for the demo.
"""

from __future__ import annotations

import heapq
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from cityweave.simulator.behaviour import (
    CHINA,
    DEFAULT_CONFIG,
    EVENTS,
    BehaviourConfig,
    event_window,
    sample,
)
from cityweave.simulator.fleet import (
    FALL_RADAR,
    GAS,
    LEAK,
    SIREN,
    SMOKE,
    SOS,
    VALVE,
    Fleet,
    VirtualDevice,
    bench_fleet,
)
from cityweave.simulator.payloads import Outgoing, announcements, encode
from cityweave.simulator.responder import CommandResponder, Overrides

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
# Which devices report when a household event starts or ends.
_EVENT_DEVICES: dict[str, tuple[str, ...]] = {
    "smoke": (SMOKE, SIREN), "gas": (GAS, SIREN), "leak": (LEAK, VALVE), "sos": (SOS,), "fall": (FALL_RADAR,),
}


def default_broker_url() -> str:
    """``CITYWEAVE_MQTT_URL`` (environment, or the settings when they know it), else the local broker."""
    url = os.environ.get("CITYWEAVE_MQTT_URL")
    if url:
        return url
    try:
        from cityweave.config import Settings

        configured = getattr(Settings(), "mqtt_url", None)
    except Exception:  # noqa: BLE001 - a broken config file must not stop a simulator
        configured = None
    return str(configured) if configured else DEFAULT_BROKER


# -- the schedule -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Planned:
    """One device report: the messages it sends, due at slot ``slot`` (its first message's number)."""

    slot: int
    when: datetime  # simulated time the values were measured (an alarm's own moment for alarms)
    device: VirtualDevice
    messages: list[Outgoing]


class Schedule:
    """The deterministic sequence of reports for a fleet.

    Two clocks: the behaviour follows the simulated one (``start``, ``speed`` times faster), the
    payloads' own timestamps the schedule's wall clock (``clock_start``, real time), so an
    accelerated run never hands the platform readings from the future. Both default to ``start``
    (or now), which makes a schedule with a given start fully reproducible.

    ``urgent_events=False`` gives a plain round robin (the benchmark's open loop); ``shuffle``
    orders the round robin by a seeded permutation rather than fleet order, so one household's
    devices do not all report back to back.
    """

    def __init__(self, devices: Sequence[VirtualDevice], *, rate: float, speed: float = 1.0,
                 start: datetime | None = None, seed: int = 1, config: BehaviourConfig = DEFAULT_CONFIG,
                 urgent_events: bool = True, shuffle: bool = True, clock_start: datetime | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not devices:
            raise ValueError("no devices to simulate")
        self.devices = list(devices)
        if shuffle:
            random.Random(f"order:{seed}").shuffle(self.devices)
        self.rate, self.speed, self.config = rate, speed, config
        self.start = (start or datetime.now(UTC)).astimezone(UTC)
        self.clock_start = (clock_start or self.start).astimezone(UTC)
        self.rng = random.Random(f"noise:{seed}")
        self.urgent_events = urgent_events
        self._homes: dict[str, list[VirtualDevice]] = {}
        for device in self.devices:
            self._homes.setdefault(device.household.id, []).append(device)
        self._urgent: list[tuple[datetime, int, str]] = []  # (time, tie-break, device id)
        self._by_id = {d.id: d for d in self.devices}
        self._planned_day: int | None = None
        self._tie = 0
        # Values set by commands (the responder's), applied on top of the behaviour.
        self.overrides: Overrides | None = None

    def when(self, slot: int) -> datetime:
        """The simulated time of slot ``slot``."""
        return self.start + timedelta(seconds=self.speed * slot / self.rate)

    def stamp(self, slot: int) -> datetime:
        """The wall-clock time slot ``slot`` is due: what devices write into their payloads."""
        return self.clock_start + timedelta(seconds=slot / self.rate)

    def _plan_day(self, when: datetime) -> None:
        """Queue the reports of every alarm starting or ending on ``when``'s local day."""
        local = when.astimezone(CHINA)
        day = (local.date() - datetime(2026, 1, 1).date()).days
        if day == self._planned_day:
            return
        self._planned_day = day
        midnight = datetime(local.year, local.month, local.day, tzinfo=CHINA)
        homes = {d.household.id: d.household for d in self.devices}
        for home_id, home in homes.items():
            for kind in EVENTS:
                window = event_window(kind, home, day, self.config)
                if window is None:
                    continue
                moments = [midnight + timedelta(hours=h, seconds=1) for h in window]  # just inside
                if kind == "leak":  # the valve closes a minute in
                    moments.append(moments[0] + timedelta(minutes=1, seconds=5))
                for device in self._homes[home_id]:
                    if device.kind in _EVENT_DEVICES[kind]:
                        for moment in moments:
                            if moment >= self.start:
                                self._tie += 1
                                heapq.heappush(self._urgent, (moment, self._tie, device.id))

    def __iter__(self) -> Iterator[Planned]:
        slot, turn = 0, 0
        count = len(self.devices)
        while True:
            when = self.when(slot)
            device: VirtualDevice | None = None
            measured = when
            if self.urgent_events:
                self._plan_day(when)
                if self._urgent and self._urgent[0][0] <= when:
                    # Measured when the alarm changed, sent in the next free slot: an event
                    # shorter than a slot is still reported.
                    measured, _, device_id = heapq.heappop(self._urgent)
                    device = self._by_id[device_id]
            if device is None:
                device = self.devices[turn % count]
                turn += 1
            values = sample(device, measured, self.rng, self.config)
            if self.overrides:
                values = self.overrides.apply(device, values)
            stamp = self.stamp(slot) if self.speed != 1.0 or self.clock_start != self.start else measured
            messages = encode(device, values, stamp, slot)
            yield Planned(slot, measured, device, messages)
            slot += len(messages)


# -- MQTT ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Broker:
        """``mqtt://[user[:password]@]host[:port]`` (also ``tcp://``), ``mqtts://`` for TLS."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} (use mqtt:// or mqtts://)")
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise ValueError(f"no host in broker URL {url!r}")
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


def connect(url: str, client_id: str | None = None, timeout: float = 10.0) -> Any:
    """A connected paho-mqtt 2.x client with its network loop running; ``ConnectionError`` if not."""
    import paho.mqtt.client as mqtt

    broker = Broker.parse(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"cityweave-sim-{os.getpid()}-{random.getrandbits(32):08x}",
                         protocol=mqtt.MQTTv311)
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()
    client.max_inflight_messages_set(1000)
    connected = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        outcome["reason"] = reason
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise ConnectionError(f"cannot reach MQTT broker {broker.host}:{broker.port}: {exc}") from exc
    client.loop_start()
    if not connected.wait(timeout) or getattr(outcome.get("reason"), "is_failure", True):
        client.loop_stop()
        raise ConnectionError(f"MQTT broker {broker.host}:{broker.port} refused the connection: "
                              f"{outcome.get('reason', 'no answer')}")
    return client


@dataclass
class RunSummary:
    """What a run sent. ``rate`` is messages per second of wall-clock time actually achieved."""

    messages: int = 0
    reports: int = 0
    announcements: int = 0
    by_vendor: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    sim_start: datetime | None = None
    sim_now: datetime | None = None
    target_rate: float = 0.0
    max_lag: float = 0.0  # how far behind its schedule the publisher fell, seconds
    stopped_by: str = ""  # "duration", "messages", "signal", "stop"

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed if self.elapsed > 0 else 0.0


def publish_all(client: Any, messages: Sequence[Outgoing], qos: int) -> None:
    """Publish and wait until paho has handed every message to the socket (or the broker acked)."""
    last = None
    for message in messages:
        last = client.publish(message.topic, message.payload, qos=qos, retain=message.retain)
    if last is not None:
        last.wait_for_publish(timeout=30)


def run(schedule: Schedule | Iterator[Planned], broker_url: str, *, qos: int = 0, duration: float | None = None,
        max_messages: int | None = None, announce: Sequence[Outgoing] = (),
        stop: threading.Event | None = None, progress: Callable[[RunSummary], None] | None = None,
        progress_every: float = 0.5, handle_signals: bool = True, client: Any = None,
        retain: bool | None = None, responder: CommandResponder | None = None) -> RunSummary:
    """Publish ``schedule`` until ``duration`` seconds, ``max_messages`` messages, a signal or ``stop``.

    The rate comes from the schedule (its ``rate``); ``announce`` is published first, unpaced.
    SIGINT and SIGTERM end the run cleanly (when called from the main thread). ``retain``
    overrides the ecosystems' own retain flags of the device messages (``False`` for benchmarks,
    whose retained states would outlive them on the broker). ``responder`` answers the commands
    the platform sends to the devices, through the same client.
    """
    if qos not in (0, 1):
        raise ValueError("qos must be 0 or 1")
    stop = stop or threading.Event()
    summary = RunSummary(target_rate=getattr(schedule, "rate", 0.0), sim_start=getattr(schedule, "start", None))
    rate = summary.target_rate or float("inf")
    own_client = client is None
    client = client or connect(broker_url)
    if responder is not None:
        responder.attach(client)
    previous: dict[int, Any] = {}
    reason = {"by": ""}

    def on_signal(signum: int, _frame: Any) -> None:
        reason["by"] = "signal"
        stop.set()

    if handle_signals and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        if announce:
            publish_all(client, announce, 1)
            summary.announcements = len(announce)
        started = time.monotonic()
        next_progress = started + progress_every
        last = None
        for planned in schedule:
            if stop.is_set():
                break
            due = started + planned.slot / rate
            now = time.monotonic()
            if duration is not None and (due - started >= duration or now - started >= duration):
                reason["by"] = reason["by"] or "duration"
                break
            if due > now + 0.002:
                if stop.wait(due - now):
                    break
            else:
                summary.max_lag = max(summary.max_lag, now - due)
            for message in planned.messages:
                last = client.publish(message.topic, message.payload, qos=qos,
                                      retain=message.retain if retain is None else retain)
            summary.messages += len(planned.messages)
            summary.reports += 1
            summary.by_vendor[planned.device.vendor] += len(planned.messages)
            summary.by_kind[planned.device.kind] += len(planned.messages)
            summary.sim_now = planned.when
            if max_messages is not None and summary.messages >= max_messages:
                reason["by"] = reason["by"] or "messages"
                break
            if progress is not None and (now := time.monotonic()) >= next_progress:
                summary.elapsed = now - started
                progress(summary)
                next_progress = now + progress_every
        if last is not None:
            last.wait_for_publish(timeout=30)
        summary.elapsed = time.monotonic() - started
        summary.stopped_by = reason["by"] or ("stop" if stop.is_set() else "end")
        if progress is not None:
            progress(summary)
        return summary
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if own_client:
            client.disconnect()
            client.loop_stop()


def simulate(fleet: Fleet, broker_url: str | None = None, *, rate: float = 100.0, speed: float = 1.0,
             duration: float | None = None, max_messages: int | None = None, qos: int = 0, announce: bool = False,
             start: datetime | None = None, config: BehaviourConfig = DEFAULT_CONFIG,
             stop: threading.Event | None = None, progress: Callable[[RunSummary], None] | None = None,
             handle_signals: bool = True, respond: bool = False) -> RunSummary:
    """Simulate ``fleet`` against a broker: what ``cityweave simulate`` does. With ``respond`` the
    devices also answer the commands sent to them (:mod:`~cityweave.simulator.responder`)."""
    schedule = Schedule(fleet.devices, rate=rate, speed=speed, start=start, seed=fleet.seed, config=config,
                        clock_start=datetime.now(UTC))
    responder = None
    if respond:
        schedule.overrides = Overrides()
        responder = CommandResponder(fleet, schedule.overrides, config=config)
    intro: list[Outgoing] = []
    if announce:
        rng = random.Random(f"announce:{fleet.seed}")
        intro = announcements(fleet, schedule.clock_start, lambda d: sample(d, schedule.start, rng, config))
    return run(schedule, broker_url or default_broker_url(), qos=qos, duration=duration,
               max_messages=max_messages, announce=intro, stop=stop, progress=progress,
               handle_signals=handle_signals, responder=responder)


# -- the benchmark's open loop ---------------------------------------------------------------------------
def open_loop_schedule(devices: int = 10_000, *, rate: float = 1000.0, seed: int = 1,
                       start: datetime | None = None) -> Schedule:
    """Round robin over ``devices`` devices of mixed vendors at ``rate`` messages/s, in real time.

    Every payload with room for one carries the message's slot number as a sequence number
    (native ``seq``, Tuya ``msgId``, Home Assistant ``seq``), so a consumer can count losses.
    """
    fleet = bench_fleet(devices, seed)
    return Schedule(fleet.devices, rate=rate, speed=1.0, start=start, seed=seed, urgent_events=False)


def run_open_loop(broker_url: str | None = None, *, rate: float = 1000.0, devices: int = 10_000,
                  duration: float = 10.0, qos: int = 0, seed: int = 1, announce: bool = False,
                  stop: threading.Event | None = None, retain: bool = False,
                  progress: Callable[[RunSummary], None] | None = None) -> RunSummary:
    """Publish the open-loop schedule for ``duration`` seconds; the summary says what went out.

    Nothing is retained unless ``retain`` (native states are retained by their format, and
    thousands of them would stay on the broker after the benchmark).
    """
    schedule = open_loop_schedule(devices, rate=rate, seed=seed)
    intro: list[Outgoing] = []
    if announce:
        rng = random.Random(f"announce:{seed}")
        intro = announcements(schedule.devices, schedule.start, lambda d: sample(d, schedule.start, rng))
    return run(schedule, broker_url or default_broker_url(), qos=qos, duration=duration, announce=intro,
               stop=stop, progress=progress, handle_signals=False, retain=None if retain else False)


# -- in the background, for the demo ---------------------------------------------------------------------
class BackgroundSimulation:
    """A simulation in a daemon thread; ``stop()`` ends it and returns the summary."""

    def __init__(self, fleet: Fleet, broker_url: str, **options: Any) -> None:
        self._stop = threading.Event()
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(fleet, broker_url, options),
                                        name="cityweave-simulator", daemon=True)

    def _main(self, fleet: Fleet, broker_url: str, options: dict[str, Any]) -> None:
        try:
            self.summary = simulate(fleet, broker_url, stop=self._stop, handle_signals=False, **options)
        except BaseException as exc:  # noqa: BLE001 - reported through .error, the demo keeps serving
            self.error = exc

    def start(self) -> BackgroundSimulation:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> RunSummary | None:
        self._stop.set()
        self._thread.join(timeout)
        return self.summary


def start_background(broker_url: str | None = None, *, fleet: Fleet | None = None, rate: float = 50.0,
                     speed: float = 1.0, seed: int = 1, announce: bool = True, **options: Any) -> BackgroundSimulation:
    """Run the demo district's devices against ``broker_url`` until stopped (for ``cityweave demo``).

    Defaults: every occupied demo household, 50 messages/s (each device about every four
    minutes), real time (the lights go on when it gets dark outside the demo's window too),
    announcements first so a registry can discover the devices, and the devices answer commands.
    """
    from cityweave.simulator.fleet import build_fleet, demo_households

    fleet = fleet or build_fleet(demo_households(), seed)
    options.setdefault("respond", True)
    return BackgroundSimulation(fleet, broker_url or default_broker_url(), rate=rate, speed=speed,
                                announce=announce, **options).start()
