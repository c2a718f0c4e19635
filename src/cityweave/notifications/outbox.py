"""The outbox: rows written with the data that justifies them, sent later by the dispatcher.

``enqueue`` writes one pending row per (recipient, outbox channel) in the caller's session;
``enqueue_rule_webhook`` one row of no user for a rule's own webhook (``address`` = its URL).
:class:`Dispatcher` sends what is due, in three steps so that no database lock is held while a
provider answers (on SQLite a held write lock would stall the ingest):

1. *claim* (one short transaction): pick due rows; apply the per-recipient rate limit (at most
   ``notify_rate_limit`` messages per channel per fixed window of ``notify_rate_window_seconds``;
   the excess is folded into ONE digest row per recipient, channel and window, sent when the
   window ends; critical messages on sms/voice pass regardless); lease the rest for a minute by
   moving ``next_attempt_at`` (a crash while sending makes them due again: at least once);
2. *send* each through its channel, outside any transaction, up to eight at a time;
3. *record* (one short transaction): sent; or retry later with exponential backoff; or failed
   after ``notify_max_attempts`` or a permanent refusal; or suppressed (nowhere to send).

``prune`` (hourly in the dispatcher's thread) deletes finished rows older than
``notify_retention_days``. ``fold_stale`` runs when the dispatcher starts: pending rows older than ``notify_freshness_seconds``
(written before a restart or an outage) become one digest per recipient instead of a storm.

Rule webhooks (rows without a user) take the same path, signing, retries and backoff, but no rate
limit, digest or restart fold: each firing is one POST, whenever it gets through.

One dispatcher per database is assumed (PostgreSQL claims with ``SKIP LOCKED`` all the same).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cityweave.accounts.models import User
from cityweave.context import AppContext
from cityweave.i18n import DEFAULT_LOCALE, LOCALES, translate
from cityweave.notifications.channels import (
    Channel,
    DeliveryError,
    Message,
    NoAddress,
    Recipient,
    WebhookChannel,
)
from cityweave.notifications.models import Notification, NotificationPreference, NotificationStatus
from cityweave.notifications.preferences import (
    CRITICAL_BYPASS,
    most_severe,
    outbox_channels_for,
    preferences_of,
)
from cityweave.people.models import Person
from cityweave.people.service import PHONE
from cityweave.security.crypto import DecryptionError

log = logging.getLogger("cityweave.notifications")

DIGEST = "digest"
RULE_WEBHOOK = "rule_webhook"  # the kind of a rule's own webhook row (no user; address = the URL)
RULE_WEBHOOK_SEVERITY = "minor"  # as rule notices (notices.NOTICE_SEVERITY); never critical-bypass
LEASE = timedelta(seconds=60)
MAX_BACKOFF_S = 3600.0
# A restart digest goes out on the first of these channels the folded rows used.
DIGEST_CHANNEL_ORDER = ("sms", "webhook", "voice")
DIGEST_ITEMS = 5
SEND_WORKERS = 8  # deliveries of one batch run side by side
PRUNE_EVERY_S = 3600.0
S = NotificationStatus


# -- texts --------------------------------------------------------------------------------------
def both_languages(key: str, **params: object) -> dict[str, str]:
    """A parameter value that renders in whichever language the recipient reads."""
    return {locale: translate(key, locale, **params) for locale in LOCALES}


def _localise(value: Any, locale: str) -> Any:
    if isinstance(value, Mapping) and value and set(value) <= {*LOCALES, "zh", "zh_CN"}:
        return value.get(locale) or value.get(DEFAULT_LOCALE) or next(iter(value.values()))
    return value


def render(key: str, params: Mapping[str, Any], locale: str) -> str:
    values = {name: _localise(value, locale) for name, value in params.items()}
    try:
        return translate(key, locale, **values)
    except (KeyError, IndexError, ValueError):
        log.warning("message %s lacks a parameter; sent unformatted", key)
        return translate(key, locale) if "{" not in key else key


# -- writing ------------------------------------------------------------------------------------
def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(Notification).on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = session.execute(stmt, rows)
    written = getattr(result, "rowcount", -1)
    return written if written is not None and written >= 0 else len(rows)


def enqueue(session: Session, *, user_ids: Iterable[str], severity: str, kind: str, subject_key: str,
            body_key: str, params: dict[str, Any], dedupe_key: str, now: datetime,
            place_path: str | None = None, ref: str | None = None) -> int:
    """One pending row per recipient and outbox channel (by their preferences or the default);
    ``dedupe_key`` names the message, so enqueueing it again adds nothing. Rows written (as far as
    the driver tells)."""
    ids = list(dict.fromkeys(user_ids))
    preferences = preferences_of(session, ids)
    rows = [
        {"user_id": user_id, "channel": channel, "kind": kind, "severity": severity,
         "subject_key": subject_key, "body_key": body_key, "params": params, "place_path": place_path,
         "ref": ref, "status": S.PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now,
         "dedupe_key": f"{dedupe_key}:{user_id}:{channel}"[:200]}
        for user_id in ids
        for channel in outbox_channels_for(preferences.get(user_id), severity)
    ]
    return _insert_ignoring_duplicates(session, rows)


def enqueue_rule_webhook(session: Session, *, url: str, rule_key: str, household_id: str, message_key: str,
                         params: dict[str, Any], at: datetime, now: datetime, place_path: str | None = None,
                         device_id: str | None = None) -> int:
    """One pending ``webhook`` row of no user for one firing of a rule's ``webhook`` action, sent
    to ``url`` (kept in ``address``; it is never logged: it may carry the receiver's secret).
    Its JSON body (:meth:`Dispatcher._message`) names the rule, household, message key, params and
    time. The same firing handed over twice writes one row. Rows written (0 or 1)."""
    fingerprint = hashlib.sha256(f"{rule_key}\n{household_id}\n{message_key}\n{url}".encode()).hexdigest()[:32]
    row = {"user_id": None, "address": url, "channel": "webhook", "kind": RULE_WEBHOOK,
           "severity": RULE_WEBHOOK_SEVERITY, "subject_key": message_key[:100], "body_key": message_key[:100],
           "params": {"rule_key": rule_key, "household_id": household_id, "message_key": message_key,
                      "params": params, "device_id": device_id, "at": at.isoformat()},
           "place_path": place_path, "ref": rule_key[:64], "status": S.PENDING, "attempts": 0,
           "next_attempt_at": now, "created_at": now,
           "dedupe_key": f"rule-webhook:{household_id}:{at.isoformat()}:{fingerprint}"[:200]}
    return _insert_ignoring_duplicates(session, [row])


# -- sending ------------------------------------------------------------------------------------
@dataclass
class Job:
    row_id: int
    channel: str
    recipient: Recipient | None
    message: Message | None
    outcome: str = ""  # sent | retry | failed | suppressed
    error: str | None = None


@dataclass
class Settings:
    rate_limit: int = 5
    rate_window: timedelta = timedelta(minutes=10)
    freshness: timedelta = timedelta(minutes=10)
    max_attempts: int = 5
    retry_base_s: float = 5.0
    retention: timedelta = timedelta(days=90)
    batch: int = 200

    @classmethod
    def from_settings(cls, settings: Any) -> Settings:
        return cls(rate_limit=settings.notify_rate_limit,
                   rate_window=timedelta(seconds=settings.notify_rate_window_seconds),
                   freshness=timedelta(seconds=settings.notify_freshness_seconds),
                   max_attempts=settings.notify_max_attempts,
                   retry_base_s=settings.notify_retry_base_seconds,
                   retention=timedelta(days=settings.notify_retention_days))


@dataclass
class Counts:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    digested: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed,
                "suppressed": self.suppressed, "digested": self.digested}


class Dispatcher:
    def __init__(self, ctx: AppContext, channels: Mapping[str, Channel], *,
                 settings: Settings | None = None, interval: float = 1.0) -> None:
        self.ctx = ctx
        self.channels = dict(channels)
        for channel in self.channels.values():
            # A webhook channel built without an explicit allowance follows the installation's
            # CITYWEAVE_NOTIFY_WEBHOOK_ALLOW_PRIVATE (the SSRF guard, channels.check_webhook_url).
            if isinstance(channel, WebhookChannel) and channel.allow_private is None:
                channel.allow_private = bool(getattr(ctx.settings, "notify_webhook_allow_private", False))
        self.settings = settings or Settings.from_settings(ctx.settings)
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Dispatcher:
        folded = self.fold_stale(self.ctx.clock.now())
        if folded:
            log.info("folded %d stale notifications into digests", folded)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cityweave-notify", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def wake(self) -> None:
        """Something was enqueued: send it now rather than at the next tick."""
        self._wake.set()

    def _loop(self) -> None:
        next_prune = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.dispatch_due(self.ctx.clock.now())
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    self.prune(self.ctx.clock.now())
            except Exception:
                log.exception("notification dispatch failed")

    def prune(self, now: datetime, *, chunk: int = 5_000) -> int:
        """Delete finished rows (sent, failed, suppressed, digested) created before the retention
        period, in chunks (short transactions); pending rows are never deleted. Rows deleted."""
        cutoff = now - self.settings.retention
        finished = (S.SENT, S.FAILED, S.SUPPRESSED, S.DIGESTED)
        total = 0
        while True:
            with self.ctx.db.session() as session:
                self.ctx.db.write_first(session)
                ids = session.execute(
                    select(Notification.id)
                    .where(Notification.status.in_(finished), Notification.created_at < cutoff)
                    .limit(chunk)
                ).scalars().all()
                if ids:
                    session.execute(delete(Notification).where(Notification.id.in_(ids)))
            total += len(ids)
            if len(ids) < chunk:
                return total

    # -- restart --------------------------------------------------------------------------------
    def fold_stale(self, now: datetime) -> int:
        """Pending rows older than the freshness window → one digest per recipient (users' rows
        only: a rule's webhook rows are sent as they are)."""
        cutoff = now - self.settings.freshness
        with self.ctx.db.session() as session:
            self.ctx.db.write_first(session)
            rows = session.execute(
                select(Notification)
                .where(Notification.status == S.PENDING, Notification.kind != DIGEST,
                       Notification.user_id.is_not(None),  # a rule's webhook: each firing is one POST
                       Notification.created_at < cutoff)
                .order_by(Notification.user_id, Notification.created_at, Notification.id)
            ).scalars().all()
            by_user: dict[str, list[Notification]] = defaultdict(list)
            for row in rows:
                by_user[row.user_id].append(row)  # type: ignore[index]  # users' rows only (query)
            for user_id, held in by_user.items():
                used = {row.channel for row in held}
                channel = next((c for c in DIGEST_CHANNEL_ORDER if c in used), held[0].channel)
                if channel == "voice":
                    channel = "sms"  # nobody wants a phone call reading out a list
                digest = Notification(
                    user_id=user_id, channel=channel, kind=DIGEST,
                    severity=most_severe(row.severity for row in held),
                    subject_key="notify.restart_digest.subject", body_key="notify.restart_digest.body",
                    params={}, status=S.PENDING, attempts=0, next_attempt_at=now, created_at=now,
                    dedupe_key=f"restart:{user_id}:{now.isoformat()}"[:200],
                )
                session.add(digest)
                session.flush()
                for row in held:
                    row.status, row.digest_id, row.next_attempt_at = S.DIGESTED, digest.id, None
            return len(rows)

    # -- the three steps ------------------------------------------------------------------------
    def dispatch_due(self, now: datetime | None = None) -> dict[str, int]:
        """Send everything due at ``now``; counts by outcome. Serialised within the process."""
        now = now or self.ctx.clock.now()
        counts = Counts()
        with self._busy:
            if not self._anything_due(now):  # the usual case: no write lock taken every second
                return counts.as_dict()
            jobs = self._claim(now, counts)
            to_send = [job for job in jobs if not job.outcome]
            if len(to_send) > 1:  # one slow webhook must not hold up everybody's SMS
                with ThreadPoolExecutor(max_workers=min(SEND_WORKERS, len(to_send)),
                                        thread_name_prefix="cityweave-send") as pool:
                    list(pool.map(self._send, to_send))
            elif to_send:
                self._send(to_send[0])
            self._record(jobs, now, counts)
        return counts.as_dict()

    def _anything_due(self, now: datetime) -> bool:
        with self.ctx.db.session() as session:
            return session.execute(
                select(Notification.id)
                .where(Notification.status == S.PENDING, Notification.next_attempt_at <= now)
                .limit(1)
            ).first() is not None

    def _window(self, now: datetime) -> tuple[datetime, datetime]:
        width = self.settings.rate_window.total_seconds()
        start = (now.timestamp() // width) * width
        begin = datetime.fromtimestamp(start, UTC)
        return begin, begin + self.settings.rate_window

    def _claim(self, now: datetime, counts: Counts) -> list[Job]:
        begin, end = self._window(now)
        jobs: list[Job] = []
        with self.ctx.db.session() as session:
            self.ctx.db.write_first(session)
            query = (select(Notification)
                     .where(Notification.status == S.PENDING, Notification.next_attempt_at <= now)
                     .order_by(Notification.next_attempt_at, Notification.id)
                     .limit(self.settings.batch))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = session.execute(query).scalars().all()
            if not rows:
                return []
            recent: dict[tuple[str, str], int] = {}
            claimed: list[Notification] = []
            for row in rows:
                if row.kind != DIGEST and row.user_id is not None:  # rule webhooks: no rate limit
                    key = (row.user_id, row.channel)
                    if key not in recent:
                        recent[key] = self._sent_since(session, row.user_id, row.channel, begin)
                    bypass = row.severity == "critical" and row.channel in CRITICAL_BYPASS
                    if recent[key] >= self.settings.rate_limit and not bypass:
                        digest = self._digest_for(session, row, begin, end, now)
                        row.status, row.digest_id, row.next_attempt_at = S.DIGESTED, digest.id, None
                        counts.digested += 1
                        continue
                    recent[key] += 1
                row.attempts += 1
                row.next_attempt_at = now + LEASE
                claimed.append(row)
            recipients = self._recipients(session, {row.user_id for row in claimed if row.user_id is not None})
            for row in claimed:
                if row.user_id is None:  # a rule's own webhook: the address is on the row
                    recipient: Recipient | None = Recipient(user_id="", locale=DEFAULT_LOCALE,
                                                            webhook_url=row.address)
                else:
                    recipient = recipients.get(row.user_id)
                if recipient is None:
                    jobs.append(Job(row.id, row.channel, None, None, "suppressed", "recipient inactive"))
                    continue
                jobs.append(Job(row.id, row.channel, recipient, self._message(session, row, recipient)))
        return jobs

    def _sent_since(self, session: Session, user_id: str, channel: str, since: datetime) -> int:
        return session.execute(
            select(func.count()).select_from(Notification).where(
                Notification.user_id == user_id, Notification.channel == channel,
                Notification.status == S.SENT, Notification.sent_at >= since)
        ).scalar_one()

    def _digest_for(self, session: Session, row: Notification, begin: datetime, end: datetime,
                    now: datetime) -> Notification:
        key = f"digest:{row.user_id}:{row.channel}:{int(begin.timestamp())}"
        digest = session.execute(select(Notification).where(Notification.dedupe_key == key)).scalar_one_or_none()
        if digest is None:
            digest = Notification(
                user_id=row.user_id, channel=row.channel, kind=DIGEST, severity=row.severity,
                subject_key="notify.digest.subject", body_key="notify.digest.body", params={},
                status=S.PENDING, attempts=0, next_attempt_at=end, created_at=now, dedupe_key=key,
            )
            session.add(digest)
            session.flush()
        else:
            digest.severity = most_severe((digest.severity, row.severity))
        return digest

    def _recipients(self, session: Session, user_ids: set[str]) -> dict[str, Recipient]:
        if not user_ids:
            return {}
        users = session.execute(select(User).where(User.id.in_(user_ids), User.is_active.is_(True))).scalars().all()
        person_ids = [u.person_id for u in users if u.person_id]
        phones: dict[str, str | None] = {}
        if person_ids:
            for person_id, blob in session.execute(select(Person.id, Person.phone_enc).where(Person.id.in_(person_ids))):
                try:
                    phones[person_id] = self.ctx.cipher.decrypt_optional(blob, PHONE)
                except DecryptionError:  # a value under another key: no phone rather than no dispatch
                    log.warning("cannot decrypt the phone number of person %s", person_id)
        prefs = {p.user_id: p for p in session.execute(
            select(NotificationPreference).where(NotificationPreference.user_id.in_(user_ids))).scalars()}
        return {
            u.id: Recipient(user_id=u.id, locale=u.locale if u.locale in LOCALES else DEFAULT_LOCALE,
                            display_name=u.display_name, phone=phones.get(u.person_id or ""),
                            webhook_url=prefs[u.id].webhook_url if u.id in prefs else None)
            for u in users
        }

    def _message(self, session: Session, row: Notification, recipient: Recipient) -> Message:
        locale = recipient.locale
        if row.kind == RULE_WEBHOOK:
            return self._rule_webhook_message(row, locale)
        params: dict[str, Any] = dict(row.params or {})
        data: dict[str, Any] = {k: _localise(v, locale) for k, v in params.items()}
        if row.kind == DIGEST:
            folded = session.execute(
                select(Notification).where(Notification.digest_id == row.id)
                .order_by(Notification.created_at, Notification.id)
            ).scalars().all()
            subjects = [render(f.subject_key, f.params or {}, locale) for f in folded]
            shown = "\n".join(f"- {s}" for s in subjects[:DIGEST_ITEMS])
            more = len(subjects) - DIGEST_ITEMS
            if more > 0:
                shown += "\n" + translate("notify.digest.more", locale, count=more)
            params = {"count": len(folded),
                      "minutes": int(self.settings.rate_window.total_seconds() // 60), "items": shown}
            data = {"count": len(folded), "items": subjects, "ids": [f.id for f in folded]}
        return Message(
            id=row.id, channel=row.channel, kind=row.kind, severity=row.severity,
            subject=render(row.subject_key, params, locale), body=render(row.body_key, params, locale),
            locale=locale, created_at=row.created_at, place_path=row.place_path, ref=row.ref, data=data,
        )

    def _rule_webhook_message(self, row: Notification, locale: str) -> Message:
        """The body of a rule's webhook: what fired, where and when, for a machine to act on (plus
        the message rendered in the installation's default language, for a human to read)."""
        stored: dict[str, Any] = dict(row.params or {})
        params = dict(stored.get("params") or {})
        text = render(row.subject_key, params, locale)
        payload = {"kind": RULE_WEBHOOK, "rule_key": stored.get("rule_key"),
                   "household_id": stored.get("household_id"),
                   "message_key": stored.get("message_key") or row.subject_key, "params": params,
                   "at": stored.get("at") or row.created_at.isoformat(), "device_id": stored.get("device_id"),
                   "place_path": row.place_path, "text": text, "locale": locale}
        return Message(id=row.id, channel=row.channel, kind=row.kind, severity=row.severity, subject=text,
                       body=text, locale=locale, created_at=row.created_at, place_path=row.place_path,
                       ref=row.ref, data=params, payload=payload)

    def _send(self, job: Job) -> None:
        channel = self.channels.get(job.channel)
        if channel is None:
            job.outcome, job.error = "failed", f"no channel {job.channel!r} is configured"
            return
        assert job.recipient is not None and job.message is not None
        try:
            channel.send(job.recipient, job.message)
            job.outcome = "sent"
        except NoAddress as exc:
            job.outcome, job.error = "suppressed", str(exc)
        except DeliveryError as exc:
            job.outcome, job.error = ("failed" if exc.permanent else "retry"), str(exc)
        except Exception as exc:  # a plugin's bug: retry, and say what it was
            log.exception("channel %s failed", job.channel)
            job.outcome, job.error = "retry", f"{type(exc).__name__}: {exc}"

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.settings.retry_base_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))

    def _record(self, jobs: list[Job], now: datetime, counts: Counts) -> None:
        if not jobs:
            return
        with self.ctx.db.session() as session:
            self.ctx.db.write_first(session)
            for job in jobs:
                row = session.get(Notification, job.row_id)
                if row is None or row.status is not S.PENDING:
                    continue
                row.last_error = job.error[:300] if job.error else None
                if job.outcome == "sent":
                    row.status, row.sent_at, row.next_attempt_at = S.SENT, now, None
                    counts.sent += 1
                elif job.outcome == "suppressed":
                    row.status, row.next_attempt_at = S.SUPPRESSED, None
                    counts.suppressed += 1
                elif job.outcome == "retry" and row.attempts < self.settings.max_attempts:
                    row.next_attempt_at = now + self.backoff(row.attempts)
                    counts.retried += 1
                else:
                    row.status, row.next_attempt_at = S.FAILED, None
                    counts.failed += 1
                    log.warning("notification %s on %s failed for good: %s", row.id, row.channel, job.error)
