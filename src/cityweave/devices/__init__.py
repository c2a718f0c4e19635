"""Devices from any vendor: capabilities, device types, readings and the vendor adapters.

Pure domain code. The MQTT transport, storage and HTTP layers sit on top of these interfaces:
they feed ``adapter.decode(topic, payload, received_at)`` and publish
``adapter.encode(command, binding)``; nothing here opens a socket or a database session.
"""

from cityweave.devices.binding import DeviceBinding, DeviceDirectory, InMemoryDirectory
from cityweave.devices.capabilities import CAPABILITIES, Capability, validate
from cityweave.devices.command import Command, CommandRejected, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.metrics import DecodeMetrics
from cityweave.devices.reading import DecodeResult, Quality, Reading, Rejection
from cityweave.devices.reasons import Reason
from cityweave.devices.types import DEVICE_TYPES, DeviceType

__all__ = [
    "CAPABILITIES", "DEVICE_TYPES", "Capability", "CapabilityRef", "Command", "CommandRejected",
    "DecodeMetrics", "DecodeResult", "DeviceBinding", "DeviceDirectory", "DeviceType",
    "DiscoveredDevice", "EncodedCommand", "ExpectedEcho", "InMemoryDirectory", "Quality", "Reading",
    "Reason", "Rejection", "validate",
]
