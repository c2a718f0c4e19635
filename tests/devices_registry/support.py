"""Test doubles for the device transport, and small helpers shared by the registry tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from cityweave.accounts.models import Role
from cityweave.authz.policy import Grant, Principal
from cityweave.context import AppContext, Call


@dataclass
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class RecordingPublisher:
    """Implements the registry's Publisher protocol by remembering what it was given.

    ``fail`` makes it raise, like an MQTT client that lost its connection."""

    messages: list[Published] = field(default_factory=list)
    fail: Exception | None = None

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self.fail is not None:
            raise self.fail
        self.messages.append(Published(topic, payload, qos, retain))


def principal(role: Role, place_path: str | None, user_id: str = "u-test") -> Principal:
    return Principal(user_id=user_id, username=f"{role.value}-test", grants=(Grant(role, place_path),))


def call_as(ctx: AppContext, session, role: Role, place_path: str | None) -> Call:
    return Call(ctx, session, principal(role, place_path))
