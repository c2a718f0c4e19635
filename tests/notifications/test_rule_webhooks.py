"""A rule's own ``webhook`` action through the outbox, on SQLite and PostgreSQL: one row of no user
per firing, signed with the installation key, retried with backoff, never rate-limited or folded,
the SSRF guard before every POST, the URL's secrets kept out of logs, errors and the audit trail;
and the DNS pinning of every webhook POST (one lookup, the connection to a vetted address, the
name kept in the Host header and, for https, in the TLS SNI), against real local HTTP servers."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.notifications import outbox
from cityweave.notifications.channels import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryError,
    LogProvider,
    Message,
    PinnedUrl,
    Recipient,
    SmsChannel,
    WebhookChannel,
    pinned_request,
    verify,
)
from cityweave.notifications.hub import NotificationHub
from cityweave.notifications.models import Notification, NotificationStatus
from cityweave.notifications.notices import NoticeNotifier
from cityweave.rules.engine import RuleNotice
from tests.conftest import auth
from tests.world import World

HOUSEHOLD = "ca-b1-u1-101"
HOME = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"
SECRET = b"installation-webhook-secret"
S = NotificationStatus


def dispatcher(ctx: AppContext, *, allow_private: bool = True, **overrides: Any) -> outbox.Dispatcher:
    provider = LogProvider()
    channels = {"sms": SmsChannel(provider),
                "webhook": WebhookChannel(SECRET, timeout=2.0, allow_private=allow_private)}
    settings = outbox.Settings(**{"rate_limit": 3, "retry_base_s": 10.0, "max_attempts": 3, **overrides})
    return outbox.Dispatcher(ctx, channels, settings=settings)


def rows(ctx: AppContext, **where: Any) -> list[Notification]:
    with ctx.db.session() as session:
        query = select(Notification).order_by(Notification.id)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        return list(session.execute(query).scalars())


def notice(url: str, at: datetime, *, rule_key: str = "aut.leak-hook", params: dict[str, Any] | None = None,
           ) -> RuleNotice:
    return RuleNotice(rule_key=rule_key, household_id=HOUSEHOLD, place_path=HOME, audience=None,
                      message_key="rules.webhook", params=params or {"capability": "water_leak", "value": True},
                      at=at, device_id="dev-0000000000000001", webhook_url=url)


# -- a rule's webhook through the outbox ----------------------------------------------------------------
def test_a_rule_webhook_is_queued_signed_and_retried_with_backoff(
        ctx: AppContext, world: World, clock: ManualClock, receivers: Any, caplog: pytest.LogCaptureFixture) -> None:
    receiver = receivers([500, 200])
    url = receiver.url + "?token=s3cr3t-query"
    hub = NotificationHub()
    woken: list[int] = []
    notifier = NoticeNotifier(ctx, hub, on_enqueued=lambda: woken.append(1))
    fired = notice(url, clock.now())
    notifier(fired)
    notifier(fired)  # handed over twice: one row
    written = rows(ctx)
    assert len(written) == 1 and woken  # (the driver may not tell that the second wrote nothing)
    row = written[0]
    assert row.user_id is None and row.address == url and row.channel == "webhook"
    assert row.kind == outbox.RULE_WEBHOOK and row.ref == "aut.leak-hook" and row.status is S.PENDING
    assert hub._ring[-1].type == "notice" and "s3cr3t" not in json.dumps(hub._ring[-1].data)

    d = dispatcher(ctx, max_attempts=5)
    with caplog.at_level(logging.DEBUG):
        assert d.dispatch_due(clock.now())["retried"] == 1
        row = rows(ctx)[0]
        assert row.attempts == 1 and row.last_error == "HTTP 500"
        assert row.next_attempt_at == clock.now() + timedelta(seconds=10)
        clock.advance(seconds=10)
        assert d.dispatch_due(clock.now())["sent"] == 1
    assert "s3cr3t" not in caplog.text
    row = rows(ctx)[0]
    assert row.status is S.SENT and row.attempts == 2
    assert len(receiver.requests) == 2
    for headers, body, path in receiver.requests:
        assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert headers[DELIVERY_HEADER] == str(row.id)  # the same on the retry
        assert path == "/hook?token=s3cr3t-query"  # the URL as the rule gave it
        assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    payload = json.loads(receiver.requests[-1][1])
    assert payload["id"] == row.id and payload["kind"] == "rule_webhook"
    assert payload["rule_key"] == "aut.leak-hook" and payload["household_id"] == HOUSEHOLD
    assert payload["message_key"] == "rules.webhook"
    assert payload["params"] == {"capability": "water_leak", "value": True}
    assert datetime.fromisoformat(payload["at"]) == fired.at
    assert payload["device_id"] == "dev-0000000000000001" and payload["place_path"] == HOME
    assert payload["text"] == "规则调用了其 Webhook。"


def test_rule_webhooks_are_not_rate_limited_digested_or_folded(ctx: AppContext, world: World, clock: ManualClock,
                                                              receivers: Any) -> None:
    receiver = receivers()
    with ctx.db.session() as session:
        for n in range(5):
            outbox.enqueue_rule_webhook(session, url=receiver.url, rule_key="aut.x", household_id=HOUSEHOLD,
                                        message_key="rules.webhook", params={"n": n},
                                        at=clock.now() + timedelta(seconds=n), now=clock.now(), place_path=HOME)
    # A restart long after: a user's rows would become one digest; a rule's webhooks are sent as they are.
    clock.advance(hours=1)
    d = dispatcher(ctx, rate_limit=3)
    assert d.fold_stale(clock.now()) == 0
    assert d.dispatch_due(clock.now()) == {"sent": 5, "retried": 0, "failed": 0, "suppressed": 0, "digested": 0}
    assert sorted(json.loads(body)["params"]["n"] for _, body, _ in receiver.requests) == [0, 1, 2, 3, 4]
    assert all(r.status is S.SENT for r in rows(ctx))


def test_a_rule_webhook_to_an_internal_address_is_refused_before_the_post(
        ctx: AppContext, world: World, clock: ManualClock, receivers: Any) -> None:
    receiver = receivers()
    NoticeNotifier(ctx, NotificationHub())(notice(receiver.url + "?key=k3y", clock.now()))
    d = dispatcher(ctx, allow_private=False)  # the installation's default
    assert d.dispatch_due(clock.now())["failed"] == 1
    row = rows(ctx)[0]
    assert row.status is S.FAILED and receiver.requests == []
    assert "webhook URL refused" in (row.last_error or "") and "loopback" in (row.last_error or "")
    assert "k3y" not in (row.last_error or "")


def test_an_automation_webhook_fires_through_the_engine_and_its_url_is_not_audited(
        client: TestClient, world: World, ctx: AppContext, clock: ManualClock, receivers: Any) -> None:
    from cityweave.rules import automations
    from tests.rules.homes import furnish
    from tests.rules.support import engine_for, observe, reading

    receiver = receivers()
    devices = furnish(client, world)
    engine, _ = engine_for(ctx)
    unsubscribe = automations.attach(engine, ctx)
    try:
        rule = {"key": "motion-hook", "name": {"zh-CN": "有人就通知", "en": "Tell on motion"},
                "trigger": {"type": "state", "capability": "motion", "to": True},
                "actions": [{"type": "webhook", "url": receiver.url + "?sig=abc123secret"}]}
        r = client.post(f"/api/v1/households/{HOUSEHOLD}/automations", json=rule,
                        headers=auth(world.token(Role.RESIDENT)))
        assert r.status_code == 201, r.text
        motion = devices["motion"]["id"]
        observe(ctx, engine, reading(motion, "motion", False, clock.now()))
        clock.advance(seconds=5)
        observe(ctx, engine, reading(motion, "motion", True, clock.now()))
    finally:
        unsubscribe()
    queued = rows(ctx, kind=outbox.RULE_WEBHOOK)
    assert len(queued) == 1 and queued[0].user_id is None
    assert dispatcher(ctx).dispatch_due(clock.now())["sent"] == 1
    payload = json.loads(receiver.requests[0][1])
    assert payload["rule_key"].endswith("motion-hook") and payload["household_id"] == HOUSEHOLD
    assert payload["device_id"] == motion
    with ctx.db.session() as session:
        record = session.execute(select(AuditRecord).where(AuditRecord.action == "automation.create")).scalar_one()
    assert record.details["spec"]["actions"][0]["url"] == f"http://127.0.0.1:{receiver.port}/…"
    assert "abc123secret" not in json.dumps(record.details)


# -- DNS pinning ---------------------------------------------------------------------------------------
class Answers:
    """A resolver giving the next list of addresses on each call (the last one again after)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]


