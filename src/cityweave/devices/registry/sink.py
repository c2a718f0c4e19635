"""The device registry as the ingest pipeline's ``DeviceEventSink``.

Announcements become discovered devices, availability changes set ``online``, and the batch's
last-seen times update ``last_seen_at`` (activating devices claimed since their last message),
all inside the pipeline's batch transaction: this sink never commits.
"""

from __future__ import annotations

from typing import Any

from cityweave.devices.registry import service


class RegistryEventSink:
    """Implements ``cityweave.ingest.sinks.DeviceEventSink`` (structurally: no import needed)."""

    def write_events(self, session: Any, events: Any) -> None:
        if session is None:
            return  # a pipeline without a database has no registry either
        for discovered, at in events.discovered:
            service.record_discovered(session, discovered, at)
        seen = events.seen
        if seen:
            service.mark_seen(session, seen, max(seen.values()))
        for change, at in events.availability:
            key = change.device_key
            # A message after the availability change says more than the change itself.
            if key is not None and not (key in seen and seen[key] > at):
                service.set_online(session, key, change.online, at)
