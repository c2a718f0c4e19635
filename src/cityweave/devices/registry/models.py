"""The device registry's tables: devices, their credentials and the command log.

A device row is the storage behind a :class:`~cityweave.devices.binding.DeviceBinding`: its id is
the ``device_key`` every Reading carries. Devices are never deleted: decommissioning keeps the row
(and with it the readings' and commands' history) and frees the vendor address for a new row.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from cityweave.db.base import Base, JsonDocument, StrEnumColumn


class DeviceStatus(enum.StrEnum):
    DISCOVERED = "discovered"  # announced itself, belongs to no place yet
    CLAIMED = "claimed"  # accepted into a place; bound, waiting for its first reading
    ACTIVE = "active"  # bound and has reported at least once since it was claimed
    DECOMMISSIONED = "decommissioned"  # retired (or withdrawn before anyone claimed it)


# Only these statuses bind: messages from other devices are refused as unknown.
BOUND_STATUSES = (DeviceStatus.CLAIMED, DeviceStatus.ACTIVE)


class Protocol(enum.StrEnum):
    ZIGBEE = "zigbee"
    WIFI = "wifi"
    BLE = "ble"
    MATTER = "matter"
    THREAD = "thread"
    ZWAVE = "zwave"
    ETHERNET = "ethernet"
    CELLULAR = "cellular"  # NB-IoT, LTE-M, 4G
    LORAWAN = "lorawan"
    UNKNOWN = "unknown"


class CommandStatus(enum.StrEnum):
    PENDING = "pending"  # logged, not yet handed to the transport
    SENT = "sent"  # published; waiting for the device to echo the new state
    CONFIRMED = "confirmed"  # the device reported the requested state (or acknowledged it)
    FAILED = "failed"  # the transport or the device refused it
    TIMED_OUT = "timed_out"  # no echo before the deadline
    REJECTED = "rejected"  # never sent: the adapter could not encode it


OPEN_COMMAND_STATUSES = (CommandStatus.PENDING, CommandStatus.SENT)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    adapter: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(200))  # the vendor's id: IEEE, MAC, Tuya id, ...
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    name: Mapped[str | None] = mapped_column(String(200))
    # Where in the home or facility the device is ("厨房", "Kitchen"): a label people choose.
    room: Mapped[str | None] = mapped_column(String(64))
    device_type: Mapped[str | None] = mapped_column(String(64))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    firmware: Mapped[str | None] = mapped_column(String(100))
    protocol: Mapped[Protocol] = mapped_column(StrEnumColumn(Protocol, 16), default=Protocol.UNKNOWN)
    # The adapter's plain-JSON profile (exposes, entity configs, data points): what it needs to
    # decode this device's messages and encode commands for it.
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # [{"capability": "on_off", "endpoint": "left", "writable": true}, ...]
    capabilities: Mapped[list[Any]] = mapped_column(default=list)
    place_id: Mapped[str | None] = mapped_column(ForeignKey("places.id", ondelete="RESTRICT"), index=True)
    # Copies of the place's path and kind (places never move), so that scope checks stay one
    # indexed prefix match and household devices can be told from facility devices.
    place_path: Mapped[str | None] = mapped_column(String(600), index=True)
    place_kind: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[DeviceStatus] = mapped_column(StrEnumColumn(DeviceStatus, 16), index=True)
    online: Mapped[bool | None]
    last_seen_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    decommissioned_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # One live device per vendor address; decommissioned rows keep their address as history.
        Index(
            "uq_devices_adapter_address_live", "adapter", "address", unique=True,
            sqlite_where=text("status != 'decommissioned'"),
            postgresql_where=text("status != 'decommissioned'"),
        ),
    )


class DeviceCredential(Base):
    """A per-device secret for HTTP ingest (and MQTT: username = device id, password = token).

    Only SHA-256 of the secret is stored; ``prefix`` finds the row without scanning.
    """

    __tablename__ = "device_credentials"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class DeviceCommand(Base):
    """The command log: who asked a device to do what, when, and how it ended."""

    __tablename__ = "device_commands"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    capability: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str | None] = mapped_column(String(100))
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=True)
    requested_by: Mapped[str | None] = mapped_column(String(40))  # user id
    requested_by_name: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime]
    status: Mapped[CommandStatus] = mapped_column(StrEnumColumn(CommandStatus, 16), index=True)
    detail: Mapped[str | None] = mapped_column(String(500))
    topic: Mapped[str | None] = mapped_column(String(300))
    # The ExpectedEcho (capability, value, endpoint, tolerance) and its deadline, so that a
    # restarted tracker can pick up commands still in flight.
    expected: Mapped[dict[str, Any] | None]
    deadline_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class DeviceRegistryState(Base):
    """One row: ``revision`` grows whenever a binding changes, so directories know to reload."""

    __tablename__ = "device_registry_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(default=0)
