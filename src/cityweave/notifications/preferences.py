"""Which channels a message goes to: one table of defaults, optionally overridden per user.

``live`` is the in-process push to web pages (every change goes there for everyone in scope);
the others become outbox rows. A webhook is used only by users who gave a webhook URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
                    webhook_url: str | None, now: datetime) -> NotificationPreference:
    """Store a user's choices (severities not named keep the default)."""
    clean: dict[str, Any] = {}
    for severity, chosen in (channels or {}).items():
        if severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {severity!r}")
        unknown = [c for c in chosen if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channels {unknown!r}")
        clean[severity] = list(dict.fromkeys(chosen))
    if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must be http:// or https://")
    row = session.get(NotificationPreference, user_id)
    if row is None:
        row = NotificationPreference(user_id=user_id, channels=clean, webhook_url=webhook_url, updated_at=now)
        session.add(row)
    else:
        row.channels, row.webhook_url, row.updated_at = clean, webhook_url, now
    session.flush()
    return row
