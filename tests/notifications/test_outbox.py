"""The outbox on SQLite and PostgreSQL: recipients by audience, the alarm adapter, SMS/voice through
the logging provider, the signed webhook against a real local HTTP server (retries, backoff,
failure), the rate limit and its digest with a manual clock, and no storm after a restart."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from cityweave.accounts.models import Role, User
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.notifications import outbox, recipients
from cityweave.notifications.alarms import AlarmNotifier, enqueue_alarm
from cityweave.notifications.channels import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LogProvider,
    SmsChannel,
    VoiceChannel,
    WebhookChannel,
    verify,
)
from cityweave.notifications.hub import NotificationHub
from cityweave.notifications.models import Notification, NotificationStatus
from cityweave.notifications.preferences import set_preferences
from tests.world import World

HOUSEHOLD = "ca-b1-u1-101"
HOME = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"
OTHER_GRID_HOME = "/tc/tc-d1/tc-d1-s1/ca/ca-g2/ca-b2/ca-b2-u1/ca-b2-u1-201/"
GATE = "/tc/tc-d1/tc-d1-s1/ca/ca-gate1/"
SECRET = b"test-webhook-secret"
S = NotificationStatus


def change(kind: str = "raised", *, severity: str = "critical", audience: str | None = None,
           at_clock: ManualClock, alarm_id: str = "alm-0000000000000001", path: str = HOME,
           place_id: str = HOUSEHOLD) -> Any:
    from cityweave.alarms.events import AlarmChange
    from cityweave.alarms.models import AlarmStatus, Severity

    return AlarmChange(
        alarm_id=alarm_id, cause_key=f"fire:{alarm_id}", kind="fire", severity=Severity(severity),
        status=AlarmStatus.RAISED, count=1, place_path=path, place_id=place_id, at=at_clock.now(),
        change=kind, audience=audience, title={"zh-CN": "烟雾报警", "en": "Smoke alarm"},
    )


def dispatcher(ctx: AppContext, provider: LogProvider | None = None, **overrides: Any) -> outbox.Dispatcher:
    provider = provider or LogProvider()
    channels = {"sms": SmsChannel(provider), "voice": VoiceChannel(provider),
                "webhook": WebhookChannel(SECRET, timeout=2.0, allow_private=True)}  # receivers on 127.0.0.1
    settings = outbox.Settings(**{"rate_limit": 3, "retry_base_s": 10.0, "max_attempts": 3, **overrides})
    return outbox.Dispatcher(ctx, channels, settings=settings)


def rows(ctx: AppContext, **where: Any) -> list[Notification]:
    with ctx.db.session() as session:
        query = select(Notification).order_by(Notification.id)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        return list(session.execute(query).scalars())


def message(ctx: AppContext, user_id: str, n: int, *, severity: str = "major", channel_hint: str = "m") -> None:
    with ctx.db.session() as session:
        outbox.enqueue(session, user_ids=[user_id], severity=severity, kind="alarm",
                       subject_key="notify.alarm.raised.subject", body_key="notify.alarm.raised.body",
                       params={"severity": outbox.both_languages(f"notify.severity.{severity}"),
                               "title": {"zh-CN": f"告警 {n}", "en": f"Alarm {n}"}, "place": "101",
                               "count": 1},
                       dedupe_key=f"test:{channel_hint}:{n}", now=ctx.clock.now(), place_path=HOME)


# -- recipients ---------------------------------------------------------------------------------
def test_users_for_each_audience(ctx: AppContext, world: World) -> None:
    ids = world.user_ids
    family = sorted([ids[Role.RESIDENT], world.household_user[HOUSEHOLD]])
    with ctx.db.session() as session:
        assert recipients.users_for(session, HOME, "family") == family
        assert recipients.users_for(session, HOME, "grid_worker") == [ids[Role.GRID_WORKER]]
        assert recipients.users_for(session, OTHER_GRID_HOME, "grid_worker") == []  # grid_a is ca-g1's
        assert recipients.users_for(session, HOME, "property_staff") == [ids[Role.PROPERTY_STAFF]]
        assert recipients.users_for(session, HOME, "community_staff") == sorted(
            [ids[Role.PROPERTY_STAFF], ids[Role.COMMUNITY_ADMIN]])
        assert recipients.users_for(session, GATE, "family") == []  # a facility has no family
        # Only active users.
        session.execute(update(User).where(User.id == ids[Role.RESIDENT]).values(is_active=False))
        assert recipients.users_for(session, HOME, "family") == [world.household_user[HOUSEHOLD]]
        with pytest.raises(ValueError, match="unknown audience"):
            recipients.users_for(session, HOME, "everybody")


# -- the alarm adapter ----------------------------------------------------------------------------
def test_alarm_changes_become_live_events_and_outbox_rows(ctx: AppContext, world: World, clock: ManualClock) -> None:
    hub = NotificationHub()
    woken: list[int] = []
    notifier = AlarmNotifier(ctx, hub, on_enqueued=lambda: woken.append(1))
    raised = change("raised", audience=None, at_clock=clock)
    notifier(raised)
    notifier(raised)  # handed over twice (bus and alarm_listeners): handled once
    with ctx.db.session() as session:  # and the outbox would not write it twice anyway
        enqueue_alarm(session, raised, clock.now())
    family = {world.user_ids[Role.RESIDENT], world.household_user[HOUSEHOLD]}
    staff = {world.user_ids[Role.PROPERTY_STAFF]}
    written = rows(ctx)
    assert {(r.user_id, r.channel) for r in written} == {(u, c) for u in family | staff for c in ("sms", "voice")}
    assert len(written) == 6 and woken
    assert all(r.status is S.PENDING and r.ref == raised.alarm_id and r.place_path == HOME for r in written)
    # Escalation to the grid worker; a repeat only goes live.
    clock.advance(minutes=5)
    notifier(change("escalated", audience="grid_worker", at_clock=clock))
    notifier(change("repeated", at_clock=clock))
    grid = rows(ctx, user_id=world.user_ids[Role.GRID_WORKER])
    assert {(r.channel, r.subject_key) for r in grid} == {
        ("sms", "notify.alarm.escalated.subject"), ("voice", "notify.alarm.escalated.subject")}
    assert len(rows(ctx)) == 8
    assert [e.data["change"] for e in list(hub._ring)] == ["raised", "escalated", "repeated"]
    assert all(e.type == "alarm" and e.place_path == HOME for e in hub._ring)


def test_a_minor_alarm_goes_live_only_and_a_chain_starts_with_its_first_audience(
        ctx: AppContext, world: World, clock: ManualClock) -> None:
    with ctx.db.session() as session:
        assert enqueue_alarm(session, change(severity="minor", at_clock=clock), clock.now()) == 0
        enqueue_alarm(session, change(severity="major", audience="family", at_clock=clock,
                                      alarm_id="alm-2"), clock.now())
    assert {(r.user_id, r.channel) for r in rows(ctx)} == {
        (world.user_ids[Role.RESIDENT], "sms"), (world.household_user[HOUSEHOLD], "sms")}


# -- SMS / voice through the logging provider ---------------------------------------------------
def test_sms_and_voice_are_rendered_in_the_recipients_language(ctx: AppContext, world: World,
                                                               clock: ManualClock) -> None:
    provider = LogProvider()
    with ctx.db.session() as session:
        session.execute(update(User).where(User.id == world.user_ids[Role.PROPERTY_STAFF]).values(locale="en"))
        enqueue_alarm(session, change(at_clock=clock), clock.now())
    counts = dispatcher(ctx, provider).dispatch_due(clock.now())
    # resident_a has a person with a phone; res-… and property_a have none: suppressed, not failed.
    assert counts == {"sent": 2, "retried": 0, "failed": 0, "suppressed": 4, "digested": 0}
    assert sorted((kind, phone) for kind, phone, _ in provider.sent) == [
        ("sms", "13800001101"), ("voice", "13800001101")]
    sms_text = next(text for kind, _, text in provider.sent if kind == "sms")
    assert sms_text.startswith("【紧急】烟雾报警") and "地点 ca-b1-u1-101" in sms_text
    suppressed = rows(ctx, status=S.SUPPRESSED)
    assert {r.last_error for r in suppressed} == {"no phone number"}
    # English for the English-speaking recipient, rendered at send time.
    with ctx.db.session() as session:
        session.execute(update(User).where(User.id == world.user_ids[Role.RESIDENT]).values(locale="en"))
    clock.advance(minutes=1)
    with ctx.db.session() as session:
        enqueue_alarm(session, change(at_clock=clock, alarm_id="alm-3"), clock.now())
    dispatcher(ctx, provider).dispatch_due(clock.now())
    assert [text.split("\n")[0] for _, _, text in list(provider.sent)[-2:]] == ["[Critical] Smoke alarm"] * 2


# -- rate limit and digest ------------------------------------------------------------------------
def test_rate_limit_folds_the_excess_into_one_digest_sent_when_the_window_ends(
        ctx: AppContext, world: World, clock: ManualClock) -> None:
    provider = LogProvider()
    user = world.user_ids[Role.RESIDENT]
    clock.advance(minutes=2)  # inside the 00:00–00:10 window
    for n in range(7):
        message(ctx, user, n)  # major → sms
    d = dispatcher(ctx, provider)
    assert d.dispatch_due(clock.now()) == {"sent": 3, "retried": 0, "failed": 0, "suppressed": 0, "digested": 4}
    digest = rows(ctx, kind="digest")
    assert len(digest) == 1 and digest[0].status is S.PENDING
    assert digest[0].next_attempt_at == clock.now().replace(minute=10, second=0)
    # More in the same window: the same digest; a critical SMS bypasses the limit.
    clock.advance(minutes=3)
    message(ctx, user, 7)
    message(ctx, user, 8, severity="critical")
    assert d.dispatch_due(clock.now())["digested"] == 1
    assert len(rows(ctx, kind="digest")) == 1
    assert sum(1 for kind, _, _ in provider.sent if kind == "sms") == 4  # 3 + the critical one
    assert [t for k, _, t in provider.sent if k == "voice"]  # critical also calls
    # Nothing more before the window ends; then the one digest, listing what it holds.
    assert d.dispatch_due(clock.now())["sent"] == 0
    clock.set(digest[0].next_attempt_at)
    before = len(provider.sent)
    assert d.dispatch_due(clock.now())["sent"] == 1
    assert len(provider.sent) == before + 1
    text = provider.sent[-1][2]
    assert text.startswith("另有 5 条通知") and "告警 3" in text and "告警 7" in text and "告警 8" not in text
    assert rows(ctx, kind="digest")[0].status is S.SENT
    assert len(rows(ctx, status=S.DIGESTED)) == 5


# -- restart --------------------------------------------------------------------------------------
def test_after_a_restart_stale_pending_rows_become_one_digest_per_recipient(
        ctx: AppContext, world: World, clock: ManualClock) -> None:
    provider = LogProvider()
    resident, other = world.user_ids[Role.RESIDENT], world.user_ids[Role.GRID_WORKER]
    for n in range(12):
        message(ctx, resident, n)
    with ctx.db.session() as session:
        outbox.enqueue(session, user_ids=[other], severity="critical", kind="alarm",
                       subject_key="notify.alarm.raised.subject", body_key="notify.alarm.raised.body",
                       params={"severity": "!", "title": "x", "place": "p", "count": 1},
                       dedupe_key="test:other", now=clock.now())
    clock.advance(minutes=30)  # the service was down
    message(ctx, resident, 99)  # fresh: sent as usual
    d = dispatcher(ctx, provider)
    assert d.fold_stale(clock.now()) == 12 + 2  # other: sms + voice
    digests = rows(ctx, kind="digest")
    assert sorted((r.user_id, r.channel) for r in digests) == sorted([(resident, "sms"), (other, "sms")])
    counts = d.dispatch_due(clock.now())
    # One digest per recipient (the grid worker has no phone: suppressed) + the fresh message.
    assert counts["sent"] == 2 and counts["suppressed"] == 1
    texts = [t for _, _, t in provider.sent]
    assert sum(t.startswith("服务中断期间有 12 条通知未发送") for t in texts) == 1
    assert any("告警 99" in t for t in texts)


def test_start_folds_stale_rows_before_the_first_dispatch(ctx: AppContext, world: World,
                                                          clock: ManualClock) -> None:
    for n in range(3):
        message(ctx, world.user_ids[Role.RESIDENT], n)
    clock.advance(hours=2)
    provider = LogProvider()
    d = dispatcher(ctx, provider)
    d.interval = 0.05
    d.start()
    try:
        deadline = time.monotonic() + 10
        while not provider.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        d.stop()
    assert len(provider.sent) == 1 and provider.sent[0][2].startswith("服务中断期间有 3 条通知")


# -- webhook against a real HTTP server -----------------------------------------------------------
def _webhook_user(ctx: AppContext, world: World, url: str) -> str:
    user = world.user_ids[Role.COMMUNITY_ADMIN]
    with ctx.db.session() as session:
        set_preferences(session, user, channels={"major": ["webhook", "live"]}, webhook_url=url, now=ctx.clock.now(),
                        allow_private=True)
    return user


def test_webhook_is_signed_and_retried_with_backoff_until_it_succeeds(
        ctx: AppContext, world: World, clock: ManualClock, receivers: Any) -> None:
    receiver = receivers([500, 503, 200])
    user = _webhook_user(ctx, world, receiver.url)
    message(ctx, user, 1)
    d = dispatcher(ctx, max_attempts=5)
    assert d.dispatch_due(clock.now())["retried"] == 1
    row = rows(ctx, user_id=user)[0]
    assert row.attempts == 1 and row.last_error == "HTTP 500"
    assert row.next_attempt_at == clock.now() + timedelta(seconds=10)
    assert d.dispatch_due(clock.now())["sent"] == 0  # not due yet
    clock.advance(seconds=10)
    d.dispatch_due(clock.now())
    assert rows(ctx, user_id=user)[0].next_attempt_at == clock.now() + timedelta(seconds=20)  # doubled
    clock.advance(seconds=20)
    assert d.dispatch_due(clock.now())["sent"] == 1
    row = rows(ctx, user_id=user)[0]
    assert row.status is S.SENT and row.attempts == 3 and row.sent_at == clock.now()
    assert len(receiver.requests) == 3
    for headers, body, _path in receiver.requests:
        assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify(b"another secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert headers[DELIVERY_HEADER] == str(row.id)  # the same id on every retry
    payload = json.loads(receiver.requests[-1][1])
    assert payload["kind"] == "alarm" and payload["severity"] == "major"
    assert payload["subject"] == "【重要】告警 1" and payload["place_path"] == HOME


def test_webhook_gives_up_after_max_attempts_and_on_permanent_refusal(
        ctx: AppContext, world: World, clock: ManualClock, receivers: Any) -> None:
    down = receivers([500] * 10)
    user = _webhook_user(ctx, world, down.url)
    message(ctx, user, 1)
    d = dispatcher(ctx, max_attempts=3)
    for _ in range(3):
        d.dispatch_due(clock.now())
        clock.advance(minutes=5)
    row = rows(ctx, user_id=user)[0]
    assert row.status is S.FAILED and row.attempts == 3 and len(down.requests) == 3
    # 410 Gone: no point in retrying.
    gone = receivers([410])
    with ctx.db.session() as session:
        set_preferences(session, user, channels={"major": ["webhook"]}, webhook_url=gone.url, now=clock.now(),
                        allow_private=True)
    message(ctx, user, 2)
    assert d.dispatch_due(clock.now())["failed"] == 1 and len(gone.requests) == 1


def test_webhook_timeout_and_refused_connection_are_retried(
        ctx: AppContext, world: World, clock: ManualClock, receivers: Any) -> None:
    slow = receivers([200], delay=3.0)
    user = _webhook_user(ctx, world, slow.url)
    message(ctx, user, 1)
    d = dispatcher(ctx)
    started = time.monotonic()
    assert d.dispatch_due(clock.now())["retried"] == 1
    assert time.monotonic() - started < 2.9  # the 2 s timeout, not the server's 3 s
    assert "Timeout" in (rows(ctx, user_id=user)[0].last_error or "")
    with ctx.db.session() as session:
        set_preferences(session, user, channels={"major": ["webhook"]},
                        webhook_url="http://127.0.0.1:9/nothing-listens", now=clock.now(), allow_private=True)
    clock.advance(minutes=1)
    assert d.dispatch_due(clock.now())["retried"] == 1
    assert "Connect" in (rows(ctx, user_id=user)[0].last_error or "")


# -- the bus: alarm changes from the rule engine, rule notices --------------------------------------
def test_changes_and_notices_on_the_bus_reach_the_hub_and_the_outbox(ctx: AppContext, world: World,
                                                                    clock: ManualClock) -> None:
    from cityweave.api.app import create_app
    from cityweave.rules.engine import RuleNotice

    first = create_app(ctx)
    app = create_app(ctx)  # a second app on the same context takes over the bus
    hub: NotificationHub = app.state.notification_hub
    assert app.state.alarm_listeners == [app.state.notifications.alarm_listener]
    raised = change(at_clock=clock)
    ctx.bus.publish(raised)
    for listener in app.state.alarm_listeners:  # the alarms API hands the same change over too
        listener(raised)
    assert [e.data["change"] for e in hub._ring] == ["raised"]
    assert not first.state.notification_hub._ring
    assert len(rows(ctx, ref=raised.alarm_id)) == 6
    # A rule notice: live for the household; by default no SMS (its alarm already sends them)...
    notice = RuleNotice(rule_key="builtin.doorbell", household_id=HOUSEHOLD, place_path=HOME, audience="family",
                        message_key="notify.alarm.raised.subject", params={"severity": "!", "title": "门铃"},
                        at=clock.now())
    ctx.bus.publish(notice)
    assert hub._ring[-1].type == "notice" and hub._ring[-1].data["rule_key"] == "builtin.doorbell"
    assert rows(ctx, kind="notice") == []
    # ... unless the user asked for minor messages by SMS.
    with ctx.db.session() as session:
        set_preferences(session, world.user_ids[Role.RESIDENT], channels={"minor": ["sms", "live"]},
                        webhook_url=None, now=clock.now())
    clock.advance(seconds=1)
    ctx.bus.publish(RuleNotice(rule_key="builtin.doorbell", household_id=HOUSEHOLD, place_path=HOME,
                               audience=None, message_key="notify.alarm.raised.subject",
                               params={"severity": "!", "title": "门铃"}, at=clock.now()))
    notices = rows(ctx, kind="notice")
    assert [(r.user_id, r.channel, r.severity) for r in notices] == [(world.user_ids[Role.RESIDENT], "sms", "minor")]
    app.state.notifications.stop()
    ctx.bus.publish(change(at_clock=clock, alarm_id="alm-after-stop"))
    assert rows(ctx, ref="alm-after-stop") == []


def test_a_slow_webhook_does_not_hold_up_other_deliveries(ctx: AppContext, world: World, clock: ManualClock,
                                                          receivers: Any) -> None:
    slow = receivers([200], delay=1.5)
    webhook_user = _webhook_user(ctx, world, slow.url)
    message(ctx, webhook_user, 1)
    message(ctx, world.user_ids[Role.RESIDENT], 2, channel_hint="sms")

    class Timed(LogProvider):
        def send_sms(self, phone: str, text: str) -> None:
            sent_at.append(time.monotonic())
            super().send_sms(phone, text)

    sent_at: list[float] = []
    started = time.monotonic()
    counts = dispatcher(ctx, Timed()).dispatch_due(clock.now())
    assert counts["sent"] == 2 and len(slow.requests) == 1
    assert sent_at and sent_at[0] - started < 1.0 < time.monotonic() - started


def test_prune_deletes_finished_rows_after_the_retention_period(ctx: AppContext, world: World,
                                                                clock: ManualClock) -> None:
    user = world.user_ids[Role.RESIDENT]
    for n in range(5):
        message(ctx, user, n)  # 3 sent, 2 folded into a digest (rate limit 3)
    d = dispatcher(ctx, retention=timedelta(days=90))
    d.dispatch_due(clock.now())
    clock.advance(days=30)
    message(ctx, user, 99)  # recent: kept
    assert d.prune(clock.now()) == 0
    clock.advance(days=61)
    with ctx.db.session() as session:  # a row still pending after all that time stays too
        session.execute(update(Notification).where(Notification.dedupe_key.like("test:m:99:%"))
                        .values(next_attempt_at=clock.now() + timedelta(days=1)))
    # The old digest (still pending: due at its window's end) is kept; what it folded goes.
    assert d.prune(clock.now(), chunk=2) == 5
    assert sorted((r.kind, r.status) for r in rows(ctx)) == [("alarm", S.PENDING), ("digest", S.PENDING)]
