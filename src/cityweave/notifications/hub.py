"""The in-process live event hub: any thread publishes, async subscribers (SSE streams) read.

* ``publish`` is thread-safe and never blocks on a subscriber: it appends to each matching
  subscriber's bounded buffer under a short lock and, only when that buffer was empty, schedules
  one wake-up on the subscriber's event loop (``loop.call_soon_threadsafe``). A stuck page can
  therefore cost at most its buffer, never the publisher's time nor unbounded loop callbacks.
* A subscriber whose buffer is full loses its *oldest* events and, before the next event it
  reads, gets one ``resync`` event (``{"lost": n}``): reload what is shown, then carry on.
* Each subscriber sees only events whose ``place_path`` lies inside its principal's READ scope
  for the event type's resource (:data:`EVENT_RESOURCES`, decided by ``cityweave.authz.policy``);
  unregistered types only reach unrestricted callers.
* Ids are consecutive integers, starting from the process start time in microseconds, so ids of
  an earlier process are always older. The last ``ring_size`` replayable events are kept: a
  reconnecting client sends ``Last-Event-ID`` and gets what it missed, or ``resync`` when the ring
  no longer reaches back that far (or the id is from another process). Frequent, self-superseding
  events (device states) are not replayable, so they never push an alarm out of the ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cityweave.authz import policy
from cityweave.authz.policy import Action, Principal, Resource

RESYNC = "resync"


# Event type → the resource whose READ scope decides who sees it (the event's place must lie
# inside the scope; enclosing places do not count). A type not listed here is shown only to
# callers whose scope is unrestricted (platform admins): register new types here, and put those
# whose visibility is not a question of places alone (work orders: categories, reporters) in
# EVENT_FILTERS with their own rule.
EVENT_RESOURCES: dict[str, Resource] = {
    "alarm": Resource.ALARM,
    "device_state": Resource.DEVICE,
    "notice": Resource.PLACE,
}
EVENT_FILTERS: dict[str, Callable[[Principal, LiveEvent], bool]] = {}


def resource_for(event_type: str) -> Resource | None:
    return EVENT_RESOURCES.get(event_type)


@dataclass(frozen=True)
class LiveEvent:
    """One thing that happened somewhere, as live pages receive it. ``id`` is given by the hub."""

    type: str
    place_path: str
    data: dict[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int = 0
    # What an EVENT_FILTERS rule needs to decide who may see the event but the page must not
    # receive (a work order's reporter): kept beside the event, never sent.
    access: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # False for events a reconnecting page does not need again (the next one supersedes them).
    replayable: bool = field(default=True, compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "place_path": self.place_path,
                "at": self.at.isoformat(), "data": self.data}


class Subscription:
    """One subscriber: a bounded buffer filled by publishers, read on one asyncio loop."""

    def __init__(self, hub: NotificationHub, principal: Principal, types: frozenset[str] | None,
                 loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.hub = hub
        self.principal = principal
        self.types = types
        self.maxsize = maxsize
        self._loop = loop
        self._lock = threading.Lock()
        self._buffer: deque[LiveEvent] = deque()
        self._lost = 0
        self._resync_reason: str | None = None
        self._wake_pending = False
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self._scopes: dict[Resource, list[str] | None] = {}

    # -- publisher side (any thread) ---------------------------------------------------------
    def wants(self, event: LiveEvent) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        custom = EVENT_FILTERS.get(event.type)
        if custom is not None:
            return custom(self.principal, event)
        resource = resource_for(event.type) or Resource.PLACE
        key = resource if event.type in EVENT_RESOURCES else None
        if key not in self._scopes:
            scope = self.principal.scope_paths(resource, Action.READ)
            self._scopes[key] = scope if key is not None or scope is None else []
        scope = self._scopes[key]
        if scope is None:
            return True
        return any(event.place_path.startswith(prefix) for prefix in scope)

    def offer(self, event: LiveEvent) -> None:
        with self._lock:
            if self.closed:
                return
            if len(self._buffer) >= self.maxsize:
                self._buffer.popleft()
                self._lost += 1
                self._resync_reason = "slow_consumer"
            self._buffer.append(event)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the stream is gone
            self.close()

    def mark_gap(self, reason: str) -> None:
        with self._lock:
            self._resync_reason = reason

    # -- subscriber side (its event loop) ----------------------------------------------------
    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _take(self) -> LiveEvent | None:
        with self._lock:
            if self._resync_reason is not None:
                data = {"reason": self._resync_reason, "lost": self._lost}
                self._resync_reason, self._lost = None, 0
                return LiveEvent(RESYNC, "/", data, datetime.now(UTC), id=0)
            if self._buffer:
                return self._buffer.popleft()
        return None

    async def get(self, timeout: float | None = None) -> LiveEvent | None:
        """The next event; ``None`` on timeout or once the subscription is closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed:
            event = self._take()
            if event is not None:
                return event
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._waiter = self._loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, remaining)
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> LiveEvent:
        event = await self.get()
        if event is None:  # closed
            raise StopAsyncIteration
        return event

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._buffer.clear()
        self.hub._remove(self)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake)


