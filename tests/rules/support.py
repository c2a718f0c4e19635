"""Helpers for the rule engine tests: devices in the test world, an engine with a recording
transport, readings, and what ended up in the alarms table and the command log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from cityweave.alarms.models import Alarm
from cityweave.authz.policy import Principal
from cityweave.context import AppContext, Call
from cityweave.devices.reading import Reading
from cityweave.devices.registry import service as devices
from cityweave.devices.registry.models import DeviceCommand
from cityweave.devices.registry.schemas import CapabilityRefModel, DeviceRegister
from cityweave.rules.builtin import BuiltinRules
from cityweave.rules.engine import CommandPort, RuleEngine

ELDERLY_HOME = "ca-b1-u1-101"  # the world's resident 王秀英 is tagged elderly_alone
OTHER_HOME = "ca-b1-u1-102"


@dataclass
class RecordingPublisher:
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.messages.append((topic, payload))


def add_device(ctx: AppContext, household: str, capabilities: list[tuple[str, bool]], *,
               name: str = "设备", device_type: str | None = None) -> str:
    with ctx.db.session() as session:
        call = Call(ctx, session, Principal.system("test"))
        device, _, _ = devices.register(call, DeviceRegister(
            place_id=household, name=name, adapter="native", device_type=device_type,
            capabilities=[CapabilityRefModel(capability=c, writable=w) for c, w in capabilities]))
        return device.id


def engine_for(ctx: AppContext, **kw: Any) -> tuple[RuleEngine, RecordingPublisher]:
    publisher = RecordingPublisher()
    builtins = BuiltinRules()
    engine = RuleEngine(ctx.db, ctx.clock, rules=builtins.defaults(), bus=ctx.bus, builtin_settings=builtins,
                        commands=CommandPort(publisher), **kw)
    engine.load()
    return engine, publisher


def observe(ctx: AppContext, engine: RuleEngine, *readings: Reading) -> list[Any]:
    with ctx.db.session() as session:
        return engine.observe(session, list(readings))


def reading(device: str, capability: str, value: Any, at: datetime, endpoint: str | None = None) -> Reading:
    return Reading(device, capability, value, at, endpoint=endpoint)


def alarms(ctx: AppContext, **where: Any) -> list[Alarm]:
    with ctx.db.session() as session:
        stmt = select(Alarm).order_by(Alarm.first_at)
        for name, value in where.items():
            stmt = stmt.where(getattr(Alarm, name) == value)
        return list(session.execute(stmt).scalars())


def commands(ctx: AppContext, device: str | None = None) -> list[DeviceCommand]:
    with ctx.db.session() as session:
        stmt = select(DeviceCommand).where(DeviceCommand.requested_by_name.like("rule:%"))
        if device is not None:
            stmt = stmt.where(DeviceCommand.device_id == device)
        return list(session.execute(stmt.order_by(DeviceCommand.requested_at)).scalars())
