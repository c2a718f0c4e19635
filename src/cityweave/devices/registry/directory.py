"""The ``DeviceDirectory`` the adapters look devices up in, backed by the devices table.

The ingest hot path calls :meth:`DatabaseDirectory.find` for every message, tens of thousands of
times a second, so a lookup is one dict access on an immutable snapshot. The snapshot is rebuilt
only when the registry's ``revision`` (one row, bumped in the same transaction as every binding
change: claim, registration, decommissioning, a bound device's refreshed description) differs from
the snapshot's; the revision itself is read at most once per ``check_interval`` seconds. A claim
made through the API in another process therefore binds within about a second, with no messaging
between processes. Only claimed and active devices bind; discovered ones stay unknown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from cityweave.db.engine import Database
from cityweave.devices.binding import DeviceBinding
from cityweave.devices.registry.models import BOUND_STATUSES, Device
from cityweave.devices.registry.service import binding_of, current_revision


@dataclass(frozen=True)
class _Snapshot:
    revision: int
    by_key: dict[tuple[str, str], DeviceBinding] = field(default_factory=dict)
    by_adapter: dict[str, tuple[DeviceBinding, ...]] = field(default_factory=dict)


def _snapshot(revision: int, bindings: Iterable[DeviceBinding]) -> _Snapshot:
    by_key: dict[tuple[str, str], DeviceBinding] = {}
    by_adapter: dict[str, list[DeviceBinding]] = {}
    for binding in bindings:
        by_adapter.setdefault(binding.adapter, []).append(binding)
        # Aliases first, address last: an alias can never shadow another device's address.
        for key in (*binding.aliases, binding.address):
            by_key[(binding.adapter, key)] = binding
    return _Snapshot(revision, by_key, {a: tuple(b) for a, b in by_adapter.items()})


class DatabaseDirectory:
    """Bindings of every claimed or active device, refreshed when the registry changes."""

    def __init__(self, db: Database, *, check_interval: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._check_interval = check_interval
        self._monotonic = monotonic
        self._snapshot = _Snapshot(revision=-1)
        self._next_check = 0.0
        self._lock = threading.Lock()

    @property
    def revision(self) -> int:
        self._maybe_refresh()
        return self._snapshot.revision

    def find(self, adapter: str, key: str) -> DeviceBinding | None:
        if self._monotonic() >= self._next_check:
            self._maybe_refresh()
        return self._snapshot.by_key.get((adapter, key))

    def bindings(self, adapter: str) -> tuple[DeviceBinding, ...]:
        self._maybe_refresh()
        return self._snapshot.by_adapter.get(adapter, ())

    def invalidate(self) -> None:
        """Check the revision on the next lookup (after a change made in this process)."""
        self._next_check = 0.0

    def refresh(self, *, force: bool = False) -> bool:
        """Reload if the registry changed (or always, with ``force``); whether it reloaded."""
        with self._lock:
            return self._reload(force)

    def _maybe_refresh(self) -> None:
        if self._monotonic() < self._next_check:
            return
        # One thread checks; the others keep using the current snapshot rather than queueing
        # (except before the first load, when there is nothing to use yet).
        if not self._lock.acquire(blocking=self._snapshot.revision < 0):
            return
        try:
            if self._monotonic() >= self._next_check:
                self._reload(False)
        finally:
            self._lock.release()

    def _reload(self, force: bool) -> bool:
        self._next_check = self._monotonic() + self._check_interval
        with self._db.session() as session:
            revision = current_revision(session)
            if not force and revision == self._snapshot.revision:
                return False
            rows = session.execute(select(Device).where(Device.status.in_(BOUND_STATUSES))).scalars()
            # Swapped in whole: readers see the old snapshot or the new one, never half of one.
            self._snapshot = _snapshot(revision, [binding_of(row) for row in rows])
        return True