class NotificationHub:
    def __init__(self, *, ring_size: int = 2_000, subscriber_queue: int = 256) -> None:
        self.ring_size = ring_size
        self.subscriber_queue = subscriber_queue
        # Reentrant: a subscriber whose loop has closed removes itself while being offered to.
        self._lock = threading.RLock()
        self._ids = itertools.count(time.time_ns() // 1_000)
        self.first_id = next(self._ids)  # ids of this process are all above this one
        self._last_id = self.first_id
        self._ring: deque[LiveEvent] = deque(maxlen=ring_size)
        # The id of the newest replayable event that has left the ring: a client that saw less
        # than this has missed something the ring can no longer give.
        self._ring_floor = self.first_id
        self._subscribers: set[Subscription] = set()
        self.published = 0
        self.closed = False

    @classmethod
    def from_settings(cls, settings: Any) -> NotificationHub:
        return cls(ring_size=settings.events_ring_size, subscriber_queue=settings.events_subscriber_queue)

    @property
    def last_id(self) -> int:
        return self._last_id

    def publish(self, event: LiveEvent) -> LiveEvent:
        """Number the event, keep it in the ring and hand it to every subscriber allowed to see
        it. Callable from any thread; never waits for a subscriber."""
        with self._lock:
            event = replace(event, id=next(self._ids))
            self._last_id = event.id
            if event.replayable:
                if len(self._ring) == self._ring.maxlen:
                    self._ring_floor = self._ring[0].id
                self._ring.append(event)
            self.published += 1
            targets = [s for s in self._subscribers if s.wants(event)]
            for subscriber in targets:
                subscriber.offer(event)
        return event

    def subscribe(self, principal: Principal, *, types: Iterable[str] | None = None,
                  last_event_id: str | int | None = None, maxsize: int | None = None,
                  loop: asyncio.AbstractEventLoop | None = None) -> Subscription:
        """A subscription on the running loop (or ``loop``). With ``last_event_id``, the events
        after it that are still in the ring come first (registration and replay happen under
        one lock, so nothing is lost or doubled in between)."""
        sub = Subscription(self, principal, frozenset(types) if types else None,
                           loop or asyncio.get_running_loop(), maxsize or self.subscriber_queue)
        with self._lock:
            if self.closed:  # shutting down: the stream ends at once
                sub.closed = True
                return sub
            if last_event_id is not None:
                self._replay(sub, last_event_id)
            self._subscribers.add(sub)
        return sub

    def _replay(self, sub: Subscription, last_event_id: str | int) -> None:
        try:
            last = int(last_event_id)
        except (TypeError, ValueError):
            sub.mark_gap("unknown_last_event_id")
            return
        if last > self._last_id:
            sub.mark_gap("unknown_last_event_id")
            return
        if last < self._ring_floor:  # also every id of an earlier process
            sub.mark_gap("gap")
            return
        for event in self._ring:
            if event.id > last and sub.wants(event):
                sub.offer(event)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (their streams finish), and any made later; for shutdown."""
        with self._lock:
            self.closed = True
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.close()


def visible(principal: Principal, event: LiveEvent) -> bool:
    """Whether ``principal`` may see ``event`` (the rule the hub applies to subscribers)."""
    custom = EVENT_FILTERS.get(event.type)
    if custom is not None:
        return custom(principal, event)
    resource = resource_for(event.type)
    if resource is None:
        return principal.scope_paths(Resource.PLACE, Action.READ) is None
    return policy.allows(principal, resource, Action.READ, [event.place_path])