class LoopbackOnly(httpx.HTTPTransport):
    """A real transport that refuses (as a failed connect) anything but 127.0.0.0/8, so that a
    test never reaches the internet; records where each request was going."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        try:
            inside = ipaddress.ip_address(request.url.host).is_loopback
        except ValueError:
            inside = False  # a name: the client would resolve it again
        if not inside:
            raise httpx.ConnectError("not a loopback address (test transport)", request=request)
        return super().handle_request(request)


def _message() -> Message:
    return Message(id=7, channel="webhook", kind="alarm", severity="major", subject="s", body="b",
                   locale="en", created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_rebinding_name_cannot_move_the_post_to_an_internal_address(receivers: Any) -> None:
    """The guard's lookup says public, a second lookup would say 127.0.0.1: the POST goes to the
    public address the guard vetted (there is no second lookup), never to the local receiver."""
    local = receivers()
    resolver = Answers(["93.184.216.34"], ["127.0.0.1"])
    transport = LoopbackOnly()
    channel = WebhookChannel(SECRET, allow_private=False, resolve=resolver,
                             client=httpx.Client(transport=transport, follow_redirects=False))
    url = f"http://rebind.example:{local.port}/hook"
    with pytest.raises(DeliveryError) as failed:
        channel.send(Recipient(user_id="u", locale="en", webhook_url=url), _message())
    assert not failed.value.permanent  # an unreachable address: tried again later
    assert resolver.calls == ["rebind.example"]  # resolved once, for the check and the connect
    assert [r.url.host for r in transport.seen] == ["93.184.216.34"]
    assert transport.seen[0].headers["Host"] == f"rebind.example:{local.port}"
    assert local.requests == []
    # The next delivery looks again: now the name points inside, and the guard refuses it.
    with pytest.raises(DeliveryError, match="resolves to 127.0.0.1") as refused:
        channel.send(Recipient(user_id="u", locale="en", webhook_url=url), _message())
    assert refused.value.permanent and len(transport.seen) == 1 and local.requests == []


def test_the_post_goes_to_the_resolved_address_with_the_names_host_header(receivers: Any) -> None:
    first = receivers()
    try:
        second = receivers(host="127.0.0.2", port=first.port)
    except OSError:
        pytest.skip("127.0.0.2 is not available on this host")
    # Nothing listens on 127.0.0.3: the next vetted address is tried.
    resolver = Answers(["127.0.0.3", "127.0.0.1"], ["127.0.0.2"])
    channel = WebhookChannel(SECRET, allow_private=True, resolve=resolver, timeout=2.0)
    url = f"http://hooks.rebind.invalid:{first.port}/in?x=1"  # .invalid: no real DNS would answer
    try:
        channel.send(Recipient(user_id="u", locale="en", webhook_url=url), _message())
        assert len(first.requests) == 1 and second.requests == []
        headers, body, path = first.requests[0]
        assert headers["Host"] == f"hooks.rebind.invalid:{first.port}" and path == "/in?x=1"
        assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        # Each delivery resolves afresh, and uses what it resolved.
        channel.send(Recipient(user_id="u", locale="en", webhook_url=url), _message())
        assert len(first.requests) == 1 and len(second.requests) == 1
        assert second.requests[0][0]["Host"] == f"hooks.rebind.invalid:{first.port}"
        assert resolver.calls == ["hooks.rebind.invalid"] * 2
    finally:
        channel.close()


def test_an_https_post_connects_to_the_ip_with_the_name_in_host_sni_and_certificate_check() -> None:
    client = httpx.Client()
    try:
        pinned = PinnedUrl(url="https://Hooks.Example.com:8443/a/b?token=t", scheme="https",
                           host="hooks.example.com", port=8443,
                           addresses=(ipaddress.ip_address("93.184.216.34"),))
        request = pinned_request(client, pinned, pinned.addresses[0], content=b"{}",
                                 headers={"X-A": "1"}, timeout=3.0)
        assert str(request.url) == "https://93.184.216.34:8443/a/b?token=t"
        assert request.headers["Host"] == "hooks.example.com:8443"
        assert request.extensions["sni_hostname"] == "hooks.example.com"  # httpcore: SNI + hostname check
        assert request.extensions["timeout"]["connect"] == 3.0
        v6 = pinned_request(client, PinnedUrl("https://bücher.example/x", "https", "bücher.example", None, ()),
                            ipaddress.ip_address("2606:2800:220:1::1"), content=b"", headers={}, timeout=1.0)
        assert str(v6.url) == "https://[2606:2800:220:1::1]/x"
        assert v6.headers["Host"] == "xn--bcher-kva.example" and v6.extensions["sni_hostname"] == "xn--bcher-kva.example"
        plain = pinned_request(client, PinnedUrl("http://h.example/x", "http", "h.example", None, ()),
                               ipaddress.ip_address("93.184.216.34"), content=b"", headers={}, timeout=1.0)
        assert "sni_hostname" not in plain.extensions and plain.headers["Host"] == "h.example"
    finally:
        client.close()


def test_the_webhook_client_keeps_no_connections_between_names() -> None:
    """Connections are pooled by IP: one made for a name must not carry another name's request."""
    channel = WebhookChannel(SECRET)
    try:
        pool = channel._http()._transport._pool  # type: ignore[attr-defined]
        assert pool._max_keepalive_connections == 0
    finally:
        channel.close()
