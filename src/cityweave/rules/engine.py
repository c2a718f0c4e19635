"""The rule engine: Readings (and availability changes) in, alarms, commands and notices out.

Rules are :class:`~cityweave.rules.model.RuleSpec` objects wrapped in an :class:`EngineRule`
(which adds what a built-in needs beyond a resident's automation: which households it applies to,
which alarm cause it shares with sibling rules, whether it clears its alarm). They are **indexed
by the capabilities they watch**: a reading whose capability no rule watches costs one dict
lookup, and the batch's device and household lookups happen only for readings some rule cares
about.

Where it runs:

* :meth:`RuleEngine.observe` inside the ingest batch's transaction (chained after the telemetry
  sink in ``runtime.py``). It never commits. Alarm raises and clears go through
  ``alarms.service`` in the same session (one open alarm per cause, counted); device commands are
  logged in the same session and **published only after the commit**
  (``db.engine.on_commit``); alarm changes and notices go to ``ctx.bus`` after the commit.
* :meth:`RuleEngine.tick` once a second from the runtime's timer thread, in a transaction of its
  own: durations and absences that came due, schedules, and ``alarms.escalate_due``.

State: what is in progress per (rule, subject) lives in memory and in ``rule_state``, written on
transitions only (a threshold becoming active or inactive, a duration entered or left, a counter
window, an absence episode fired). In-memory changes of a transaction are staged and applied
only when it commits, so a rolled-back and retried batch is evaluated again from the same state.
Absence timers keep the last activity in memory and flush it at most every ``flush_interval``
seconds and on :meth:`stop`; after a restart absence rules wait ``grace`` before firing.

Trigger semantics (``docs/rules-alarms.md``):

* threshold / state / battery_low: edge-triggered per subject (device, or device@endpoint). On the
  rising edge every action runs; while the condition keeps holding, each further matching
  reading re-raises the rule's alarm (its occurrence count) and nothing else; on the falling edge
  a rule with ``clears`` clears its alarm. Event capabilities (``emergency_call``, ``doorbell``)
  fire on every reading.
* duration / availability: the condition must hold for ``seconds`` (``offline_hours``); the timer
  fires it if no contrary reading arrived meanwhile.
* repeat: ``count`` matching readings within ``within_seconds``.
* absence: no activity on the watched capabilities for ``hours`` (optionally daytime hours only)
  per household.
* schedule: at a local time on given weekdays, per household.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from cityweave.clock import Clock
from cityweave.db.engine import _AFTER_COMMIT, Database, on_commit
from cityweave.devices import capabilities as caps
from cityweave.devices.capabilities import Kind
from cityweave.devices.reading import AvailabilityChange, Quality, Reading
from cityweave.devices.registry.models import BOUND_STATUSES, Device
from cityweave.people.models import CareTag, CareTagKind, HouseholdMember
from cityweave.rules import model as m
from cityweave.rules.state import HouseholdRuleSettings, RuleState
from cityweave.telemetry.models import device_state

log = logging.getLogger("cityweave.rules")

HOUSEHOLD = "household"
SELF = "self"  # a command target meaning "the device whose reading fired the rule"
DEFAULT_GRACE_S = 30 * 60
DEFAULT_FLUSH_S = 60.0
HOUSEHOLD_TTL_S = 30.0
DAYTIME = (time(7, 0), time(22, 0))  # AbsenceTrigger.daytime_only, as model.py documents it
_TURN = "cityweave_rules_turn"
ONLINE = "online"  # pseudo capability: availability changes enter the engine as readings of it


# ---------------------------------------------------------------------------------------------------
# What the engine evaluates
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineRule:
    """A RuleSpec plus what the engine needs to run it for a household.

    ``group`` names the cause: alarms are keyed ``<group>:<source>`` (device id, or household id
    for household-wide triggers), so sibling rules (gas as a flag, as ppm, as %LEL) share one
    open alarm per detector. ``clears``: the falling edge clears the group's alarm (unless a
    sibling is still active for the same subject). ``device_filter`` narrows which devices
    a rule watches and which ones a selector commands (gas valves, not water valves).
    """

    spec: m.RuleSpec
    group: str
    clears: bool = False
    applies: Callable[[HouseholdInfo], bool] | None = None
    watch_filter: Callable[[DeviceInfo], bool] | None = None
    target_filter: Callable[[DeviceInfo, m.CommandAction], bool] | None = None
    title: dict[str, str] | None = None
    builtin: bool = False
    setting: str | None = None  # the household_rule_settings key (built-ins); default: group

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def watches(self) -> frozenset[str]:
        trigger = self.spec.trigger
        if isinstance(trigger, m.AvailabilityTrigger):
            return frozenset({ONLINE})
        return self.spec.watched_capabilities()


@dataclass(frozen=True)
class DeviceInfo:
    id: str
    place_id: str | None
    place_path: str | None
    place_kind: str | None
    adapter: str = ""
    device_type: str | None = None
    name: str | None = None
    model: str | None = None
    capabilities: tuple[tuple[str, str | None, bool], ...] = ()  # (capability, endpoint, writable)

    @property
    def household(self) -> str | None:
        return self.place_id if self.place_kind == HOUSEHOLD else None

    def has(self, capability: str, *, writable: bool = False) -> bool:
        return any(c == capability and (w or not writable) for c, _e, w in self.capabilities)

    def hint(self) -> str:
        return " ".join(x for x in (self.name, self.model, self.device_type) if x).lower()


def _device_info(row: Any) -> DeviceInfo:
    refs = tuple((str(r.get("capability")), r.get("endpoint"), bool(r.get("writable")))
                 for r in (row.capabilities or []) if isinstance(r, Mapping))
    return DeviceInfo(row.id, row.place_id, row.place_path, row.place_kind, row.adapter, row.device_type,
                      row.name, row.model, refs)


@dataclass(frozen=True)
class HouseholdInfo:
    id: str
    path: str | None = None
    elderly_alone: bool = False
    mode: str = "home"
    settings: Mapping[str, tuple[bool, Mapping[str, Any]]] = field(default_factory=dict)
    loaded_at: float = 0.0


@dataclass(frozen=True)
class RuleNotice:
    """A rule asks for people to be told something (``notify``) or a webhook to be called.

    Published on ``ctx.bus`` after the commit; the notifications package turns it into messages
    per recipient (and calls webhooks)."""

    rule_key: str
    household_id: str
    place_path: str | None
    audience: str | None
    message_key: str
    params: Mapping[str, Any]
    at: datetime
    device_id: str | None = None
    webhook_url: str | None = None


@dataclass(frozen=True)
class Firing:
    """What the engine did for one rule and subject (tests and the dry run look at these)."""

    rule_key: str
    subject: str
    household_id: str
    change: str  # "fired" | "repeated" | "cleared"
    at: datetime
    device_id: str | None = None


# ---------------------------------------------------------------------------------------------------
# Ports: where the engine's effects go (the runtime plugs the real ones in)
# ---------------------------------------------------------------------------------------------------
class CommandPort:
    """Logs a device command in the caller's transaction and publishes it after the commit.

    ``publisher`` is the ingest's MQTT client (registry ``Publisher`` protocol), ``tracker`` the
    runtime's CommandTracker (confirmation by echo), ``failed`` receives Outcomes of publishes that
    failed after the commit (the runtime writes them with the command timeouts)."""

    def __init__(self, publisher: Any = None, tracker: Any = None,
                 adapters_by_name: Mapping[str, Any] | None = None,
                 failed: Callable[[list[Any]], None] | None = None) -> None:
        self.publisher = publisher
        self.tracker = tracker
        self.adapters_by_name = dict(adapters_by_name or {})
        self.failed = failed

    def send(self, session: Session, device: Device, capability: str, value: Any, endpoint: str | None,
             *, rule_key: str, now: datetime) -> str | None:
        from cityweave.audit import trail
        from cityweave.authz.policy import Principal
        from cityweave.db.base import new_id
        from cityweave.devices import adapters
        from cityweave.devices.binding import InMemoryDirectory
        from cityweave.devices.command import Command
        from cityweave.devices.registry import service
        from cityweave.devices.registry.commands import ACK_WINDOW_S, Outcome, _echo_document
        from cityweave.devices.registry.models import CommandStatus, DeviceCommand

        command = Command.create(device.id, capability, value, endpoint, command_id=new_id("cmd"))
        binding = service.binding_of(device)
        adapter = self.adapters_by_name.get(device.adapter) or adapters.create(
            device.adapter, directory=InMemoryDirectory([binding]))
        encoded = adapter.encode(command, binding)
        echo = encoded.expected_echo
        publisher = self.publisher
        row = DeviceCommand(
            id=command.id, device_id=device.id, capability=command.capability, endpoint=command.endpoint,
            value=command.value, requested_by=None, requested_by_name=f"rule:{rule_key}"[:100],
            requested_at=now, status=CommandStatus.SENT if publisher is not None else CommandStatus.FAILED,
            topic=encoded.topic[:300], expected=_echo_document(echo) if echo else None,
            deadline_at=now + timedelta(seconds=echo.timeout_s if echo else ACK_WINDOW_S),
        )
        if publisher is None:
            row.detail, row.completed_at, row.deadline_at = "no device transport running", now, None
        session.add(row)
        trail.append(session, actor=Principal.system("rules"), action="device.command", object_kind="device",
                     object_id=device.id, place_path=device.place_path, at=now,
                     details={"command": row.id, "capability": row.capability, "endpoint": row.endpoint,
                              "value": row.value, "rule": rule_key})
        if publisher is None:
            return row.id

        tracker, device_key = self.tracker, device.id

        def publish() -> None:
            if tracker is not None:  # tracked first: the echo may arrive before publish() returns
                tracker.track(row.id, device_key, echo, now)
            try:
                publisher.publish(encoded.topic, encoded.payload, encoded.qos, encoded.retain)
            except Exception as exc:  # noqa: BLE001 - the transport's error is the command's outcome
                log.warning("rule %s: command %s could not be published: %s", rule_key, row.id, exc)
                if tracker is not None and hasattr(tracker, "forget"):
                    tracker.forget(row.id)
                if self.failed is not None:
                    self.failed([Outcome(row.id, CommandStatus.FAILED, now,
                                         f"publish failed: {type(exc).__name__}: {exc}"[:500])])

        on_commit(session, publish)
        return row.id


# ---------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------
def _value_of(reading_value: Any, member: str | None) -> Any:
    if member is not None:
        return reading_value.get(member) if isinstance(reading_value, Mapping) else None
    return reading_value


def _is_event(capability: str) -> bool:
    cap = caps.CAPABILITIES.get(capability)
    return cap is not None and cap.kind is Kind.EVENT


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def daytime_due(last: datetime, seconds: float, tz: ZoneInfo, window: tuple[time, time] = DAYTIME) -> datetime:
    """When ``seconds`` of daytime (``window``, local) will have passed since ``last``."""
    remaining = seconds
    local = last.astimezone(tz)
    day = local.date()
    for _ in range(400):
        start = datetime.combine(day, window[0], tz)
        end = datetime.combine(day, window[1], tz)
        begin = max(start, local)
        if begin < end:
            span = (end - begin).total_seconds()
            if span >= remaining:
                return (begin + timedelta(seconds=remaining)).astimezone(UTC)
            remaining -= span
        day += timedelta(days=1)
    return (last + timedelta(days=400)).astimezone(UTC)


def next_schedule(after: datetime, trigger: m.ScheduleTrigger) -> datetime:
    tz = ZoneInfo(trigger.timezone)
    at = m.parse_hhmm(trigger.at)
    local = after.astimezone(tz)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        candidate = datetime.combine(day, at, tz)
        if candidate > local and m.WEEKDAYS[candidate.weekday()] in trigger.days:
            return candidate.astimezone(UTC)
    return (after + timedelta(days=7)).astimezone(UTC)


class _Staged:
    """The in-memory changes of one transaction: applied on commit, dropped on rollback."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.last_fired: dict[tuple[str, str], datetime] = {}


