"""Commands: API call → adapter encodes the vendor payload → publish → confirmed by the echo.

:func:`send_command` validates the command against the capability registry, checks the caller may
command this device, lets the device's adapter encode the vendor message, logs it (who, when,
what) and hands it to the transport through the :class:`Publisher` protocol once the caller's
transaction has committed (``db.engine.on_commit``): a command whose log entry (or whose cause, an
alarm raised in the same ingest batch) was rolled back is never sent. The MQTT ingest implements
that protocol with its client. :class:`CommandTracker` then watches incoming readings:
the state echo the adapter predicted confirms the command, a negative device reply rejects it, and
silence past the deadline times it out. The tracker is pure logic over a clock, so tests drive it
with a ManualClock; :func:`apply_outcomes` writes what it decided to the command log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from cityweave.authz.policy import Action, Resource
from cityweave.clock import Clock
from cityweave.context import Call
from cityweave.db.base import new_id
from cityweave.db.engine import Database, on_commit
from cityweave.devices import adapters
from cityweave.devices.adapters import VendorAdapter
from cityweave.devices.binding import DeviceDirectory, InMemoryDirectory
from cityweave.devices.command import Command, CommandRejected, ExpectedEcho
from cityweave.devices.reading import CommandAck, Reading
from cityweave.devices.reasons import Reason
from cityweave.devices.registry import service
from cityweave.devices.registry.models import (
    BOUND_STATUSES,
    OPEN_COMMAND_STATUSES,
    CommandStatus,
    Device,
    DeviceCommand,
)
from cityweave.errors import CityWeaveError, Conflict
from cityweave.listing import Page, PageRequest, paginate

# How long to wait for a device's reply when the adapter expects no state echo (a siren, a cover
# told to stop): only an acknowledgement can confirm those.
ACK_WINDOW_S = 10.0


class Publisher(Protocol):
    """The device transport as the registry needs it. The MQTT ingest implements it.

    ``publish`` hands the message over (paho's ``publish`` queues and returns) and raises when it
    cannot: the command is then logged as failed. It is synchronous because commands are sent from
    request threads; an asyncio client can implement it with ``run_coroutine_threadsafe``.
    """

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None: ...


class TransportUnavailable(CityWeaveError):
    """No device transport is running in this installation: nothing could be delivered."""

    status = 503
    slug = "transport-unavailable"


COMMAND_SORTABLE = {"id": DeviceCommand.id, "requested_at": DeviceCommand.requested_at,
                    "status": DeviceCommand.status}


def send_command(
    call: Call,
    device_id: str,
    capability: str,
    value: Any,
    endpoint: str | None = None,
    *,
    publisher: Publisher | None,
    tracker: CommandTracker | None = None,
    directory: DeviceDirectory | None = None,
    adapters_by_name: Mapping[str, VendorAdapter] | None = None,
) -> DeviceCommand:
    """Log one command and send it when the caller's transaction commits. Errors, in order: 404
    (device not visible), 403 (may not command it), 409 (not in service), 422 (capability unknown,
    read-only, value out of range or not supported by this device), 503 (no transport).

    The row is returned ``sent`` (handed to the transport at commit); nothing is published if the
    transaction rolls back. A transport failure at publishing is not an error of the request: the
    log entry becomes ``failed`` (written in a transaction of its own, after the commit).

    ``adapters_by_name`` are the transport's own adapter instances, configured as it runs them
    (Zigbee2MQTT base topic, Shelly client id); without them a default instance encodes."""
    device = service.get_device(call, device_id, Action.CREATE, Resource.COMMAND)
    if device.status not in BOUND_STATUSES:
        raise Conflict(f"device {device_id!r} is {device.status.value}; only claimed or active devices take commands")
    command = Command.create(device.id, capability, value, endpoint, command_id=new_id("cmd"))
    _offered(device, command)
    binding = service.binding_of(device)
    adapter = (adapters_by_name or {}).get(device.adapter) or adapters.create(
        device.adapter, directory=directory or InMemoryDirectory([binding]))
    encoded = adapter.encode(command, binding)
    if publisher is None:
        raise TransportUnavailable("no device transport running: start the ingest service to send commands")
    now = call.now()
    echo = encoded.expected_echo
    row = DeviceCommand(
        id=command.id, device_id=device.id, capability=command.capability, endpoint=command.endpoint,
        value=command.value, requested_by=call.principal.user_id,
        requested_by_name=call.principal.username[:100], requested_at=now,
        status=CommandStatus.PENDING, topic=encoded.topic[:300],
        expected=_echo_document(echo) if echo else None,
        deadline_at=now + timedelta(seconds=echo.timeout_s if echo else ACK_WINDOW_S),
    )
    call.session.add(row)
    call.session.flush()
    call.audit("device.command", "device", device.id, place_path=device.place_path, details={
        "command": row.id, "capability": row.capability, "endpoint": row.endpoint, "value": row.value,
    })
    row.status = CommandStatus.SENT
    db = call.ctx.db
    device_key = device.id

    def publish_after_commit() -> None:
        # Tracked first: an echo may arrive before publish() returns.
        if tracker is not None:
            tracker.track(row.id, device_key, echo, now)
        try:
            publisher.publish(encoded.topic, encoded.payload, encoded.qos, encoded.retain)
        except Exception as exc:  # noqa: BLE001 - any transport error is the command's outcome
            if tracker is not None:
                tracker.forget(row.id)
            _mark_failed(db, row, f"publish failed: {type(exc).__name__}: {exc}"[:500], now)

    on_commit(call.session, publish_after_commit)
    return row


def _mark_failed(db: Database, row: DeviceCommand, detail: str, now: datetime) -> None:
    """The transport refused a command whose log entry is already committed: record that."""
    with db.session() as session:
        db.write_first(session)
        session.execute(update(DeviceCommand).where(
            DeviceCommand.id == row.id, DeviceCommand.status == CommandStatus.SENT,
        ).values(status=CommandStatus.FAILED, detail=detail, completed_at=now, deadline_at=None))
    for key, value in (("status", CommandStatus.FAILED), ("detail", detail), ("completed_at", now),
                       ("deadline_at", None)):
        set_committed_value(row, key, value)


def _offered(device: Device, command: Command) -> None:
    """Refuse early what the device's own description says it cannot do (when it has one)."""
    refs = device.capabilities or []
    if not refs:
        return  # hand-registered without a description: the adapter decides
    writable = {(r.get("capability"), r.get("endpoint")) for r in refs if r.get("writable")}
    if (command.capability, command.endpoint) not in writable:
        where = f"@{command.endpoint}" if command.endpoint else ""
        raise CommandRejected(Reason.NOT_SUPPORTED, f"this device has no settable {command.capability}{where}")


def _echo_document(echo: ExpectedEcho) -> dict[str, Any]:
    return {"capability": echo.capability, "value": echo.value, "endpoint": echo.endpoint,
            "timeout_s": echo.timeout_s, "tolerance": echo.tolerance}


def _echo_from(document: dict[str, Any] | None) -> ExpectedEcho | None:
    if not document:
        return None
    return ExpectedEcho(document["capability"], document.get("value"), document.get("endpoint"),
                        float(document.get("timeout_s") or 10.0), document.get("tolerance"))


def list_commands(call: Call, device_id: str, page: PageRequest) -> Page[DeviceCommand]:
    """A device's command log, newest first; as private as commanding the device itself."""
    device = service.get_device(call, device_id, Action.READ, Resource.COMMAND)
    stmt = select(DeviceCommand).where(DeviceCommand.device_id == device.id)
    return paginate(call.session, stmt, page, COMMAND_SORTABLE, "-requested_at")


# -- tracking outcomes --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcome:
    command_id: str
    status: CommandStatus
    at: datetime
    detail: str | None = None


@dataclass(slots=True)
class _InFlight:
    command_id: str
    device_key: str
    echo: ExpectedEcho | None
    deadline: datetime


class CommandTracker:
    """Commands in flight, matched against what devices report. Thread-safe; no I/O.

    ``observe`` runs for every reading, so a device without commands in flight costs one dict
    lookup. An echo confirms the oldest matching command of that device; a newer command for the
    same capability that arrives first leaves the older one to time out, which is what happened.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_device: dict[str, list[_InFlight]] = {}
        self._by_id: dict[str, _InFlight] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def track(self, command_id: str, device_key: str, echo: ExpectedEcho | None,
              sent_at: datetime | None = None) -> None:
        sent = sent_at or self._clock.now()
        timeout = echo.timeout_s if echo is not None else ACK_WINDOW_S
        entry = _InFlight(command_id, device_key, echo, sent + timedelta(seconds=timeout))
        with self._lock:
            self._by_id[command_id] = entry
            self._by_device.setdefault(device_key, []).append(entry)

    def load(self, session: Session) -> int:
        """Pick up commands still in flight (after a restart); how many."""
        rows = session.execute(select(DeviceCommand).where(
            DeviceCommand.status == CommandStatus.SENT, DeviceCommand.deadline_at.is_not(None),
        ).order_by(DeviceCommand.requested_at)).scalars()
        count = 0
        for row in rows:
            if row.id not in self._by_id and row.deadline_at is not None:
                echo = _echo_from(row.expected)
                with self._lock:
                    entry = _InFlight(row.id, row.device_id, echo, row.deadline_at)
                    self._by_id[row.id] = entry
                    self._by_device.setdefault(row.device_id, []).append(entry)
                count += 1
        return count

    def observe(self, reading: Reading) -> list[Outcome]:
        """Commands this reading confirms."""
        if reading.device_key not in self._by_device:
            return []
        with self._lock:
            for entry in self._by_device.get(reading.device_key, ()):
                if entry.echo is not None and entry.echo.matches(reading):
                    self._drop(entry)
                    return [Outcome(entry.command_id, CommandStatus.CONFIRMED, self._clock.now(),
                                    f"device reported {reading.capability}={reading.value!r}"[:500])]
        return []

    def observe_ack(self, ack: CommandAck) -> list[Outcome]:
        """A device's reply (Shelly RPC, MIoT, native ``ack``) to a command sent with our id."""
        with self._lock:
            entry = self._by_id.get(ack.request_id)
            if entry is None:
                return []
            if not ack.ok:
                self._drop(entry)
                return [Outcome(entry.command_id, CommandStatus.REJECTED, self._clock.now(),
                                f"device refused: {ack.detail}"[:500])]
            if entry.echo is None:
                self._drop(entry)
                return [Outcome(entry.command_id, CommandStatus.CONFIRMED, self._clock.now(), "device acknowledged")]
        return []  # accepted; the state echo will confirm it

    def expire(self) -> list[Outcome]:
        """Commands past their deadline. Those that expected no echo stay ``sent``: silence is all
        such a device ever says, so it is not a failure."""
        now = self._clock.now()
        outcomes: list[Outcome] = []
        with self._lock:
            for entry in [e for e in self._by_id.values() if e.deadline <= now]:
                self._drop(entry)
                if entry.echo is not None:
                    outcomes.append(Outcome(entry.command_id, CommandStatus.TIMED_OUT, now,
                                            f"no {entry.echo.capability} echo within {entry.echo.timeout_s:g} s"))
        return outcomes

    def forget(self, command_id: str) -> None:
        """Stop tracking a command (its publishing failed)."""
        with self._lock:
            entry = self._by_id.get(command_id)
            if entry is not None:
                self._drop(entry)

    def _drop(self, entry: _InFlight) -> None:
        self._by_id.pop(entry.command_id, None)
        siblings = self._by_device.get(entry.device_key, [])
        if entry in siblings:
            siblings.remove(entry)
        if not siblings:
            self._by_device.pop(entry.device_key, None)


def apply_outcomes(session: Session, outcomes: Iterable[Outcome]) -> int:
    """Write the tracker's decisions to the command log; a command already closed stays as it is."""
    changed = 0
    for outcome in outcomes:
        result = session.execute(update(DeviceCommand).where(
            DeviceCommand.id == outcome.command_id, DeviceCommand.status.in_(OPEN_COMMAND_STATUSES),
        ).values(status=outcome.status, detail=outcome.detail, completed_at=outcome.at))
        changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return changed
