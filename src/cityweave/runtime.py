"""The composition root of the device side: registry + ingest + telemetry + commands, one start/stop.

``serve`` and ``demo`` build one :class:`DeviceRuntime` from their :class:`AppContext`, start it,
``install`` it on the FastAPI app (which only ever sees the small protocols on ``app.state``), and
stop it on shutdown. Tests build one the same way against a real broker.

What is wired:

- the adapters look devices up in the registry (``DatabaseDirectory``);
- each ingest batch goes to :class:`TelemetryAndCommands`: the telemetry store (with the devices'
  place paths from ``RegistryPlaces``) and the ``CommandTracker``, whose confirmations are written
  to the command log in the batch's own transaction;
- announcements, availability and last-seen go to the registry (``RegistryEventSink``), and the
  devices' replies to commands (``DeviceEvents.acks``: Shelly RPC results and errors, MIoT codes,
  native ``ack``) to the ``CommandTracker``, in the same batch transaction (``RegistryAndAcks``);
- what changed in a batch is announced after its commit as ``DeviceStateChange`` on ``ctx.bus``
  (``StateChangeFeed``): live pages show a switch's echo without polling;
- the rule engine (``rules/engine.py``, built-ins from ``rules/builtin.py``) after both sinks, in
  the same batch transaction (:class:`InOrder`): readings after telemetry and command tracking,
  availability changes after the registry; its device commands go out through the ingest's MQTT
  client after the commit, its alarm changes and notices on ``ctx.bus``;
- a small thread times out commands whose echo never came; another ticks the rule engine once a
  second (durations, absences, schedules, alarm escalation), on the context's clock; a third runs
  the housekeeping (``maintain``, every ``CITYWEAVE_MAINTENANCE_INTERVAL_SECONDS``): telemetry past
  its retention, and the receipts of ingest clients gone longer than their MQTT session;
- HTTP ingest checks device tokens against the registry (``DatabaseTokenVerifier``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from cityweave.context import AppContext
from cityweave.devices.reading import CommandAck, Reading
from cityweave.devices.registry.commands import CommandTracker, Outcome, apply_outcomes
from cityweave.devices.registry.directory import DatabaseDirectory
from cityweave.devices.registry.live import StateChangeFeed
from cityweave.devices.registry.places import RegistryPlaces
from cityweave.devices.registry.sink import RegistryEventSink
from cityweave.devices.registry.verifier import DatabaseTokenVerifier, MqttLoginVerifier
from cityweave.ingest import receipts
from cityweave.ingest.http_ingest import HttpIngest
from cityweave.ingest.service import IngestService
from cityweave.rules import automations
from cityweave.rules.builtin import BuiltinRules
from cityweave.rules.engine import CommandPort, RuleEngine
from cityweave.telemetry.sink import TelemetrySink
from cityweave.telemetry.store import TelemetryStore, prune_expired
from cityweave.workorders import deadlines

log = logging.getLogger("cityweave.runtime")

EXPIRE_INTERVAL_S = 1.0
MAINTENANCE_FIRST_S = 60.0  # the first housekeeping pass after a start (then every interval)
TICK_INTERVAL_S = 1.0
WORK_ORDER_CHECK_S = 10.0  # work-order deadlines are minutes apart: a look every 10 s is plenty


class TelemetryAndCommands:
    """The ingest ``ReadingSink``: telemetry first, then the readings confirm commands in flight.

    Both happen inside the pipeline's batch transaction (this sink never commits), so a confirmed
    command and the reading that confirmed it are stored together. The tracker forgets a command
    once it is confirmed, but the batch may still roll back (and be retried): so the confirmations
    are also kept until the runtime writes them again in a transaction of its own (``recent``);
    writing an outcome twice changes nothing, because only open commands are updated."""

    def __init__(self, telemetry: TelemetrySink, tracker: CommandTracker) -> None:
        self.telemetry = telemetry
        self.tracker = tracker
        self._lock = threading.Lock()
        self._recent: list[Outcome] = []

    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None:
        self.telemetry.write_batch(session, readings)
        if not len(self.tracker):
            return
        outcomes = [outcome for reading in readings for outcome in self.tracker.observe(reading)]
        if outcomes:
            with self._lock:
                self._recent.extend(outcomes)
            if session is not None:
                apply_outcomes(session, outcomes)

    def observe_acks(self, session: Any, acks: Sequence[CommandAck]) -> None:
        """Devices' replies to commands: a refusal rejects, an acknowledgement confirms a command
        that expects no state echo. Kept in ``recent`` like the readings' confirmations."""
        if not acks or not len(self.tracker):
            return
        outcomes = [outcome for ack in acks for outcome in self.tracker.observe_ack(ack)]
        if outcomes:
            with self._lock:
                self._recent.extend(outcomes)
            if session is not None:
                apply_outcomes(session, outcomes)

    def take_recent(self) -> list[Outcome]:
        with self._lock:
            taken, self._recent = self._recent, []
        return taken

    def give_back(self, outcomes: list[Outcome]) -> None:
        with self._lock:
            self._recent[:0] = outcomes


