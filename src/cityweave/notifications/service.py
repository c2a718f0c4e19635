"""The notifications composition root: hub, channels, dispatcher and the alarm adapter.

``create_app`` builds one and ``install``s it (``app.state.notification_hub``,
``app.state.notifications``, the alarm adapter appended to ``app.state.alarm_listeners`` and
subscribed, with the rule-notice adapter, on ``ctx.bus``); whoever
serves (``cityweave serve`` / ``demo``) calls ``start()`` (stale rows folded, dispatcher thread)
and ``stop()``. Tests and tools may build one with their own hub, channels or provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cityweave.context import AppContext
from cityweave.notifications.alarms import AlarmNotifier
from cityweave.notifications.channels import (
    Channel,
    LogProvider,
    SmsChannel,
    TextProvider,
    VoiceChannel,
    WebhookChannel,
)
from cityweave.notifications.devices import DeviceStateNotifier
from cityweave.notifications.hub import NotificationHub
from cityweave.notifications.notices import NoticeNotifier
from cityweave.notifications.outbox import Dispatcher
from cityweave.notifications.workorders import WorkOrderNotifier

# The attribute of a bus naming the Notifications that listens on it (its lifetime is the bus's).
_LISTENING = "_cityweave_notifications"


def webhook_secret(ctx: AppContext) -> bytes:
    """``CITYWEAVE_NOTIFY_WEBHOOK_SECRET``, or else a key derived from the master key (stable
    across restarts, but then receivers cannot know it: configure one to verify signatures)."""
    configured = ctx.settings.notify_webhook_secret
    if configured:
        return configured.encode()
    return ctx.cipher.blind_index("webhook-signing-key", "notifications.webhook").encode()


def default_channels(ctx: AppContext, provider: TextProvider) -> dict[str, Channel]:
    return {
        "webhook": WebhookChannel(webhook_secret(ctx), timeout=ctx.settings.notify_webhook_timeout_seconds),
        "sms": SmsChannel(provider),
        "voice": VoiceChannel(provider),
    }


class Notifications:
    def __init__(self, ctx: AppContext, *, hub: NotificationHub | None = None,
                 provider: TextProvider | None = None, channels: Mapping[str, Channel] | None = None,
                 interval: float = 1.0) -> None:
        self.ctx = ctx
        self.hub = hub or NotificationHub.from_settings(ctx.settings)
        self.provider = provider or LogProvider()
        self.channels = dict(channels) if channels is not None else default_channels(ctx, self.provider)
        self.dispatcher = Dispatcher(ctx, self.channels, interval=interval)
        self.alarm_listener = AlarmNotifier(ctx, self.hub, on_enqueued=self.dispatcher.wake)
        self.notice_listener = NoticeNotifier(ctx, self.hub, on_enqueued=self.dispatcher.wake)
        self.work_order_listener = WorkOrderNotifier(ctx, self.hub, on_enqueued=self.dispatcher.wake)
        self.device_state_listener = DeviceStateNotifier(self.hub)
        self.started = False
        self._unsubscribe: list[Callable[[], None]] = []

    def install(self, app: Any) -> None:
        state = app.state
        state.notifications = self
        state.notification_hub = self.hub
        listeners = getattr(state, "alarm_listeners", None)
        if listeners is None:
            listeners = []
            state.alarm_listeners = listeners
        listeners[:] = [fn for fn in listeners if not isinstance(fn, AlarmNotifier)]
        listeners.append(self.alarm_listener)
        self.subscribe_bus()

    def subscribe_bus(self) -> None:
        """Listen on ``ctx.bus`` for alarm changes and rule notices; the last ``Notifications``
        installed for a bus is the one listening (an earlier app's is unsubscribed)."""
        bus = getattr(self.ctx, "bus", None)
        if bus is None or self._unsubscribe:
            return
        previous = getattr(bus, _LISTENING, None)
        if previous is not None:
            previous.unsubscribe_bus()
        from cityweave.alarms.events import AlarmChange
        from cityweave.rules.engine import RuleNotice

        self._unsubscribe.append(bus.subscribe(AlarmChange, self.alarm_listener))
        self._unsubscribe.append(bus.subscribe(RuleNotice, self.notice_listener))
        from cityweave.workorders.events import WorkOrderChange

        self._unsubscribe.append(bus.subscribe(WorkOrderChange, self.work_order_listener))
        from cityweave.devices.registry.live import DeviceStateChange

        self._unsubscribe.append(bus.subscribe(DeviceStateChange, self.device_state_listener))
        setattr(bus, _LISTENING, self)

    def unsubscribe_bus(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        bus = getattr(self.ctx, "bus", None)
        if bus is not None and getattr(bus, _LISTENING, None) is self:
            setattr(bus, _LISTENING, None)

    def start(self) -> Notifications:
        if not self.started:
            self.dispatcher.start()
            self.started = True
        return self

    def stop(self) -> None:
        self.unsubscribe_bus()
        self.hub.close()
        if self.started:
            self.dispatcher.stop()
            self.started = False
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()
