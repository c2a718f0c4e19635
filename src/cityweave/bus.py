"""The in-process event bus: domains announce what happened, other domains react.

Domains talk through events, not through each other's tables (``docs/architecture.md``). An
event is a small frozen dataclass (``AlarmChange``, ``WorkOrderChange`` ...); handlers subscribe
by event class. Publishing is synchronous and never raises: a failing handler is logged and the
others still run, because the event describes something already committed.

Publish only after the commit that made the event true: ``db.engine.on_commit(session,
lambda: bus.publish(event))``. Several processes sharing work would put NATS JetStream behind
this same interface; one process needs nothing more.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("cityweave.bus")

E = TypeVar("E")
Handler = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[type, list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Call ``handler`` with every event of ``event_type`` (or a subclass); returns an
        unsubscribe function."""
        with self._lock:
            self._handlers[event_type].append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers[event_type]:
                    self._handlers[event_type].remove(handler)

        return unsubscribe

    def publish(self, event: object) -> None:
        with self._lock:
            handlers = [h for cls in type(event).__mro__ for h in self._handlers.get(cls, ())]
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("handler %r failed on %s", handler, type(event).__name__)
