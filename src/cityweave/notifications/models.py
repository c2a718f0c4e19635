"""The notification outbox and the optional per-user channel preferences.

One ``notifications`` row per (recipient user, channel, message), or, with no user, one per
firing of a rule's own webhook (``address``: the rule's URL; kind ``rule_webhook``). Texts are stored as i18n keys
with parameters and rendered in the recipient's language when sent, so a user who switches
language gets the next message in the new one. ``dedupe_key`` is unique: handing the same alarm
change over twice writes its rows once.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cityweave.db.base import Base, StrEnumColumn


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # gave up: permanent refusal, or out of attempts
    SUPPRESSED = "suppressed"  # deliberately not sent (inactive recipient, no address)
    DIGESTED = "digested"  # folded into a digest row (digest_id)


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # None: the row is a rule's own webhook, sent to ``address`` (no preferences, no rate limit).
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    address: Mapped[str | None] = mapped_column(String(500))  # the rule's webhook URL (secrets in it)
    channel: Mapped[str] = mapped_column(String(16))  # webhook | sms | voice
    kind: Mapped[str] = mapped_column(String(32))  # alarm | digest | ...
    severity: Mapped[str] = mapped_column(String(16))
    subject_key: Mapped[str] = mapped_column(String(100))
    body_key: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]]  # for both texts; {"zh-CN": .., "en": ..} values pick the language
    place_path: Mapped[str | None] = mapped_column(String(600))
    ref: Mapped[str | None] = mapped_column(String(64))  # what it is about, e.g. the alarm id
    status: Mapped[NotificationStatus] = mapped_column(StrEnumColumn(NotificationStatus, 16))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)

    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_recent", "user_id", "channel", "sent_at"),
    )


class NotificationPreference(Base):
    """A user's own channel choices; without a row, ``preferences.DEFAULT_CHANNELS`` applies."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # severity → channels, e.g. {"critical": ["sms", "live"]}; severities not named use the default.
    channels: Mapped[dict[str, Any]]
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime]