# ---------------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------------
class RuleEngine:
    def __init__(
        self,
        db: Database | None,
        clock: Clock,
        *,
        rules: Iterable[EngineRule] | None = None,
        bus: Any = None,
        commands: CommandPort | None = None,
        alarms: Any = None,
        grace_s: float = DEFAULT_GRACE_S,
        flush_interval_s: float = DEFAULT_FLUSH_S,
        timezone: str = "Asia/Shanghai",
        household_ttl_s: float = HOUSEHOLD_TTL_S,
        builtin_settings: Any = None,
        work_orders: Any = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.bus = bus
        self.commands = commands or CommandPort()
        self.work_orders = work_orders  # alarms.workorders.WorkOrderOpener; None: the alarms default
        self._alarms = alarms
        self.grace_s = grace_s
        self.flush_interval_s = flush_interval_s
        self.tz = ZoneInfo(timezone)
        self.household_ttl_s = household_ttl_s
        self._lock = threading.RLock()
        self._rules: dict[str, EngineRule] = {}
        self._index: dict[str, list[EngineRule]] = {}
        # per-household rules (residents' automations), also indexed by capability
        self._household_rules: dict[str, dict[str, list[EngineRule]]] = {}
        self._household_watched: frozenset[str] = frozenset()
        self._state: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_fired: dict[tuple[str, str], datetime] = {}
        self._last_value: dict[tuple[str, str, str | None], Any] = {}
        self._households: dict[str, HouseholdInfo] = {}
        # absence: (rule, household) -> last activity; flushed to rule_state now and then
        self._activity: dict[tuple[str, str], datetime] = {}
        self._activity_dirty: set[tuple[str, str]] = set()
        self._last_flush: datetime | None = None
        self._absence_households: dict[str, set[str]] = {}  # rule key -> households it applies to
        self._absence_refreshed: datetime | None = None
        self.started_at: datetime | None = None
        self._staged: dict[int, _Staged] = {}
        self.firings: list[Firing] = []  # the most recent firings (bounded), for tests and status
        self.errors = 0  # batches whose rule evaluation failed (logged; their readings are stored)
        # repeats folded per batch: (cause, kind) -> [rule, action, home, device, now, context, n]
        self._pending: dict[tuple[str, str], list[Any]] = {}
        self._turn_key = hash(("cityweave-rules", os.getpid(), id(self))) & 0x7FFF_FFFF_FFFF_FFFF
        self.listeners: list[Callable[[Firing], None]] = []
        self._builtin_settings = builtin_settings  # name -> BuiltinRule (builtin.py), for params
        for rule in rules or ():
            self.add(rule)

    # -- rules ------------------------------------------------------------------------------------
    def add(self, rule: EngineRule) -> None:
        with self._lock:
            self._rules[rule.key] = rule
            for capability in rule.watches:
                bucket = self._index.setdefault(capability, [])
                bucket[:] = [r for r in bucket if r.key != rule.key] + [rule]

    def set_household_rules(self, household_id: str, rules: Iterable[EngineRule]) -> None:
        """Replace a household's own rules (automations)."""
        index: dict[str, list[EngineRule]] = {}
        for rule in rules:
            for capability in rule.watches or {"*schedule"}:
                index.setdefault(capability, []).append(rule)
        with self._lock:
            if index:
                self._household_rules[household_id] = index
            else:
                self._household_rules.pop(household_id, None)
            self._household_watched = frozenset(c for i in self._household_rules.values() for c in i)

    @property
    def rules(self) -> list[EngineRule]:
        return list(self._rules.values())

    def watched(self) -> frozenset[str]:
        with self._lock:
            household = {c for index in self._household_rules.values() for c in index}
            return frozenset(self._index) | household

    def invalidate(self, household_id: str | None = None) -> None:
        """Forget cached household facts (mode, settings, care tags) after a change here."""
        with self._lock:
            if household_id is None:
                self._households.clear()
            else:
                self._households.pop(household_id, None)
            self._absence_refreshed = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def load(self, session: Session | None = None) -> int:
        """Read ``rule_state`` (after a restart): rows of rules that no longer exist are left alone."""
        if self.db is None and session is None:
            return 0
        now = self.clock.now()

        def read(s: Session) -> int:
            count = 0
            for row in s.execute(select(RuleState)).scalars():
                state = dict(row.state or {})
                if "due" not in state and row.due_at is not None:
                    state["due"] = _iso(row.due_at)
                if state.get("kind") == "absence":
                    last = _parse(state.get("last"))
                    if last is not None:
                        self._activity[(row.rule_key, row.subject)] = last
                self._state[(row.rule_key, row.subject)] = state
                count += 1
            return count

        with self._lock:
            self.started_at = now
            if session is not None:
                return read(session)
            assert self.db is not None
            with self.db.session() as own:
                return read(own)

    def stop(self) -> None:
        """Flush absence timers (last activity) so that a restart resumes from them."""
        try:
            self.flush(force=True)
        except Exception:
            log.exception("could not flush rule state on stop")

    # -- the ingest side ----------------------------------------------------------------------------
    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None:
        """The ingest ``ReadingSink`` shape: :meth:`observe` with the readings."""
        self.observe(session, readings, ())

    def write_events(self, session: Any, events: Any) -> None:
        """The ingest ``DeviceEventSink`` shape: availability changes become ``online`` readings."""
        changes = getattr(events, "availability", None)
        if changes:
            self.observe(session, (), changes)

    def observe(self, session: Session | None, readings: Sequence[Reading],
                availability: Iterable[tuple[AvailabilityChange, datetime]] = (),
                now: datetime | None = None) -> list[Firing]:
        if session is None:
            return []
        watched, extra = self._index, self._household_watched
        relevant = [r for r in readings if r.capability in watched or r.capability in extra]
        if ONLINE in watched or ONLINE in extra:
            for change, at in availability:
                if change.device_key is not None:
                    relevant.append(Reading(change.device_key, ONLINE, change.online, _aware(at)))
        if not relevant:
            return []
        now = now or self.clock.now()
        self._take_turn(session)
        with self._lock:
            stage = self._stage(session)
            saved = (dict(stage.state), dict(stage.last_fired))
            callbacks: list[Any] = session.info.setdefault(_AFTER_COMMIT, [])
            registered = len(callbacks)
            try:
                # A savepoint: a rule that fails (a bug, a refused statement) must not cost the
                # batch its readings. Transient database errors still fail the batch, which the
                # pipeline retries whole.
                with session.begin_nested():
                    fired = self._observe(session, stage, relevant, now)
            except (OperationalError, InterfaceError):
                raise
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise
                self._failed(stage, saved, callbacks, registered)
                return []
            except Exception:  # noqa: BLE001 - logged and counted in _failed; the readings must stay
                self._failed(stage, saved, callbacks, registered)
                return []
            self._remember(fired)
            return fired

    def _failed(self, stage: _Staged, saved: tuple[dict[Any, Any], dict[Any, Any]], callbacks: list[Any],
                registered: int) -> None:
        log.exception("the rules failed on a batch; its readings are stored, its rule effects are lost")
        self.errors += 1
        stage.state, stage.last_fired = saved
        # effects registered inside the failed savepoint must not happen at the commit
        del callbacks[registered:]

    def _observe(self, session: Session, stage: _Staged, relevant: list[Reading], now: datetime) -> list[Firing]:
        self._pending = {}
        devices = self._devices(session, {r.device_key for r in relevant})
        households = self._household_infos(session, {d.household for d in devices.values() if d.household})
        fired: list[Firing] = []
        for reading in relevant:
            if reading.quality is Quality.TEST:
                continue  # a self-test must never dispatch anybody
            device = devices.get(reading.device_key)
            if device is None or device.household is None:
                continue
            home = households.get(device.household)
            if home is None:
                continue
            for rule in self._rules_for(home, reading.capability):
                if rule.watch_filter is not None and not rule.watch_filter(device):
                    continue
                fired.extend(self._evaluate(session, stage, rule, home, device, reading, now))
            self._last_value[(reading.device_key, reading.capability, reading.endpoint)] = reading.value
        self._flush_repeats(session)
        return fired

    def _take_turn(self, session: Session) -> None:
        """Take this engine's database-side turn before its in-memory lock, once per transaction.

        The ingest batch holds database locks when it reaches the engine; the timer must not
        hold the engine's lock while it waits for the database, or each waits for the other.
        SQLite: the timer's transaction begins IMMEDIATE (one writer at a time) before it takes
        the engine lock. PostgreSQL: both take a transaction-scoped advisory lock, per engine."""
        transaction = session.get_transaction()
        if transaction is not None and session.info.get(_TURN) is transaction:
            return
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._turn_key})
        else:
            session.execute(text("SELECT 1"))  # begins the transaction (IMMEDIATE when asked)
        session.info[_TURN] = session.get_transaction()

    # -- evaluation ---------------------------------------------------------------------------------
    def _rules_for(self, home: HouseholdInfo, capability: str) -> list[EngineRule]:
        found: list[EngineRule] = []
        for rule in self._index.get(capability, ()):
            if self._active_for(rule, home):
                found.append(self._with_params(rule, home))
        own = self._household_rules.get(home.id)
        if own:
            found.extend(r for r in own.get(capability, ()) if r.spec.enabled)
        return found

    def _active_for(self, rule: EngineRule, home: HouseholdInfo) -> bool:
        if not rule.spec.enabled:
            return False
        if rule.applies is not None and not rule.applies(home):
            return False
        setting = home.settings.get(rule.setting or rule.group)
        return not (setting is not None and not setting[0] and not _undisableable(rule))

    def _with_params(self, rule: EngineRule, home: HouseholdInfo) -> EngineRule:
        """The built-in rule with this household's parameters (cached by builtin.py)."""
        setting = home.settings.get(rule.setting or rule.group)
        if not rule.builtin or setting is None or not setting[1] or self._builtin_settings is None:
            return rule
        return self._builtin_settings.variant(rule, setting[1])

    def _subject(self, rule: EngineRule, device: DeviceInfo, reading: Reading) -> str:
        return device.id if reading.endpoint is None else f"{device.id}@{reading.endpoint}"

    def _get(self, stage: _Staged, key: tuple[str, str]) -> dict[str, Any] | None:
        if key in stage.state:
            return stage.state[key]
        return self._state.get(key)

    def _put(self, session: Session, stage: _Staged, key: tuple[str, str], state: dict[str, Any] | None,
             now: datetime) -> None:
        """A transition: staged in memory, written to ``rule_state`` in the same transaction."""
        stage.state[key] = state
        rule_key, subject = key
        if state is None:
            session.execute(delete(RuleState).where(RuleState.rule_key == rule_key, RuleState.subject == subject))
            return
        due = _parse(state.get("due"))
        row = session.get(RuleState, (rule_key, subject))
        if row is None:
            session.add(RuleState(rule_key=rule_key, subject=subject, state=dict(state), due_at=due, updated_at=now))
        else:
            row.state, row.due_at, row.updated_at = dict(state), due, now

    def _evaluate(self, session: Session, stage: _Staged, rule: EngineRule, home: HouseholdInfo,
                  device: DeviceInfo, reading: Reading, now: datetime) -> list[Firing]:
        trigger = rule.spec.trigger
        at = _aware(reading.timestamp)
        if isinstance(trigger, m.AbsenceTrigger):
            self._activity_seen(stage, rule, home, device, reading, at)
            return []
        if isinstance(trigger, m.ScheduleTrigger):
            return []
        if getattr(trigger, "device_id", None) not in (None, device.id):
            return []
        if getattr(trigger, "endpoint", None) not in (None, reading.endpoint):
            return []
        subject = self._subject(rule, device, reading)
        key = (rule.key, subject)
        holds = self._holds(rule, trigger, device, reading)
        if holds is None:
            return []  # the reading says nothing about this rule (another member, a null)
        state = self._get(stage, key)
        if isinstance(trigger, m.RepeatTrigger):
            return self._repeat(session, stage, rule, home, device, key, trigger, holds, at, now)
        if isinstance(trigger, m.DurationTrigger | m.AvailabilityTrigger):
            seconds = (trigger.seconds if isinstance(trigger, m.DurationTrigger)
                       else trigger.offline_hours * 3600)
            if holds:
                if state is None:
                    due = at + timedelta(seconds=seconds)
                    state = {"kind": "duration", "since": _iso(at), "due": _iso(due), "device": device.id,
                             "household": home.id}
                    self._put(session, stage, key, state, now)
                if state.get("active"):
                    return self._repeat_alarm(session, rule, home, device, subject, now, reading)
                due = _parse(state.get("due"))
                if due is not None and max(at, now) >= due and self._conditions(session, rule, home, now):
                    # (conditions false: it stays pending and fires once they hold, e.g. at night)
                    fired = self._fire(session, stage, rule, home, device, subject, now, reading,
                                       check_conditions=False)
                    if fired:
                        self._put(session, stage, key, {**state, "active": True, "due": None}, now)
                    return fired
                return []
            if state is not None:
                self._put(session, stage, key, None, now)
                if state.get("active"):
                    return self._leave(session, stage, rule, home, device, subject, now)
            return []
        # threshold, state change, battery low: edges
        if _is_event(reading.capability):
            return self._fire(session, stage, rule, home, device, subject, now, reading) if holds else []
        if holds:
            if state is None:
                if isinstance(trigger, m.StateTrigger) and trigger.from_ is not None:
                    previous = self._last_value.get((reading.device_key, reading.capability, reading.endpoint))
                    if previous != trigger.from_:
                        return []
                fired: list[Firing] = []
                if self._conditions(session, rule, home, now):
                    fired = self._fire(session, stage, rule, home, device, subject, now, reading,
                                       check_conditions=False)
                if fired or isinstance(trigger, m.StateTrigger):
                    # A state change happened even if the conditions stopped it from firing: the door
                    # opened at home must not count as opening once the home is armed. A threshold
                    # that did not fire is not recorded: it fires when the conditions come true.
                    self._put(session, stage, key, {"kind": "edge", "active": True, "fired": bool(fired),
                                                    "since": _iso(at), "device": device.id,
                                                    "household": home.id}, now)
                return fired
            if not state.get("fired", True):
                return []
            return self._repeat_alarm(session, rule, home, device, subject, now, reading)
        if state is not None:
            self._put(session, stage, key, None, now)
            if state.get("fired", True):
                return self._leave(session, stage, rule, home, device, subject, now)
        return []

    def _holds(self, rule: EngineRule, trigger: Any, device: DeviceInfo, reading: Reading) -> bool | None:
        value = reading.value
        if isinstance(trigger, m.AvailabilityTrigger):
            if trigger.device_types and device.device_type not in trigger.device_types and not any(
                    device.has(c) for c in trigger.capabilities):
                return None
            if not trigger.device_types and not any(device.has(c) for c in trigger.capabilities):
                return None
            return value is False
        if isinstance(trigger, m.BatteryLowTrigger):
            if trigger.device_types and device.device_type not in trigger.device_types:
                return None
            if reading.capability == "battery_low":
                return bool(value) if isinstance(value, bool) else None
            if reading.capability == "battery_level":
                return value == "low" if isinstance(value, str) else None
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return value < trigger.below_percent
        if isinstance(trigger, m.StateTrigger):
            if reading.capability != trigger.capability:
                return None
            return value == trigger.to
        if isinstance(trigger, m.RepeatTrigger):
            if reading.capability != trigger.capability:
                return None
            return trigger.value is None or value == trigger.value
        if isinstance(trigger, m.ThresholdTrigger | m.DurationTrigger):
            if reading.capability != trigger.capability:
                return None
            actual = _value_of(value, trigger.field)
            if actual is None:
                return None
            return m.compare(trigger.op, actual, trigger.value)
        return None

    def _repeat(self, session: Session, stage: _Staged, rule: EngineRule, home: HouseholdInfo,
                device: DeviceInfo, key: tuple[str, str], trigger: m.RepeatTrigger, holds: bool,
                at: datetime, now: datetime) -> list[Firing]:
        if not holds:
            return []
        state = self._get(stage, key) or {"kind": "repeat", "times": [], "device": device.id, "household": home.id}
        horizon = at - timedelta(seconds=trigger.within_seconds)
        times = [t for t in state.get("times", []) if (_parse(t) or at) > horizon] + [_iso(at)]
        if len(times) >= trigger.count:
            self._put(session, stage, key, None, now)
            return self._fire(session, stage, rule, home, device, key[1], now, None)
        self._put(session, stage, key, {**state, "times": times,
                                        "due": None}, now)
        return []

    # -- absence ------------------------------------------------------------------------------------
    def _activity_seen(self, stage: _Staged, rule: EngineRule, home: HouseholdInfo, device: DeviceInfo,
                       reading: Reading, at: datetime) -> None:
        value = reading.value
        previous = self._last_value.get((reading.device_key, reading.capability, reading.endpoint), value)
        if isinstance(value, bool):
            active = value is True or value != previous  # motion/occupancy true, a door that moved
        elif isinstance(value, int | float) and not isinstance(previous, bool) and isinstance(previous, int | float):
            if reading.capability == "power_w":
                active = abs(value - previous) >= 30.0  # an appliance switched, not the fridge's hum
            else:
                active = value != previous  # water or energy meter moved
        else:
            active = value != previous or _is_event(reading.capability)
        if not active:
            return
        key = (rule.key, home.id)
        last = self._activity.get(key)
        if last is None or at > last:
            self._activity[key] = at  # in memory only; flushed at most every flush_interval
            self._activity_dirty.add(key)
        state = self._state.get(key)
        if state is not None and state.get("fired"):
            stage.state[key] = {**state, "fired": False, "last": _iso(at)}
            self._activity_dirty.add(key)

    def _absence_due(self, trigger: m.AbsenceTrigger, last: datetime) -> datetime:
        seconds = trigger.hours * 3600
        if trigger.daytime_only:
            return daytime_due(last, seconds, self.tz)
        return last + timedelta(seconds=seconds)

    def flush(self, *, force: bool = False, session: Session | None = None) -> int:
        """Write the absence timers' last activity (at most every ``flush_interval_s``)."""
        now = self.clock.now()
        with self._lock:
            if not force and self._last_flush is not None and \
                    (now - self._last_flush).total_seconds() < self.flush_interval_s:
                return 0
            self._last_flush = now
            dirty, self._activity_dirty = self._activity_dirty, set()
            if not dirty or (self.db is None and session is None):
                return 0
            rows: list[tuple[tuple[str, str], dict[str, Any]]] = []
            for key in dirty:
                rule = self._rules.get(key[0]) or self._household_rule(key)
                last = self._activity.get(key)
                if rule is None or last is None or not isinstance(rule.spec.trigger, m.AbsenceTrigger):
                    continue
                state = {**(self._state.get(key) or {}), "kind": "absence", "last": _iso(last),
                         "due": _iso(self._absence_due(rule.spec.trigger, last))}
                self._state[key] = state
                rows.append((key, state))

        def write(s: Session) -> None:
            stage = _Staged()
            for key, state in rows:
                self._put(s, stage, key, state, now)

        try:
            if session is not None:
                write(session)
            else:
                assert self.db is not None
                with self.db.session() as own:
                    self.db.write_first(own)
                    write(own)
        except Exception:
            with self._lock:
                self._activity_dirty |= {key for key, _ in rows}
            raise
        return len(rows)

    def _household_rule(self, key: tuple[str, str]) -> EngineRule | None:
        for rule in (r for index in self._household_rules.get(key[1], {}).values() for r in index):
            if rule.key == key[0]:
                return rule
        return None

    def _absence_subjects(self, session: Session, now: datetime) -> dict[str, set[str]]:
        """Households each absence rule applies to (refreshed every five minutes)."""
        if self._absence_refreshed is not None and (now - self._absence_refreshed).total_seconds() < 300:
            return self._absence_households
        found: dict[str, set[str]] = {}
        absence = [r for r in self._rules.values() if isinstance(r.spec.trigger, m.AbsenceTrigger)]
        if absence:
            elderly = set(session.execute(
                select(HouseholdMember.household_id).join(CareTag, CareTag.person_id == HouseholdMember.person_id)
                .where(CareTag.tag == CareTagKind.ELDERLY_ALONE)).scalars())
            homes = self._household_infos(session, elderly)
            for rule in absence:
                found[rule.key] = {h.id for h in homes.values() if self._active_for(rule, h)}
        for household, index in self._household_rules.items():
            for rule in (r for rules in index.values() for r in rules):
                if isinstance(rule.spec.trigger, m.AbsenceTrigger) and rule.spec.enabled:
                    found.setdefault(rule.key, set()).add(household)
        self._absence_households = found
        self._absence_refreshed = now
        return found

    # -- the timer ----------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[Firing]:
        """Fire what came due: durations, absences, schedules; escalate alarms past their deadline."""
        if self.db is None:
            return []
        now = now or self.clock.now()
        with self.db.session() as session:
            self.db.write_first(session)
            self._take_turn(session)  # the database first, then the engine: the ingest's order
            with self._lock:
                if self.started_at is None:
                    self.started_at = now
                stage = self._stage(session)
                fired = self._tick(session, stage, now)
                self._escalate(session, now)
        with self._lock:
            self._remember(fired)
        try:
            self.flush()
        except Exception:
            log.exception("could not flush absence timers")
        return fired

    def _tick(self, session: Session, stage: _Staged, now: datetime) -> list[Firing]:
        fired: list[Firing] = []
        # durations (and availability) that came due with no contrary reading since
        for key, state in list(self._state.items()):
            if state.get("kind") != "duration" or state.get("active"):
                continue
            due = _parse(state.get("due"))
            if due is None or due > now:
                continue
            rule = self._rules.get(key[0]) or self._household_rule((key[0], str(state.get("household"))))
            if rule is None:
                continue
            homes = self._household_infos(session, {str(state.get("household"))})
            home = homes.get(str(state.get("household")))
            device = self._devices(session, {str(state.get("device"))}).get(str(state.get("device")))
            if home is None or device is None or not self._active_for(rule, home) and not \
                    (home.id in self._household_rules):
                continue
            rule = self._with_params(rule, home) if rule.builtin else rule
            if not self._conditions(session, rule, home, now):
                continue  # pending until the conditions hold (the night window opens)
            done = self._fire(session, stage, rule, home, device, key[1], now, None, check_conditions=False)
            if done:
                self._put(session, stage, key, {**state, "active": True, "due": None}, now)
            fired.extend(done)
        # absences
        grace_until = (self.started_at or now) + timedelta(seconds=self.grace_s)
        subjects = self._absence_subjects(session, now)
        for rule_key, households in subjects.items():
            for household in households:
                key = (rule_key, household)
                last = self._activity.get(key)
                if last is None:
                    # never heard of: the clock starts now (a restart counts as the last activity)
                    self._activity[key] = last = self.started_at or now
                    self._activity_dirty.add(key)
                state = self._get(stage, key) or {}
                if state.get("fired"):
                    continue
                rule = self._rules.get(rule_key) or self._household_rule(key)
                if rule is None:
                    continue
                homes = self._household_infos(session, {household})
                home = homes.get(household)
                if home is None:
                    continue
                rule = self._with_params(rule, home) if rule.builtin else rule
                trigger = rule.spec.trigger
                assert isinstance(trigger, m.AbsenceTrigger)
                if now < grace_until or now < self._absence_due(trigger, last):
                    continue
                if not self._conditions(session, rule, home, now):
                    continue
                self._put(session, stage, key, {"kind": "absence", "last": _iso(last), "fired": True,
                                                "due": None}, now)
                fired.extend(self._fire(session, stage, rule, home, None, household, now, None,
                                        check_conditions=False, details={"last_activity": _iso(last)}))
        # schedules (residents' automations)
        for household, index in list(self._household_rules.items()):
            for rule in index.get("*schedule", ()):
                trigger = rule.spec.trigger
                if not isinstance(trigger, m.ScheduleTrigger) or not rule.spec.enabled:
                    continue
                key = (rule.key, household)
                state = self._get(stage, key)
                due = _parse((state or {}).get("due"))
                if due is None:
                    self._put(session, stage, key, {"kind": "schedule", "due": _iso(next_schedule(now, trigger))},
                              now)
                    continue
                if due > now:
                    continue
                self._put(session, stage, key, {"kind": "schedule", "due": _iso(next_schedule(now, trigger))}, now)
                if (now - due).total_seconds() > 3600:
                    continue  # missed by more than an hour (the service was down): skip, do not surprise
                home = self._household_infos(session, {household}).get(household)
                if home is not None:
                    fired.extend(self._fire(session, stage, rule, home, None, household, now, None))
        return fired

    def _escalate(self, session: Session, now: datetime) -> None:
        alarms = self._alarm_service()
        if alarms is None or not hasattr(alarms, "escalate_due"):
            return
        changes = alarms.escalate_due(session, now)
        self._publish_after_commit(session, list(changes or ()))

    # -- firing -------------------------------------------------------------------------------------
    def _conditions(self, session: Session, rule: EngineRule, home: HouseholdInfo, now: datetime) -> bool:
        for condition in rule.spec.conditions:
            if isinstance(condition, m.TimeWindowCondition):
                if not condition.contains(now.astimezone(ZoneInfo(condition.timezone)).time()):
                    return False
            elif isinstance(condition, m.ModeCondition):
                if home.mode not in {str(mode) for mode in condition.in_}:
                    return False
            elif isinstance(condition, m.DeviceStateCondition) and not self._device_state_holds(
                    session, condition, home):
                return False
        return True

    def _device_state_holds(self, session: Session, condition: m.DeviceStateCondition, home: HouseholdInfo) -> bool:
        stmt = select(device_state.c.device_key, device_state.c.value_type, device_state.c.num,
                      device_state.c.text).where(device_state.c.capability == condition.capability)
        if condition.device_id is not None:
            stmt = stmt.where(device_state.c.device_key == condition.device_id)
        if home.path is None:
            return False
        stmt = stmt.where(device_state.c.place_path == home.path)
        if condition.endpoint is not None:
            stmt = stmt.where(device_state.c.endpoint == condition.endpoint)
        for row in session.execute(stmt):
            value: Any
            if row.value_type == "bool":
                value = bool(row.num)
            elif row.value_type == "number":
                value = row.num
            elif row.value_type == "object":
                import json
                value = json.loads(row.text) if row.text else None
            else:
                value = row.text
            if m.compare(condition.op, _value_of(value, condition.field), condition.value):
                return True
        return False

    def _cooling(self, stage: _Staged, rule: EngineRule, subject: str, now: datetime) -> bool:
        if not rule.spec.cooldown_seconds:
            return False
        key = (rule.key, subject)
        last = stage.last_fired.get(key) or self._last_fired.get(key)
        return last is not None and (now - last).total_seconds() < rule.spec.cooldown_seconds

    def _source(self, rule: EngineRule, device: DeviceInfo | None, household: str) -> str:
        return device.id if device is not None else household

    def _fire(self, session: Session, stage: _Staged, rule: EngineRule, home: HouseholdInfo,
              device: DeviceInfo | None, subject: str, now: datetime, reading: Reading | None,
              *, check_conditions: bool = True, details: dict[str, Any] | None = None) -> list[Firing]:
        if check_conditions and not self._conditions(session, rule, home, now):
            return []
        if self._cooling(stage, rule, subject, now):
            return []
        if self._pending:
            self._flush_repeats(session)
        stage.last_fired[(rule.key, subject)] = now
        context = {**(details or {})}
        if reading is not None:
            context.update(capability=reading.capability, value=reading.value, unit=reading.unit,
                           measured_at=_iso(_aware(reading.timestamp)))
        for action in rule.spec.actions:
            try:
                self._act(session, rule, action, home, device, now, context)
            except Exception as exc:
                from cityweave.errors import CityWeaveError

                if isinstance(exc, CityWeaveError):  # a command the device cannot take: log, go on
                    log.warning("rule %s: %s action refused: %s", rule.key, action.type, exc)
                    continue
                raise
        return [Firing(rule.key, subject, home.id, "fired", now, device.id if device else None)]

    def _repeat_alarm(self, session: Session, rule: EngineRule, home: HouseholdInfo, device: DeviceInfo,
                      subject: str, now: datetime, reading: Reading) -> list[Firing]:
        """The condition still holds: count another occurrence on the rule's open alarm."""
        raises = [a for a in rule.spec.actions if isinstance(a, m.RaiseAlarmAction)]
        if not raises:
            return []
        context = {"capability": reading.capability, "value": reading.value, "unit": reading.unit,
                   "measured_at": _iso(_aware(reading.timestamp))}
        for action in raises:
            # Folded: a batch's repeats of one cause become one raise with ``occurrences`` = n,
            # sent before anything else happens to that alarm and at the end of the batch.
            cause = f"{rule.group}:{self._source(rule, device, home.id)}"
            pending = self._pending.get((cause, action.kind))
            if pending is None:
                self._pending[(cause, action.kind)] = [rule, action, home, device, now, context, 1]
            else:
                pending[4], pending[5], pending[6] = now, context, pending[6] + 1
        return [Firing(rule.key, subject, home.id, "repeated", now, device.id)]

    def _flush_repeats(self, session: Session) -> None:
        pending, self._pending = self._pending, {}
        for rule, action, home, device, now, context, count in pending.values():
            self._raise(session, rule, action, home, device, now, context, occurrences=count)

    def _leave(self, session: Session, stage: _Staged, rule: EngineRule, home: HouseholdInfo,
               device: DeviceInfo | None, subject: str, now: datetime) -> list[Firing]:
        if not rule.clears:
            return []
        if self._pending:
            self._flush_repeats(session)
        siblings = [r for r in self._rules.values() if r.group == rule.group and r.key != rule.key]
        if any((st := self._get(stage, (r.key, subject)) or {}).get("active") and st.get("fired", True)
               for r in siblings):
            return []  # another of the group's conditions still holds for this device
        alarms = self._alarm_service()
        if alarms is None:
            return []
        cause = f"{rule.group}:{self._source(rule, device, home.id)}"
        change = alarms.clear_alarm(session, cause, now, reason=f"condition of rule {rule.key} no longer holds")
        if change is not None:
            self._publish_after_commit(session, [change])
        return [Firing(rule.key, subject, home.id, "cleared", now, device.id if device else None)]

    def _act(self, session: Session, rule: EngineRule, action: Any, home: HouseholdInfo,
             device: DeviceInfo | None, now: datetime, context: dict[str, Any]) -> None:
        if isinstance(action, m.RaiseAlarmAction):
            self._raise(session, rule, action, home, device, now, context)
        elif isinstance(action, m.ClearAlarmAction):
            alarms = self._alarm_service()
            if alarms is not None:
                cause = f"{action.kind}:{self._source(rule, device, home.id)}"
                change = alarms.clear_alarm(session, cause, now, reason=f"rule {rule.key}")
                if change is not None:
                    self._publish_after_commit(session, [change])
        elif isinstance(action, m.CommandAction):
            self._command(session, rule, action, home, device, now)
        elif isinstance(action, m.NotifyAction):
            self._notice(session, RuleNotice(rule.key, home.id, home.path, action.audience, action.message.key,
                                             {**action.message.params, **_flat(context)}, now,
                                             device.id if device else None))
        elif isinstance(action, m.WebhookAction):
            self._notice(session, RuleNotice(rule.key, home.id, home.path, None, "rules.webhook", _flat(context),
                                             now, device.id if device else None, webhook_url=action.url))
        elif isinstance(action, m.SetModeAction):
            self._set_mode(session, rule, home, action.mode, now)
        elif isinstance(action, m.SceneAction):
            self._scene(session, rule, home, action.scene_id, now)
        elif isinstance(action, m.WorkOrderAction):
            self._work_order(session, rule, action, home, device, now, context)

    def _raise(self, session: Session, rule: EngineRule, action: m.RaiseAlarmAction, home: HouseholdInfo,
               device: DeviceInfo | None, now: datetime, context: dict[str, Any], *, occurrences: int = 1) -> None:
        alarms = self._alarm_service()
        if alarms is None:
            log.warning("rule %s would raise an alarm, but no alarm service is installed", rule.key)
            return
        from cityweave.alarms import AlarmRaise, Severity

        title = (action.title.model_dump(by_alias=True) if action.title is not None
                 else dict(rule.title or rule.spec.name.model_dump(by_alias=True)))
        request = AlarmRaise(
            cause_key=f"{rule.group}:{self._source(rule, device, home.id)}", kind=action.kind,
            severity=Severity(action.severity), place_id=home.id, rule_key=rule.key,
            device_id=device.id if device else None, title=title, details=_flat(context),
            escalation=escalation_chain(action.escalation), occurrences=occurrences,
        )
        change = alarms.raise_alarm(session, request, now)
        self._publish_after_commit(session, [change])

    def _work_order(self, session: Session, rule: EngineRule, action: m.WorkOrderAction, home: HouseholdInfo,
                    device: DeviceInfo | None, now: datetime, context: dict[str, Any]) -> None:
        """Ask for people on site for the rule's open alarm (alarms' ``WorkOrderOpener`` hook, once
        per alarm); without an open alarm of this cause, a ``rules.work_order`` notice instead."""
        from cityweave.alarms.models import Alarm
        from cityweave.alarms.workorders import request_work_order

        cause = f"{rule.group}:{self._source(rule, device, home.id)}"
        alarm = session.execute(select(Alarm).where(Alarm.open_key == cause)).scalar_one_or_none()
        if alarm is not None:
            base = self.work_orders

            class InCategory:  # the rule names the work-order category; the opener may take it
                def open(self, session: Session, alarm: Any) -> str | None:
                    try:
                        return base.open(session, alarm, category_id=action.category)
                    except TypeError:
                        return base.open(session, alarm)

            request_work_order(session, alarm, now, opener=InCategory() if base is not None else None)
            return
        self._notice(session, RuleNotice(rule.key, home.id, home.path, None, "rules.work_order",
                                         {"category": action.category, **_flat(context)}, now,
                                         device.id if device else None))

    def _command(self, session: Session, rule: EngineRule, action: m.CommandAction, home: HouseholdInfo,
                 device: DeviceInfo | None, now: datetime) -> None:
        stmt = select(Device).where(Device.place_id == home.id, Device.status.in_(BOUND_STATUSES))
        target = action.target
        if isinstance(target, str):
            wanted = device.id if target == SELF and device is not None else target
            stmt = stmt.where(Device.id == wanted)
        for row in session.execute(stmt).scalars():
            info = _device_info(row)
            if not info.has(action.capability, writable=True) and info.capabilities:
                continue
            if isinstance(target, m.DeviceSelector):
                if target.device_type is not None and row.device_type != target.device_type:
                    continue
                if target.capability is not None and not info.has(target.capability, writable=True):
                    continue
            if rule.target_filter is not None and not rule.target_filter(info, action):
                continue
            endpoint = action.endpoint
            if endpoint is None:
                endpoints = [e for c, e, w in info.capabilities if c == action.capability and w]
                endpoint = endpoints[0] if endpoints else None
            self.commands.send(session, row, action.capability, action.value, endpoint, rule_key=rule.key, now=now)

    def _notice(self, session: Session, notice: RuleNotice) -> None:
        self._notice_event(session, notice)

    def _notice_event(self, session: Session, event: Any) -> None:
        bus = self.bus
        if bus is not None:
            on_commit(session, lambda: bus.publish(event))

    def _set_mode(self, session: Session, rule: EngineRule, home: HouseholdInfo, mode: Any, now: datetime) -> None:
        from cityweave.audit import trail
        from cityweave.authz.policy import Principal
        from cityweave.rules import modes

        previous = modes.store(session, home.id, m.Mode(mode), now, actor_id="system", actor_name=f"rule:{rule.key}")
        trail.append(session, actor=Principal.system("rules"), action="household.mode", object_kind="place",
                     object_id=home.id, place_path=home.path, at=now,
                     details={"mode": str(mode), "previous": str(previous), "via": rule.key})
        self._households.pop(home.id, None)
        if previous != mode and home.path is not None:
            self._notice_event(session, modes.ModeChanged(home.id, home.path, m.Mode(mode), previous, now,
                                                          f"rule:{rule.key}"))

    def _scene(self, session: Session, rule: EngineRule, home: HouseholdInfo, scene_id: str, now: datetime) -> None:
        try:
            from cityweave.rules import scenes  # type: ignore[attr-defined]
        except ImportError:
            log.warning("rule %s: scenes are not available; scene %s not run", rule.key, scene_id)
            return
        run = getattr(scenes, "run_for_rule", None)
        if run is not None:
            run(session, home.id, scene_id, now, commands=self.commands, rule_key=rule.key)

    def _publish_after_commit(self, session: Session, changes: list[Any]) -> None:
        bus = self.bus
        if bus is None or not changes:
            return

        def publish() -> None:
            for change in changes:
                bus.publish(change)

        on_commit(session, publish)

    def _alarm_service(self) -> Any:
        if self._alarms is None:
            try:
                from cityweave.alarms import service
            except ImportError:
                return None
            self._alarms = service
        return self._alarms

    # -- staging ------------------------------------------------------------------------------------
    def _stage(self, session: Session) -> _Staged:
        existing = self._staged.get(id(session))
        if existing is not None:
            return existing
        stage = _Staged()
        self._staged[id(session)] = stage

        def commit() -> None:
            with self._lock:
                self._staged.pop(id(session), None)
                for key, state in stage.state.items():
                    if state is None:
                        self._state.pop(key, None)
                    else:
                        self._state[key] = state
                self._last_fired.update(stage.last_fired)

        def rollback(rolled: Session) -> None:
            if not rolled.in_nested_transaction():  # a failed savepoint restores the stage itself
                self._staged.pop(id(session), None)

        on_commit(session, commit)
        from sqlalchemy import event

        event.listen(session, "after_rollback", rollback)
        return stage

    def _remember(self, fired: list[Firing]) -> None:
        if not fired:
            return
        self.firings.extend(fired)
        del self.firings[:-1000]
        for listener in self.listeners:
            try:
                for firing in fired:
                    listener(firing)
            except Exception:
                log.exception("firing listener failed")

    # -- lookups ------------------------------------------------------------------------------------
    def _devices(self, session: Session, keys: set[str]) -> dict[str, DeviceInfo]:
        found: dict[str, DeviceInfo] = {}
        ordered = sorted(k for k in keys if k)
        for index in range(0, len(ordered), 500):
            rows = session.execute(select(
                Device.id, Device.place_id, Device.place_path, Device.place_kind, Device.adapter,
                Device.device_type, Device.name, Device.model, Device.capabilities,
            ).where(Device.id.in_(ordered[index:index + 500])))
            found.update({row.id: _device_info(row) for row in rows})
        return found

    def _household_infos(self, session: Session, ids: set[str]) -> dict[str, HouseholdInfo]:
        import time as _time

        clock = _time.monotonic()
        found = {h: info for h in ids if (info := self._households.get(h)) is not None
                 and clock - info.loaded_at < self.household_ttl_s}
        missing = sorted(ids - set(found))
        if not missing:
            return found
        from cityweave.places.models import Place

        paths = {row.id: row.path for row in session.execute(select(Place.id, Place.path).where(Place.id.in_(missing)))}
        elderly = set(session.execute(
            select(HouseholdMember.household_id).join(CareTag, CareTag.person_id == HouseholdMember.person_id)
            .where(HouseholdMember.household_id.in_(missing), CareTag.tag == CareTagKind.ELDERLY_ALONE)).scalars())
        settings: dict[str, dict[str, tuple[bool, Mapping[str, Any]]]] = defaultdict(dict)
        for row in session.execute(select(HouseholdRuleSettings).where(
                HouseholdRuleSettings.household_id.in_(missing))).scalars():
            settings[row.household_id][row.rule_key] = (bool(row.enabled), dict(row.params or {}))
        modes = _modes(session, missing)
        for household in missing:
            if household not in paths:
                continue
            info = HouseholdInfo(household, paths[household], household in elderly,
                                 modes.get(household, "home"), dict(settings.get(household, {})), clock)
            self._households[household] = info
            found[household] = info
        return found

    # -- status -------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"rules": len(self._rules), "watched_capabilities": len(self._index),
                    "state_rows": len(self._state), "absence_timers": len(self._activity)}


