"""Heartbeat timeouts: a device that stays silent too long is reported offline.

Vendor last-will messages cover devices that lose their broker connection; a battery sensor behind
a bridge that simply stops reporting sends nothing. The tracker remembers when each device was last
heard and, asked with the current time (from the app :class:`~cityweave.clock.Clock`), names the
devices silent for longer than the timeout, once each until they are heard again. Pure logic: the
pipeline asks it between batches, tests drive it with a ManualClock.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from cityweave.devices.reading import AvailabilityChange


class HeartbeatTracker:
    def __init__(self, timeout: timedelta, *, max_devices: int = 1_000_000) -> None:
        self.timeout = timeout
        self.max_devices = max_devices
        self._lock = threading.Lock()
        self._last: dict[str, tuple[datetime, str]] = {}  # device_key -> (last heard, address)
        self._offline: set[str] = set()

    def seen(self, device_key: str, address: str, at: datetime) -> bool:
        """Record a message; True when the device had been declared offline (it is back)."""
        with self._lock:
            previous = self._last.get(device_key)
            if previous is None and len(self._last) >= self.max_devices:
                return False  # bounded memory: beyond the limit new devices are not tracked
            if previous is None or at >= previous[0]:
                self._last[device_key] = (at, address)
            if device_key in self._offline:
                self._offline.discard(device_key)
                return True
            return False

    def went_offline(self, device_key: str) -> None:
        """The device said so itself (last will): no timeout needed until it is heard again."""
        with self._lock:
            self._offline.add(device_key)

    def expired(self, now: datetime) -> list[AvailabilityChange]:
        cutoff = now - self.timeout
        with self._lock:
            silent = [(key, address) for key, (at, address) in self._last.items()
                      if at < cutoff and key not in self._offline]
            self._offline.update(key for key, _ in silent)
        return [AvailabilityChange(address=address, online=False, device_key=key) for key, address in silent]

    def __len__(self) -> int:
        return len(self._last)
