"""Commands: encode, log, publish, then confirmed by the echo, timed out, failed or refused."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.authz.policy import Unauthorized
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.devices.adapters import create
from cityweave.devices.command import CommandRejected
from cityweave.devices.reading import CommandAck
from cityweave.devices.registry import commands
from cityweave.devices.registry.commands import CommandTracker, TransportUnavailable, apply_outcomes
from cityweave.devices.registry.directory import DatabaseDirectory
from cityweave.devices.registry.models import CommandStatus, DeviceCommand
from cityweave.errors import NotFound
from tests.devices.support import decode
from tests.devices_registry.support import RecordingPublisher, call_as
from tests.world import World

HOME = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"
CA = "/tc/tc-d1/tc-d1-s1/ca/"


def _send(ctx: AppContext, device_id: str, capability: str = "on_off", value: object = True, *,
          publisher: RecordingPublisher | None = None, tracker: CommandTracker | None = None,
          role: Role = Role.RESIDENT, scope: str = HOME) -> DeviceCommand:
    with ctx.db.session() as session:
        call = call_as(ctx, session, role, scope)
        return commands.send_command(call, device_id, capability, value, publisher=publisher, tracker=tracker)


def _status(ctx: AppContext, command_id: str) -> DeviceCommand:
    with ctx.db.session() as session:
        return session.get(DeviceCommand, command_id)


def test_command_is_encoded_logged_published_and_confirmed_by_the_echo(
        ctx: AppContext, world: World, clock: ManualClock) -> None:
    device_id = world.device_of_household["ca-b1-u1-101"]
    publisher, tracker = RecordingPublisher(), CommandTracker(clock)
    row = _send(ctx, device_id, publisher=publisher, tracker=tracker)
    assert row.status is CommandStatus.SENT and row.requested_by_name == "resident-test"
    [message] = publisher.messages
    assert message.topic == "zigbee2mqtt/plug-ca-b1-u1-101/set" and row.topic == message.topic
    assert json.loads(message.payload) == {"state": "ON"}
    assert len(tracker) == 1

    # The plug reports its new state; the real adapter decodes it through the registry's directory.
    z2m = create("zigbee2mqtt", directory=DatabaseDirectory(ctx.db))
    unrelated = decode(z2m, "zigbee2mqtt/plug-ca-b1-u1-101", {"power": 3.5})
    assert all(tracker.observe(r) == [] for r in unrelated.readings)
    echo = decode(z2m, "zigbee2mqtt/plug-ca-b1-u1-101", {"state": "ON", "power": 40.2})
    outcomes = [o for r in echo.readings for o in tracker.observe(r)]
    assert [(o.command_id, o.status) for o in outcomes] == [(row.id, CommandStatus.CONFIRMED)]
    with ctx.db.session() as session:
        assert apply_outcomes(session, outcomes) == 1
        assert apply_outcomes(session, outcomes) == 0  # closed commands stay closed
    done = _status(ctx, row.id)
    assert done.status is CommandStatus.CONFIRMED and done.completed_at == clock.now()
    with ctx.db.session() as session:
        audit = session.execute(select(AuditRecord).where(AuditRecord.action == "device.command")).scalar_one()
        assert audit.object_id == device_id and audit.place_path == HOME
        assert audit.details["command"] == row.id and audit.actor_label == "resident-test"


def test_no_echo_times_out_on_the_clock(ctx: AppContext, world: World, clock: ManualClock) -> None:
    tracker = CommandTracker(clock)
    row = _send(ctx, world.device_of_household["ca-b1-u1-101"], value=False,
                publisher=RecordingPublisher(), tracker=tracker)
    clock.advance(seconds=9)
    assert tracker.expire() == []
    clock.advance(seconds=2)
    [outcome] = tracker.expire()
    assert outcome.status is CommandStatus.TIMED_OUT and len(tracker) == 0
    with ctx.db.session() as session:
        apply_outcomes(session, [outcome])
    assert _status(ctx, row.id).status is CommandStatus.TIMED_OUT


def test_a_restarted_tracker_picks_up_commands_in_flight(ctx: AppContext, world: World, clock: ManualClock) -> None:
    row = _send(ctx, world.device_of_household["ca-b1-u1-101"], publisher=RecordingPublisher())
    tracker = CommandTracker(clock)
    with ctx.db.session() as session:
        assert tracker.load(session) == 1
    ack = tracker.observe_ack(CommandAck(row.id, False, "busy"))
    assert [(o.command_id, o.status) for o in ack] == [(row.id, CommandStatus.REJECTED)]


def test_transport_failure_is_logged_as_failed(ctx: AppContext, world: World) -> None:
    row = _send(ctx, world.device_of_household["ca-b1-u1-101"],
                publisher=RecordingPublisher(fail=ConnectionError("broker gone")))
    stored = _status(ctx, row.id)
    assert stored.status is CommandStatus.FAILED and "broker gone" in stored.detail


def test_without_a_transport_nothing_pretends(ctx: AppContext, world: World) -> None:
    with pytest.raises(TransportUnavailable):
        _send(ctx, world.device_of_household["ca-b1-u1-101"], publisher=None)


@pytest.mark.parametrize(("capability", "value", "reason"), [
    ("teleport", True, "unknown_capability"),
    ("power_w", 10, "not_writable"),
    ("brightness", 150, "out_of_range"),
    ("brightness", 50, "not_supported"),  # a valid command the plug cannot carry out
])
def test_bad_commands_are_refused_before_anything_is_sent(
        ctx: AppContext, world: World, capability: str, value: object, reason: str) -> None:
    publisher = RecordingPublisher()
    with pytest.raises(CommandRejected) as refused:
        _send(ctx, world.device_of_household["ca-b1-u1-101"], capability, value, publisher=publisher)
    assert refused.value.reason == reason and publisher.messages == []


def test_who_may_command(ctx: AppContext, world: World) -> None:
    publisher = RecordingPublisher()
    home_plug = world.device_of_household["ca-b1-u1-101"]
    with pytest.raises(NotFound):  # the neighbour's plug is invisible to a resident
        _send(ctx, world.device_of_household["ca-b1-u1-102"], publisher=publisher)
    with pytest.raises(Unauthorized):  # staff see the plug but a home's devices are the home's
        _send(ctx, home_plug, publisher=publisher, role=Role.PROPERTY_STAFF, scope=CA)
    with pytest.raises(Unauthorized):
        _send(ctx, home_plug, publisher=publisher, role=Role.GRID_WORKER, scope=CA + "ca-g1/")
    assert publisher.messages == []


def test_the_transports_own_adapter_instances_encode(ctx: AppContext, world: World) -> None:
    """A bridge on another base topic: the ingest's configured adapter decides the topic."""
    publisher = RecordingPublisher()
    z2m = create("zigbee2mqtt", base_topic="home-z2m")
    with ctx.db.session() as session:
        call = call_as(ctx, session, Role.RESIDENT, HOME)
        commands.send_command(call, world.device_of_household["ca-b1-u1-101"], "on_off", True,
                              publisher=publisher, adapters_by_name={"zigbee2mqtt": z2m})
    assert publisher.messages[0].topic == "home-z2m/plug-ca-b1-u1-101/set"


def test_nothing_is_published_before_the_commit_nor_after_a_rollback(ctx: AppContext, world: World) -> None:
    publisher = RecordingPublisher()
    device_id = world.device_of_household["ca-b1-u1-101"]
    with pytest.raises(RuntimeError), ctx.db.session() as session:
        call = call_as(ctx, session, Role.RESIDENT, HOME)
        row = commands.send_command(call, device_id, "on_off", True, publisher=publisher)
        assert publisher.messages == []  # logged, not yet sent
        raise RuntimeError("the request failed after the command")
    assert publisher.messages == []
    assert _status(ctx, row.id) is None
    with ctx.db.session() as session:
        call = call_as(ctx, session, Role.RESIDENT, HOME)
        commands.send_command(call, device_id, "on_off", True, publisher=publisher)
        assert publisher.messages == []
    assert len(publisher.messages) == 1
