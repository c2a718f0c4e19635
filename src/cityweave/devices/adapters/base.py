"""The contract every vendor adapter fulfils, and the machinery that keeps decoding safe.

An adapter turns MQTT messages of one ecosystem into a :class:`DecodeResult` and commands into
vendor messages. :meth:`VendorAdapter.decode` is final: it enforces the size limit, catches any
exception a vendor module lets escape (reason ``adapter_error``), keeps the raw message when
something was refused or not understood, and feeds the metrics. Vendor modules implement
``_decode`` against a :class:`Message`, whose helpers validate every value through the capability
registry, so no adapter can emit a reading that is out of range or of the wrong type.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from cityweave.devices import capabilities
from cityweave.devices.binding import DeviceBinding, DeviceDirectory, InMemoryDirectory
from cityweave.devices.command import Command, CommandRejected, EncodedCommand
from cityweave.devices.discovery import DiscoveredDevice
from cityweave.devices.metrics import DecodeMetrics
from cityweave.devices.reading import (
    AvailabilityChange,
    CommandAck,
    DecodeResult,
    Quality,
    Reading,
    Rejection,
)
from cityweave.devices.reasons import Reason
from cityweave.devices.units import normalize_unit

log = logging.getLogger("cityweave.devices")

DEFAULT_MAX_PAYLOAD = 64 * 1024
# Device lists (Zigbee2MQTT's bridge/devices) grow with the network: 45 devices already take
# 160 KB, a few hundred take megabytes. They arrive on a handful of known topics only.
DEFAULT_MAX_DISCOVERY_PAYLOAD = 8 * 1024 * 1024
_RAW_KEPT_WHEN_OVERSIZE = 1024
_MAX_CLOCK_SKEW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD
    max_discovery_payload_bytes: int = DEFAULT_MAX_DISCOVERY_PAYLOAD
    # Our own name on the bus: the ``src`` of Shelly RPC requests, whose replies come back on
    # ``<client_id>/rpc``.
    client_id: str = "cityweave"


class DiscoveryError(ValueError):
    """An out-of-band device description could not be understood."""


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT wildcard matching: ``+`` is one level, a final ``#`` any number (including none)."""
    pattern_parts, topic_parts = pattern.split("/"), topic.split("/")
    for index, part in enumerate(pattern_parts):
        if part == "#":
            return True
        if index >= len(topic_parts):
            return False
        if part != "+" and part != topic_parts[index]:
            return False
    return len(pattern_parts) == len(topic_parts)


