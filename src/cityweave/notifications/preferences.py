"""Which channels a message goes to: one table of defaults, optionally overridden per user.

``live`` is the in-process push to web pages (every change goes there for everyone in scope);
the others become outbox rows. A webhook is used only by users who gave a webhook URL.

Two rules hold for every stored choice (:func:`set_preferences`, whoever calls it): critical
messages keep at least one of SMS or voice (``CRITICAL_FLOOR``: a fire alarm that reaches no one is
worse than an unwanted SMS), and a webhook URL passes the SSRF guard
(:func:`cityweave.notifications.channels.check_webhook_url`). The HTTP API is
``/api/v1/users/me/notification-preferences`` (api/routers/notification_preferences.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.errors import FieldError, Invalid
from cityweave.i18n import translate
from cityweave.notifications.channels import WebhookUrlRefused, check_webhook_url
from cityweave.notifications.models import NotificationPreference

LIVE = "live"
OUTBOX_CHANNELS = ("webhook", "sms", "voice")
CHANNELS = (LIVE, *OUTBOX_CHANNELS)

# Higher is more severe (same order as cityweave.alarms.models.SEVERITY_RANK).
SEVERITY_RANK: dict[str, int] = {"info": 1, "warning": 2, "minor": 3, "major": 4, "critical": 5}

# THE default: severity → channels.
DEFAULT_CHANNELS: dict[str, tuple[str, ...]] = {
    "critical": ("sms", "voice", LIVE),
    "major": ("sms", LIVE),
    "minor": (LIVE,),
    "warning": (LIVE,),
    "info": (LIVE,),
}

# Channels that critical messages reach even beyond the per-recipient rate limit.
CRITICAL_BYPASS = frozenset({"sms", "voice"})
# A user's choice for critical messages must keep at least one of these.
CRITICAL_FLOOR = ("sms", "voice")
# Most severe first, as shown to users.
SEVERITIES = tuple(sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__, reverse=True))


def most_severe(severities: Iterable[str]) -> str:
    return max(severities, key=lambda s: SEVERITY_RANK.get(s, 0), default="info")


def channels_for(preference: NotificationPreference | None, severity: str) -> tuple[str, ...]:
    """The channels for one message of ``severity`` to the user with ``preference`` (or none)."""
    chosen: tuple[str, ...] = DEFAULT_CHANNELS.get(severity, (LIVE,))
    if preference is not None:
        own = (preference.channels or {}).get(severity)
        if isinstance(own, list):
            chosen = tuple(c for c in own if c in CHANNELS)
        if "webhook" in chosen and not preference.webhook_url:
            chosen = tuple(c for c in chosen if c != "webhook")
    else:
        chosen = tuple(c for c in chosen if c != "webhook")
    return chosen


def outbox_channels_for(preference: NotificationPreference | None, severity: str) -> tuple[str, ...]:
    return tuple(c for c in channels_for(preference, severity) if c != LIVE)


def preferences_of(session: Session, user_ids: Iterable[str]) -> dict[str, NotificationPreference]:
    ids = list(user_ids)
    if not ids:
        return {}
    rows = session.execute(select(NotificationPreference).where(NotificationPreference.user_id.in_(ids)))
    return {row.user_id: row for row in rows.scalars()}


def set_preferences(session: Session, user_id: str, *, channels: dict[str, list[str]] | None,
                    webhook_url: str | None, now: datetime, allow_private: bool = False,
                    resolve: Any = None, locale: str = "en") -> NotificationPreference:
    """Store a user's choices, replacing earlier ones (severities not named keep the default).
    Raises :class:`~cityweave.errors.Invalid` (pointers into ``{"channels": .., "webhook_url": ..}``)
    for an unknown severity or channel, a critical choice without SMS or voice, the webhook channel
    without a URL, or a URL the SSRF guard refuses (``allow_private``: the installation's
    ``notify_webhook_allow_private``). The texts are in ``locale`` (catalogue keys
    ``notify.preferences.*`` and ``notify.webhook_url.*``)."""
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    for severity, chosen in (channels or {}).items():
        if severity not in SEVERITY_RANK:
            errors.append(FieldError(f"/channels/{severity}", translate(
                "notify.preferences.unknown_severity", locale, severity=severity, choices=", ".join(SEVERITIES))))
            continue
        unknown = [c for c in chosen if c not in CHANNELS]
        if unknown:
            errors.append(FieldError(f"/channels/{severity}", translate(
                "notify.preferences.unknown_channels", locale, channels=repr(unknown), choices=", ".join(CHANNELS))))
            continue
        clean[severity] = list(dict.fromkeys(chosen))
    critical = clean.get("critical")
    below_floor = critical is not None and not set(critical) & set(CRITICAL_FLOOR)
    if below_floor:
        errors.append(FieldError("/channels/critical", critical_floor_message(locale)))
    if webhook_url is None and any("webhook" in chosen for chosen in clean.values()):
        errors.append(FieldError("/webhook_url", translate("notify.preferences.webhook_needs_url", locale)))
    if webhook_url is not None:
        try:
            kwargs = {"resolve": resolve} if resolve is not None else {}
            check_webhook_url(webhook_url, allow_private=allow_private, **kwargs)
        except WebhookUrlRefused as exc:
            errors.append(FieldError("/webhook_url", exc.message(locale)))
    if errors:
        raise Invalid(errors, critical_floor_message(locale) if below_floor
                      else translate("notify.preferences.invalid", locale))
    row = session.get(NotificationPreference, user_id)
    if row is None:
        row = NotificationPreference(user_id=user_id, channels=clean, webhook_url=webhook_url, updated_at=now)
        session.add(row)
    else:
        row.channels, row.webhook_url, row.updated_at = clean, webhook_url, now
    session.flush()
    return row


def critical_floor_message(locale: str = "en") -> str:
    joiner = " 或 " if locale == "zh-CN" else " or "
    return translate("notify.preferences.critical_floor", locale, choices=joiner.join(CRITICAL_FLOOR))


def reset_preferences(session: Session, user_id: str) -> bool:
    """Back to the defaults (the row goes, webhook URL included); whether there was a row."""
    row = session.get(NotificationPreference, user_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def effective_choices(preference: NotificationPreference | None) -> list[dict[str, Any]]:
    """Per severity, most severe first: the channels in force (the user's own where set, else the
    default), the default, and whether the default applies."""
    own = (preference.channels or {}) if preference is not None else {}
    out = []
    for severity in SEVERITIES:
        default = list(DEFAULT_CHANNELS.get(severity, (LIVE,)))
        chosen = own.get(severity)
        is_default = not isinstance(chosen, list)
        out.append({"severity": severity,
                    "channels": default if is_default else [c for c in chosen if c in CHANNELS],
                    "default": default, "is_default": is_default})
    return out
