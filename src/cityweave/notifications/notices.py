"""Rule notices (``rules.engine.RuleNotice``, on ``ctx.bus`` after commit) → a live ``notice``
event, and outbox rows for the notice's audience (``family`` when none is named).

A notice is told at severity :data:`NOTICE_SEVERITY` ("minor"): by the default channel table that
is the live push only, so the safety rules' notices do not double the SMS and calls their alarms
already cause; a user who wants notices by SMS or webhook says so in their preferences. The text
is the rule's message key (``rules.fire``, ...) rendered with its parameters in the recipient's
language when sent.

A notice carrying a rule's own ``webhook_url`` (the ``webhook`` action) goes live like the others
and becomes ONE outbox row of no user (:func:`outbox.enqueue_rule_webhook`): a signed POST to that
URL, retried with backoff like users' webhooks, not rate-limited or digested (each firing is one
POST); it is not sent to the audience's users. Its URL is never logged (it may carry a secret).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from cityweave.context import AppContext
from cityweave.notifications import recipients
from cityweave.notifications.hub import LiveEvent, NotificationHub
from cityweave.notifications.outbox import enqueue, enqueue_rule_webhook
from cityweave.notifications.preferences import outbox_channels_for, preferences_of

log = logging.getLogger("cityweave.notifications")

NOTICE_SEVERITY = "minor"
DEFAULT_AUDIENCE = "family"


def _plain(params: Any) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(params or {}), default=str))
    except (TypeError, ValueError):
        return {}


def live_event(notice: Any) -> LiveEvent | None:
    if not notice.place_path:
        return None
    data = {"rule_key": notice.rule_key, "household_id": notice.household_id, "audience": notice.audience,
            "message_key": notice.message_key, "params": _plain(notice.params),
            "device_id": getattr(notice, "device_id", None), "at": notice.at.isoformat()}
    return LiveEvent(type="notice", place_path=notice.place_path, data=data, at=notice.at)


def notice_recipients(session: Session, notice: Any) -> list[str]:
    """The users who get outbox rows for this notice: those of its audience whose channels for
    :data:`NOTICE_SEVERITY` include more than the live push (none, by the default table)."""
    if not notice.place_path or getattr(notice, "webhook_url", None):
        return []
    user_ids = recipients.users_for(session, notice.place_path, notice.audience or DEFAULT_AUDIENCE)
    preferences = preferences_of(session, user_ids)
    return [u for u in user_ids if outbox_channels_for(preferences.get(u), NOTICE_SEVERITY)]


def enqueue_notice(session: Session, notice: Any, now: Any, user_ids: list[str] | None = None) -> int:
    url = getattr(notice, "webhook_url", None)
    if url:
        return enqueue_rule_webhook(
            session, url=url, rule_key=notice.rule_key, household_id=notice.household_id,
            message_key=notice.message_key, params=_plain(notice.params), at=notice.at, now=now,
            place_path=notice.place_path, device_id=getattr(notice, "device_id", None))
    if user_ids is None:
        user_ids = notice_recipients(session, notice)
    if not user_ids:
        return 0
    return enqueue(
        session, user_ids=user_ids, severity=NOTICE_SEVERITY, kind="notice",
        subject_key=notice.message_key, body_key=notice.message_key, params=_plain(notice.params),
        dedupe_key=f"notice:{notice.rule_key}:{notice.household_id}:{notice.audience or '-'}:"
                   f"{notice.message_key}:{notice.at.isoformat()}",
        now=now, place_path=notice.place_path, ref=notice.rule_key[:64],
    )


class NoticeNotifier:
    def __init__(self, ctx: AppContext, hub: NotificationHub,
                 on_enqueued: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.hub = hub
        self.on_enqueued = on_enqueued

    def __call__(self, notice: Any) -> None:
        event = live_event(notice)
        if event is not None:
            self.hub.publish(event)
        webhook = bool(getattr(notice, "webhook_url", None))
        try:
            user_ids: list[str] = []
            if not webhook:
                with self.ctx.db.session() as session:  # reading only, mostly: nobody opted in
                    user_ids = notice_recipients(session, notice)
                if not user_ids:
                    return
            with self.ctx.db.session() as session:
                self.ctx.db.write_first(session)
                written = enqueue_notice(session, notice, self.ctx.clock.now(), user_ids)
        except Exception:
            log.exception("could not queue notifications for rule notice %s", notice.rule_key)
            return
        if written and self.on_enqueued is not None:
            self.on_enqueued()