def as_number(value: Any) -> float | None:
    """A finite float from a number or numeric string (Tasmota sends some numbers as text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def lookup(table: Mapping[Any, Any], key: Any, default: Any = None) -> Any:
    """``table.get(key)`` that tolerates unhashable keys: device JSON may put a list anywhere."""
    try:
        return table.get(key, default)
    except TypeError:
        return default


def epoch_to_datetime(value: Any) -> datetime | None:
    """A UTC datetime from epoch seconds or milliseconds; None when it is not a sane number."""
    number = as_number(value)
    if number is None or number <= 0:
        return None
    if number > 1e11:  # milliseconds
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class Message:
    """One incoming MQTT message being decoded; collects the adapter's findings."""

    def __init__(self, adapter: VendorAdapter, topic: str, payload: bytes, received_at: datetime) -> None:
        self.adapter = adapter
        self.topic = topic
        self.payload = payload
        self.received_at = received_at
        self.result = DecodeResult(adapter.name, topic, received_at)
        self.binding: DeviceBinding | None = None
        self._json: Any = None
        self._parsed = False

    # -- the message as a whole ------------------------------------------------------------
    def text(self) -> str | None:
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.reject(Reason.BAD_ENCODING, f"payload is not UTF-8: {exc.reason}")
            return None

    def json(self, expect: type | tuple[type, ...] | None = None) -> Any:
        """The parsed JSON payload, or None after recording why it cannot be had."""
        if not self._parsed:
            self._parsed = True
            if self.text() is None:
                return None
            try:
                self._json = orjson.loads(self.payload)
            except orjson.JSONDecodeError as exc:
                self.reject(Reason.MALFORMED_JSON, f"not JSON: {str(exc)[:120]}")
                self._json = None
                return None
        if self._json is None:
            return None
        if expect is not None and not isinstance(self._json, expect):
            self.reject(Reason.SCHEMA_VIOLATION, f"expected a JSON {_type_names(expect)}, "
                        f"got {type(self._json).__name__}")
            return None
        return self._json

    def reject(self, reason: Reason, detail: str, field: str | None = None) -> None:
        self.result.rejections.append(Rejection(reason, detail, field))

    def ignore(self) -> None:
        self.result.ignored = True

    # -- who sent it -------------------------------------------------------------------------
    def bind(self, key: str, *, address: str | None = None) -> DeviceBinding | None:
        """The binding for ``key``; records ``unknown_device`` when there is none."""
        self.result.address = address or key
        binding = self.adapter.directory.find(self.adapter.name, key)
        if binding is None:
            self.reject(Reason.UNKNOWN_DEVICE, f"no device bound to {self.adapter.name} address {key!r}")
            return None
        self.binding = binding
        self.result.address = binding.address
        self.result.device_key = binding.device_key
        return binding

    def mismatch(self, claimed: str, expected: str) -> None:
        self.reject(Reason.TOPIC_MISMATCH,
                    f"message on the topic of {expected!r} claims to come from {claimed!r}")

    # -- what it says ---------------------------------------------------------------------------
    def timestamp(self, value: Any) -> datetime:
        """A device timestamp when it is plausible, otherwise the time the message arrived."""
        moment = value if isinstance(value, datetime) else epoch_to_datetime(value)
        if moment is None or abs(moment - self.received_at) > _MAX_CLOCK_SKEW:
            return self.received_at
        return moment

    def read(self, capability: str, value: Any, *, unit: str | None = None,
             endpoint: str | None = None, source: str | None = None,
             quality: Quality = Quality.GOOD, timestamp: datetime | None = None,
             extra: Mapping[str, Any] | None = None) -> bool:
        """Validate and record one reading; a refused value becomes a rejection, not an error."""
        if self.binding is None:
            self.reject(Reason.UNKNOWN_DEVICE, "reading without a bound device", source)
            return False
        cap = capabilities.find(capability)
        if cap is None:
            self.reject(Reason.UNKNOWN_CAPABILITY, f"adapter mapped to unknown {capability!r}", source)
            return False
        checked = capabilities.validate(cap, value, unit)
        if not checked.ok:
            self.reject(checked.reason or Reason.INVALID_VALUE, checked.detail, source)
            return False
        reading_unit = cap.unit if cap.unit is not None else normalize_unit(unit)
        self.result.readings.append(Reading(
            device_key=self.binding.device_key, capability=cap.name, value=checked.value,
            timestamp=timestamp or self.received_at, unit=reading_unit, endpoint=endpoint,
            quality=quality, source=source, extra=dict(extra or {}),
        ))
        return True

    def unknown(self, path: str, value: Any) -> None:
        self.result.unknown[path] = value

    def announce(self, device: DiscoveredDevice) -> None:
        self.result.discovered.append(device)

    def online(self, address: str, online: bool) -> None:
        device_key = self.binding.device_key if self.binding else None
        self.result.availability.append(AvailabilityChange(address, online, device_key))

    def observed(self, capability: str, value: Any, endpoint: str | None = None,
                 command_id: str | None = None) -> None:
        """A command another controller sent to the device (kept for the audit trail)."""
        device_key = self.binding.device_key if self.binding else f"{self.adapter.name}:{self.result.address}"
        try:
            self.result.commands.append(Command.create(device_key, capability, value, endpoint, command_id))
        except CommandRejected as exc:
            self.reject(exc.reason, f"observed command: {exc.detail}", capability)

    def ack(self, request_id: str, ok: bool, detail: str = "") -> None:
        self.result.acks.append(CommandAck(request_id, ok, detail))


