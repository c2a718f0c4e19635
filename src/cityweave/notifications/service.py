"""The notifications composition root: hub, channels, dispatcher and the alarm adapter.

``create_app`` builds one and ``install``s it (``app.state.notification_hub``,
``app.state.notifications``, the alarm adapter appended to ``app.state.alarm_listeners`` and
subscribed, with the rule-notice adapter, on ``ctx.bus``); whoever
serves (``cityweave serve`` / ``demo``) calls ``start()`` (the alarm catch-up sweep, stale rows
folded, dispatcher thread, the sweep every minute) and ``stop()``. Tests and tools may build one with their own hub, channels or provider.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from cityweave.context import AppContext
from cityweave.notifications.alarms import AlarmNotifier, catch_up
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
CATCH_UP_EVERY_S = 60.0  # the alarm catch-up sweep (notifications.alarms.catch_up)

log = logging.getLogger("cityweave.notifications")


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
        self.alarm_listener = AlarmNotifier(ctx, self.hub, on_enqueued=self.dispatcher.wake,
                                            on_failed=self.catch_up_soon)
        self.notice_listener = NoticeNotifier(ctx, self.hub, on_enqueued=self.dispatcher.wake)
        self.work_order_listener = WorkOrderNotifier(ctx, self.hub, on_enqueued=self.dispatcher.wake)
        self.device_state_listener = DeviceStateNotifier(self.hub)
        self.started = False
        self._unsubscribe: list[Callable[[], None]] = []
        self.catch_up_every = CATCH_UP_EVERY_S
        self._sweep_wake = threading.Event()
        self._sweep_stop = threading.Event()
        self._sweeper: threading.Thread | None = None

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

    def catch_up(self) -> int:
        """Queue the notifications of recent alarm steps that have none; rows written (0 on error)."""
        try:
            written = catch_up(self.ctx)
        except Exception:
            log.exception("alarm notification catch-up failed; retried in %.0f s", self.catch_up_every)
            return 0
        if written:
            self.dispatcher.wake()
        return written

    def catch_up_soon(self) -> None:
        """The notifier could not write: run the sweep now rather than at the next tick."""
        self._sweep_wake.set()

    def _sweep_loop(self) -> None:
        while not self._sweep_stop.is_set():
            self._sweep_wake.wait(self.catch_up_every)
            self._sweep_wake.clear()
            if self._sweep_stop.is_set():
                break
            self.catch_up()

    def start(self) -> Notifications:
        """Catch up on alarm steps whose rows were never written (before the dispatcher folds
        stale rows into the restart digest, so old recovered steps are folded too), start the
        dispatcher, and sweep again every ``catch_up_every`` seconds."""
        if not self.started:
            self.catch_up()
            self.dispatcher.start()
            self._sweep_stop.clear()
            self._sweeper = threading.Thread(target=self._sweep_loop, name="cityweave-notify-catch-up",
                                             daemon=True)
            self._sweeper.start()
            self.started = True
        return self

    def stop(self) -> None:
        self.unsubscribe_bus()
        self.hub.close()
        if self.started:
            self._sweep_stop.set()
            self._sweep_wake.set()
            if self._sweeper is not None:
                self._sweeper.join(10.0)
                self._sweeper = None
            self.dispatcher.stop()
            self.started = False
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()