def _undisableable(rule: EngineRule) -> bool:
    """Life-safety built-ins run even if a stored setting says otherwise (builtin.py decides)."""
    if not rule.builtin:
        return False
    from cityweave.rules.builtin import BUILTINS

    builtin = BUILTINS.get(rule.setting or rule.group)
    return builtin is not None and not builtin.may_disable


def _flat(context: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe copy of a firing's context (values may be dicts: blood pressure)."""
    out: dict[str, Any] = {}
    for key, value in context.items():
        if value is None or isinstance(value, str | int | float | bool):
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = {str(k): v for k, v in value.items() if isinstance(v, str | int | float | bool)}
        else:
            out[key] = str(value)
    return out


# Rule documents name chains as model.ESCALATION_CHAINS does; the alarms domain owns the steps
# where it defines a chain of that meaning (``alarms.escalation.CHAINS``).
_CHAIN_ALIASES = {"care": "elderly"}


def escalation_chain(name: str) -> tuple[Any, ...]:
    from cityweave.alarms import EscalationStep
    from cityweave.alarms.escalation import CHAINS

    own = CHAINS.get(_CHAIN_ALIASES.get(name, name))
    if own is not None:
        return tuple(own)
    return tuple(EscalationStep(audience, seconds) for audience, seconds in m.ESCALATION_CHAINS.get(name, ()))


def _modes(session: Session, households: list[str]) -> dict[str, str]:
    """Each household's mode (home/away/armed/sleep) from ``rules.modes``; "home" when unknown."""
    try:
        from cityweave.rules import modes
    except ImportError:
        return {}
    reader = getattr(modes, "modes_of", None)
    if reader is None:
        return {}
    return {k: str(v) for k, v in reader(session, households).items()}


def replace_params(rule: EngineRule, spec: m.RuleSpec) -> EngineRule:
    return replace(rule, spec=spec)
