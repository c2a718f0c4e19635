"""Device states (``devices.registry.live.DeviceStateChange``, after commit) → a live
``device_state`` event, seen by whoever may read devices at that place.

Only live: a changed reading is not worth an SMS, and no outbox row is written. The events are
not kept for replay either (``LiveEvent.replayable``): a page that reconnects reloads what it
shows, while the ring of replayable events stays for alarms and work orders.
"""

from __future__ import annotations

from typing import Any

from cityweave.notifications.hub import LiveEvent, NotificationHub


def live_event(change: Any) -> LiveEvent:
    data = {"device_id": change.device_id, "values": change.values, "at": change.at.isoformat()}
    return LiveEvent(type="device_state", place_path=change.place_path, data=data, at=change.at,
                     replayable=False)


class DeviceStateNotifier:
    def __init__(self, hub: NotificationHub) -> None:
        self.hub = hub

    def __call__(self, change: Any) -> None:
        self.hub.publish(live_event(change))
