"""Which CityWeave device a vendor address belongs to.

Adapters never invent devices: a message is decoded for a device only when a binding says who it
is, so a stray or spoofed publisher cannot create readings ("unknown_device" instead). Bindings
are made by accepting a discovered device or by an operator; the storage behind them belongs to
the device service, which implements :class:`DeviceDirectory` on its tables. The in-memory
directory here serves tests, simulators and single-process setups.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DeviceBinding:
    device_key: str
    adapter: str
    address: str
    aliases: tuple[str, ...] = ()
    device_type: str | None = None
    # Adapter-specific, plain JSON: exposes, entity configs, data-point specs, topic prefixes.
    profile: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.address, *self.aliases)


class DeviceDirectory(Protocol):
    """Lookup of bindings; ``revision`` changes whenever a binding is added or removed."""

    @property
    def revision(self) -> int: ...

    def find(self, adapter: str, key: str) -> DeviceBinding | None: ...

    def bindings(self, adapter: str) -> Iterable[DeviceBinding]: ...


class InMemoryDirectory:
    """A thread-safe directory in a dict.

    ``auto_bind=True`` answers every lookup with a provisional binding whose device key is
    ``"<adapter>:<address>"``: handy for simulators and first experiments, never for production,
    where unknown devices must be refused.
    """

    def __init__(self, bindings: Iterable[DeviceBinding] = (), *, auto_bind: bool = False) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], DeviceBinding] = {}
        self._revision = 0
        self.auto_bind = auto_bind
        for binding in bindings:
            self.add(binding)

    @property
    def revision(self) -> int:
        return self._revision

    def add(self, binding: DeviceBinding) -> None:
        with self._lock:
            self._drop(binding.adapter, binding.address)
            for key in binding.keys:
                self._by_key[(binding.adapter, key)] = binding
            self._revision += 1

    def remove(self, adapter: str, address: str) -> None:
        with self._lock:
            self._drop(adapter, address)
            self._revision += 1

    def _drop(self, adapter: str, address: str) -> None:
        old = self._by_key.get((adapter, address))
        if old is not None:
            for key in old.keys:
                if self._by_key.get((adapter, key)) is old:
                    del self._by_key[(adapter, key)]

    def find(self, adapter: str, key: str) -> DeviceBinding | None:
        binding = self._by_key.get((adapter, key))
        if binding is None and self.auto_bind:
            return DeviceBinding(device_key=f"{adapter}:{key}", adapter=adapter, address=key)
        return binding

    def bindings(self, adapter: str) -> list[DeviceBinding]:
        with self._lock:
            unique = {id(b): b for (a, _), b in self._by_key.items() if a == adapter}
        return list(unique.values())