class RegistryAndAcks:
    """The ingest ``DeviceEventSink``: the registry's events, then the devices' command replies."""

    def __init__(self, registry: RegistryEventSink, commands: TelemetryAndCommands) -> None:
        self.registry = registry
        self.commands = commands

    def write_events(self, session: Any, events: Any) -> None:
        self.registry.write_events(session, events)
        acks = getattr(events, "acks", None)
        if acks:
            self.commands.observe_acks(session, [ack for ack, _ in acks])


class InOrder:
    """Several ingest sinks (readings or device events) called in order in one transaction.

    None of them commits. The rule engine, last, runs in a savepoint of its own, so a failing rule
    never costs the batch its readings (``RuleEngine.observe``)."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None:
        for sink in self.sinks:
            if hasattr(sink, "write_batch"):
                sink.write_batch(session, readings)

    def write_events(self, session: Any, events: Any) -> None:
        for sink in self.sinks:
            if hasattr(sink, "write_events"):
                sink.write_events(session, events)


def build_rule_engine(ctx: AppContext, commands: CommandPort | None = None) -> RuleEngine:
    """The engine with the built-in rules, configured from the settings."""
    from cityweave.workorders.from_alarms import SiteVisitOpener

    builtins = BuiltinRules()
    return RuleEngine(
        ctx.db, ctx.clock, rules=builtins.defaults(), bus=ctx.bus, commands=commands,
        grace_s=ctx.settings.rules_grace_minutes * 60, timezone=ctx.settings.rules_timezone,
        builtin_settings=builtins, work_orders=SiteVisitOpener(ctx),
    )


class DeviceRuntime:
    def __init__(self, ctx: AppContext, *, node: str | None = None,
                 expire_interval: float = EXPIRE_INTERVAL_S, tick_interval: float = TICK_INTERVAL_S) -> None:
        self.ctx = ctx
        self.directory = DatabaseDirectory(ctx.db)
        self.tracker = CommandTracker(ctx.clock)
        self.telemetry = TelemetrySink(TelemetryStore(ctx.clock), places=RegistryPlaces())
        self.readings = TelemetryAndCommands(self.telemetry, self.tracker)
        self.live_states = StateChangeFeed(RegistryPlaces(), ctx.bus.publish)
        self.rule_commands = CommandPort(tracker=self.tracker, failed=self.readings.give_back)
        self.rules = build_rule_engine(ctx, self.rule_commands)
        self.ingest = IngestService(
            ctx.settings, directory=self.directory,
            readings=InOrder(self.readings, self.live_states, self.rules),
            events=InOrder(RegistryAndAcks(RegistryEventSink(), self.readings), self.rules),
            db=ctx.db, clock=ctx.clock, node=node, device_login=MqttLoginVerifier(ctx.db, ctx.clock).check,
        )
        # the rules' commands leave through the ingest's MQTT client, encoded by its own adapters
        self.rule_commands.publisher = self.ingest
        self.rule_commands.adapters_by_name = {adapter.name: adapter for adapter in self.ingest.adapters}
        self._tick_interval = tick_interval
        self._ticker: threading.Thread | None = None
        self.http = HttpIngest(self.ingest.pipeline, DatabaseTokenVerifier(ctx.db, ctx.clock))
        self._expire_interval = expire_interval
        self._stop = threading.Event()
        self._expirer: threading.Thread | None = None
        self._maintainer: threading.Thread | None = None
        self.started = False
        self._automations_off: Any = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> DeviceRuntime:
        with self.ctx.db.session() as session:
            resumed = self.tracker.load(session)
            states = self.rules.load(session)
        # residents' automations, reloaded per household when they change
        self._automations_off = automations.attach(self.rules, self.ctx)
        if resumed:
            log.info("tracking %d commands still in flight", resumed)
        if states:
            log.info("resuming %d rule states", states)
        self.ingest.start()
        self._stop.clear()
        self._expirer = threading.Thread(target=self._expire_loop, name="cityweave-command-expiry", daemon=True)
        self._expirer.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="cityweave-rules-timer", daemon=True)
        self._ticker.start()
        self._maintainer = threading.Thread(target=self._maintenance_loop, name="cityweave-maintenance", daemon=True)
        self._maintainer.start()
        self.started = True
        return self

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self._stop.set()
        if self._automations_off is not None:
            self._automations_off()
            self._automations_off = None
        if self._expirer is not None:
            self._expirer.join(5.0)
        if self._ticker is not None:
            self._ticker.join(5.0)
        if self._maintainer is not None:
            self._maintainer.join(5.0)
        self.ingest.stop()
        self.rules.stop()  # absence timers' last activity, for the next start

    def wait_connected(self, timeout: float) -> bool:
        return self.ingest.wait_connected(timeout)

    @property
    def broker_url(self) -> str | None:
        """Where devices (and the demo's simulator) publish: the embedded broker or the external one."""
        if self.ingest.broker is not None:
            return self.ingest.broker.url
        return self.ctx.settings.mqtt_url

    def simulator_url(self) -> str | None:
        """:attr:`broker_url` with credentials of its own for the demo's simulator when the embedded
        broker asks for logins (``CITYWEAVE_MQTT_DEVICE_AUTH``): it publishes for many devices."""
        if self.ingest.broker is not None:
            return self.ingest.broker.url_for("cityweave-simulator")
        return self.broker_url

    def expire_commands(self) -> int:
        """Time out commands past their deadline, and write the latest confirmations once more
        (in case their batch rolled back); how many log entries changed."""
        recent = self.readings.take_recent()
        outcomes = recent + self.tracker.expire()
        if not outcomes:
            return 0
        try:
            with self.ctx.db.session() as session:
                self.ctx.db.write_first(session)
                return apply_outcomes(session, outcomes)
        except Exception:
            self.readings.give_back(outcomes)  # timeouts included: the tracker already forgot them
            raise

    def _expire_loop(self) -> None:
        while not self._stop.wait(self._expire_interval):
            try:
                self.expire_commands()
            except Exception:
                log.exception("could not time out commands")

    def maintain(self) -> dict[str, int]:
        """One housekeeping pass; the maintenance thread runs it every
        ``maintenance_interval_seconds`` (first a minute after the start). Telemetry past its
        retention (``prune_expired``: chunked, committing between chunks) and the delivery receipts
        of ingest client ids that stored nothing for longer than their MQTT session lasts
        (``receipts.prune``). What was deleted, by kind."""
        now = self.ctx.clock.now()
        with self.ctx.db.session() as session:
            self.ctx.db.write_first(session)
            stale_receipts = receipts.prune(session, now)
        with self.ctx.db.session() as session:
            self.ctx.db.write_first(session)
            pruned = prune_expired(session, now, self.ctx.settings)
        done = {"receipts": stale_receipts, "raw": pruned.raw, "minute": pruned.minute, "hour": pruned.hour}
        if any(done.values()):
            log.info("housekeeping: %s", ", ".join(f"{count} {kind}" for kind, count in done.items()))
        return done

    def _maintenance_loop(self) -> None:
        interval = float(self.ctx.settings.maintenance_interval_seconds)
        wait = min(interval, MAINTENANCE_FIRST_S)
        while not self._stop.wait(wait):
            wait = interval
            for attempt in range(3):  # on SQLite a chunk may meet "database is locked": once more
                try:
                    self.maintain()
                    break
                except Exception:
                    if attempt == 2 or self._stop.is_set():
                        log.exception("housekeeping failed; next try in %g s", interval)
                        break
                    self._stop.wait(5.0)

    def _tick_loop(self) -> None:
        last_work_orders = 0.0
        while not self._stop.wait(self._tick_interval):
            try:
                self.rules.tick()
            except Exception:
                log.exception("the rule timer failed")
            if time.monotonic() - last_work_orders >= WORK_ORDER_CHECK_S:
                last_work_orders = time.monotonic()
                try:
                    self.check_work_orders()
                except Exception:
                    log.exception("the work-order timer failed")

    def check_work_orders(self) -> int:
        """Escalate, auto-confirm and auto-close the work orders that are due (workorders.deadlines)."""
        with self.ctx.db.session() as session:
            self.ctx.db.write_first(session)
            return deadlines.check(session, self.ctx.bus, self.ctx.clock.now())

    # -- the web side --------------------------------------------------------------------------------
    def install(self, app: Any) -> None:
        """Put the transport's protocols where the routers look for them (``app.state``)."""
        state = app.state
        state.device_runtime = self
        state.device_publisher = self.ingest
        state.command_tracker = self.tracker
        state.device_directory = self.directory
        state.device_adapters = {adapter.name: adapter for adapter in self.ingest.adapters}
        state.ingest_http = self.http
        state.ingest_metrics = self.ingest.metrics
        state.rule_engine = self.rules

    def status(self) -> dict[str, Any]:
        return {**self.ingest.status(), "commands_in_flight": len(self.tracker), "rules": self.rules.status()}