def _type_names(expect: type | tuple[type, ...]) -> str:
    names = {dict: "object", list: "array", str: "string"}
    kinds = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


class VendorAdapter(ABC):
    """Base of every vendor module. Subclasses set ``name`` and ``title``."""

    name: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, directory: DeviceDirectory | None = None, *,
                 settings: AdapterSettings | None = None, metrics: DecodeMetrics | None = None) -> None:
        self.directory: DeviceDirectory = directory if directory is not None else InMemoryDirectory()
        self.settings = settings or AdapterSettings()
        self.metrics = metrics

    # -- topics ------------------------------------------------------------------------------
    @abstractmethod
    def subscriptions(self) -> list[str]:
        """MQTT topic filters to subscribe to (may grow as devices are bound)."""

    def discovery_topics(self) -> list[str]:
        """The subset of :meth:`subscriptions` on which devices announce themselves."""
        return []

    def handles(self, topic: str) -> bool:
        return any(topic_matches(pattern, topic) for pattern in self.subscriptions())

    # -- decoding ------------------------------------------------------------------------------
    def decode(self, topic: str, payload: bytes, received_at: datetime) -> DecodeResult:
        """Everything this message says. Never raises."""
        message = Message(self, topic, payload, received_at)
        limit = self.settings.max_payload_bytes
        if len(payload) > limit and any(topic_matches(p, topic) for p in self.discovery_topics()):
            limit = self.settings.max_discovery_payload_bytes
        if len(payload) > limit:
            message.reject(Reason.OVERSIZE, f"{len(payload)} bytes > limit {limit}")
            message.result.raw = payload[:_RAW_KEPT_WHEN_OVERSIZE]
        else:
            try:
                self._decode(message)
            except Exception as exc:
                log.exception("adapter %s failed on topic %s", self.name, topic)
                message.result.readings.clear()
                message.reject(Reason.ADAPTER_ERROR, f"{type(exc).__name__}: {str(exc)[:200]}")
            self._finish(message)
        if self.metrics is not None:
            self.metrics.observe(message.result)
        return message.result

    @abstractmethod
    def _decode(self, message: Message) -> None:
        """Fill ``message`` from ``message.topic`` and ``message.payload``."""

    def _finish(self, message: Message) -> None:
        result = message.result
        if result.rejections or result.unknown:
            result.raw = message.payload
        if any(r.capability == "self_test" and r.value is True for r in result.readings):
            result.readings[:] = [
                _with_quality(r, Quality.TEST) if capabilities.get(r.capability).safety else r
                for r in result.readings
            ]

    # -- commands and descriptions ---------------------------------------------------------------
    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        """The vendor message that carries out ``command``; :class:`CommandRejected` if none can."""
        raise CommandRejected(Reason.NOT_SUPPORTED, f"{self.title} devices take no commands from CityWeave")

    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        """A device description obtained outside MQTT (cloud API, spec file) as a discovery."""
        raise DiscoveryError(f"{self.title} devices are discovered over MQTT only")

    # -- helpers for subclasses -------------------------------------------------------------------
    @staticmethod
    def require_endpoint(command: Command, choices: Iterable[str], default: str | None) -> str:
        endpoint = command.endpoint if command.endpoint is not None else default
        if endpoint is None or endpoint not in set(choices):
            raise CommandRejected(Reason.NOT_SUPPORTED,
                                  f"{command.capability} has no endpoint {command.endpoint!r} on this device")
        return endpoint


def _with_quality(reading: Reading, quality: Quality) -> Reading:
    return Reading(reading.device_key, reading.capability, reading.value, reading.timestamp,
                   reading.unit, reading.endpoint, quality, reading.source, reading.extra)


def dumps(document: Any) -> bytes:
    """Compact JSON for outgoing payloads."""
    return orjson.dumps(document)
