"""/api/v1/users/me/notification-preferences over HTTP, on SQLite and PostgreSQL: defaults, own
choices and back, validation problems, the critical floor (SMS or voice), the webhook SSRF guard
(when saved and when sent), who may use it, the audit trail, and the outbox following the choice."""

from __future__ import annotations

import socket
import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.api.app import create_app
from cityweave.api.routers.notification_preferences import ChannelName, SeverityName
from cityweave.audit.models import AuditRecord
from cityweave.context import AppContext
from cityweave.notifications import outbox
from cityweave.notifications.channels import (
    DeliveryError,
    Message,
    Recipient,
    WebhookChannel,
    WebhookUrlRefused,
    check_webhook_url,
)
from cityweave.notifications.models import Notification, NotificationPreference
from cityweave.notifications.preferences import (
    CHANNELS,
    DEFAULT_CHANNELS,
    SEVERITIES,
    SEVERITY_RANK,
)
from tests.conftest import auth
from tests.world import World

URL = "/api/v1/users/me/notification-preferences"
PUBLIC = "http://93.184.216.34/hook"  # a literal: checked without DNS, never contacted here
HOME = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"


def me(world: World, role: Role = Role.RESIDENT) -> dict[str, str]:
    return auth(world.token(role))


def by_severity(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["severity"]: item for item in body["severities"]}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["type"].startswith("/problems/")
    return body


def outbox_channels(ctx: AppContext, user_id: str, severity: str, n: int) -> set[str]:
    """Enqueue one alarm message for ``user_id`` as the alarm adapter does; the channels written."""
    with ctx.db.session() as session:
        outbox.enqueue(session, user_ids=[user_id], severity=severity, kind="alarm",
                       subject_key="notify.alarm.raised.subject", body_key="notify.alarm.raised.body",
                       params={"severity": outbox.both_languages(f"notify.severity.{severity}"),
                               "title": {"zh-CN": "烟雾报警", "en": "Smoke alarm"}, "place": "101", "count": 1},
                       dedupe_key=f"prefs-test:{n}", now=ctx.clock.now(), place_path=HOME)
    with ctx.db.session() as session:
        rows = session.execute(select(Notification).where(Notification.user_id == user_id,
                                                          Notification.dedupe_key.like(f"prefs-test:{n}:%")))
        return {row.channel for row in rows.scalars()}


# -- reading, writing, resetting ------------------------------------------------------------------
def test_defaults_are_shown_with_what_is_available(client: TestClient, world: World) -> None:
    r = client.get(URL, headers=me(world))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == world.user_ids[Role.RESIDENT]
    assert body["webhook_url"] is None and body["updated_at"] is None
    assert body["available_channels"] == ["live", "webhook", "sms", "voice"]
    assert body["available_severities"] == ["critical", "major", "minor", "warning", "info"]
    assert body["critical_requires_one_of"] == ["sms", "voice"]
    choices = by_severity(body)
    assert set(choices) == set(DEFAULT_CHANNELS)
    for severity, default in DEFAULT_CHANNELS.items():
        assert choices[severity] == {"severity": severity, "channels": list(default),
                                     "default": list(default), "is_default": True}


def test_put_then_get_back_and_delete_restores_the_defaults(client: TestClient, world: World,
                                                            ctx: AppContext) -> None:
    headers = me(world)
    r = client.put(URL, headers=headers, json={
        "channels": {"critical": ["voice", "live", "voice"], "major": ["webhook", "live"], "info": []},
        "webhook_url": PUBLIC})
    assert r.status_code == 200, r.text
    for body in (r.json(), client.get(URL, headers=headers).json()):
        choices = by_severity(body)
        assert choices["critical"]["channels"] == ["voice", "live"] and not choices["critical"]["is_default"]
        assert choices["critical"]["default"] == ["sms", "voice", "live"]
        assert choices["major"] == {"severity": "major", "channels": ["webhook", "live"],
                                    "default": ["sms", "live"], "is_default": False}
        assert choices["info"]["channels"] == [] and not choices["info"]["is_default"]
        assert choices["minor"]["is_default"] and choices["minor"]["channels"] == ["live"]
        assert body["webhook_url"] == PUBLIC and body["updated_at"] is not None
    # A second PUT replaces the first: severities it does not name go back to the default.
    r = client.put(URL, headers=headers, json={"channels": {"minor": ["sms", "live"]}})
    assert r.status_code == 200, r.text
    choices = by_severity(r.json())
    assert choices["critical"]["is_default"] and choices["major"]["is_default"]
    assert choices["minor"]["channels"] == ["sms", "live"] and r.json()["webhook_url"] is None
    # DELETE: the defaults again, and the row is gone.
    assert client.delete(URL, headers=headers).status_code == 204
    body = client.get(URL, headers=headers).json()
    assert all(item["is_default"] for item in body["severities"]) and body["webhook_url"] is None
    with ctx.db.session() as session:
        assert session.get(NotificationPreference, world.user_ids[Role.RESIDENT]) is None
    assert client.delete(URL, headers=headers).status_code == 204  # idempotent


# -- validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "pointer"), [
    ({"channels": {"urgent": ["sms"]}}, "/channels/urgent"),
    ({"channels": {"major": ["pigeon"]}}, "/channels/major/0"),
    ({"channels": {"major": ["sms"]}, "colour": "blue"}, "/colour"),
    ({"channels": {"major": "sms"}}, "/channels/major"),
    ({"channels": {"major": ["webhook"]}}, "/webhook_url"),  # the webhook channel needs a URL
])
def test_unknown_severity_channel_or_field_is_a_422_problem(client: TestClient, world: World, ctx: AppContext,
                                                            body: dict[str, Any], pointer: str) -> None:
    problem = assert_problem(client.put(URL, headers=me(world), json=body), 422)
    assert any(e["pointer"].startswith(pointer) for e in problem["errors"]), problem
    with ctx.db.session() as session:
        assert session.get(NotificationPreference, world.user_ids[Role.RESIDENT]) is None


@pytest.mark.parametrize("critical", [[], ["live"], ["webhook", "live"]])
def test_critical_cannot_be_turned_down_below_sms_or_voice(client: TestClient, world: World, ctx: AppContext,
                                                           critical: list[str]) -> None:
    headers = me(world)
    r = client.put(URL, headers={**headers, "Accept-Language": "en"},
                   json={"channels": {"critical": critical}, "webhook_url": PUBLIC})
    problem = assert_problem(r, 422)
    assert "Critical notifications must keep SMS or voice" in problem["detail"]
    assert [e["pointer"] for e in problem["errors"]] == ["/channels/critical"]
    with ctx.db.session() as session:
        assert session.get(NotificationPreference, world.user_ids[Role.RESIDENT]) is None
    # Either one of the two is enough.
    for enough in (["sms"], ["voice"]):
        assert client.put(URL, headers=headers, json={"channels": {"critical": enough}}).status_code == 200


def test_openapi_lists_the_routes_and_the_same_values_as_the_domain(client: TestClient) -> None:
    assert set(typing.get_args(SeverityName)) == set(SEVERITY_RANK) == set(SEVERITIES)
    assert set(typing.get_args(ChannelName)) == set(CHANNELS)
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths[URL]) == {"get", "put", "delete"}


# -- the SSRF guard ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook",
    "http://10.1.2.3/hook",
    "http://192.168.1.10/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://100.64.0.1/hook",
    "http://localhost:9/hook",  # a name that resolves to loopback
    "ftp://93.184.216.34/hook",
    "file:///etc/passwd",
    "http://user:secret@93.184.216.34/hook",
    "http:///nohost",
])
def test_webhook_urls_to_internal_addresses_are_refused(client: TestClient, world: World, ctx: AppContext,
                                                        url: str) -> None:
    r = client.put(URL, headers=me(world), json={"channels": {"major": ["webhook", "live"]}, "webhook_url": url})
    problem = assert_problem(r, 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/webhook_url"], problem
    with ctx.db.session() as session:
        assert session.get(NotificationPreference, world.user_ids[Role.RESIDENT]) is None


def test_a_public_literal_is_accepted_without_dns(client: TestClient, world: World,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a literal address needs no DNS lookup")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for url in (PUBLIC, "https://93.184.216.34:8443/a?token=x", "https://[2606:2800:220:1:248:1893:25c8:1946]/"):
        r = client.put(URL, headers=me(world), json={"channels": {"major": ["webhook"]}, "webhook_url": url})
        assert r.status_code == 200, r.text
        assert r.json()["webhook_url"] == url


def test_the_allowance_setting_lets_private_addresses_through(ctx: AppContext, world: World) -> None:
    ctx.settings.notify_webhook_allow_private = True
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        r = client.put(URL, headers=me(world), json={"channels": {"major": ["webhook"]},
                                                     "webhook_url": "http://127.0.0.1:8080/hook"})
        assert r.status_code == 200, r.text
        # Credentials and other schemes stay refused.
        assert_problem(client.put(URL, headers=me(world), json={"webhook_url": "http://a:b@127.0.0.1/"}), 422)
        assert_problem(client.put(URL, headers=me(world), json={"webhook_url": "gopher://127.0.0.1/"}), 422)


def _resolving_to(address: str) -> Any:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
    return resolve


def test_the_guard_checks_every_address_a_name_resolves_to() -> None:
    check_webhook_url("https://hooks.example.com/x", resolve=_resolving_to("93.184.216.34"))
    for internal in ("127.0.0.1", "10.0.0.5", "fd00::1", "fe80::1"):
        with pytest.raises(WebhookUrlRefused, match="resolves to"):
            check_webhook_url("https://hooks.example.com/x", resolve=_resolving_to(internal))

    def mixed(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [*_resolving_to("93.184.216.34")(host, port), *_resolving_to("192.168.0.1")(host, port)]

    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("https://hooks.example.com/x", resolve=mixed)

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror("no such name")

    with pytest.raises(WebhookUrlRefused) as refused:
        check_webhook_url("https://nowhere.invalid/x", resolve=fails)
    assert refused.value.unresolved
    check_webhook_url("http://127.0.0.1/x", allow_private=True, resolve=fails)


def test_the_webhook_channel_refuses_internal_addresses_when_sending() -> None:
    """A name that resolved to a public address when saved may point inside later (DNS)."""
    message = Message(id=1, channel="webhook", kind="alarm", severity="critical", subject="s", body="b",
                      locale="en", created_at=datetime(2026, 1, 1, tzinfo=UTC))
    recipient = Recipient(user_id="u", locale="en", webhook_url="https://hooks.example.com/x")
    channel = WebhookChannel(b"k", resolve=_resolving_to("169.254.169.254"))
    with pytest.raises(DeliveryError, match="webhook URL refused") as refused:
        channel.send(recipient, message)
    assert refused.value.permanent

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror("temporary failure in name resolution")

    with pytest.raises(DeliveryError) as unresolved:
        WebhookChannel(b"k", resolve=fails).send(recipient, message)
    assert not unresolved.value.permanent  # DNS may answer again later: retried


def test_the_dispatcher_gives_webhook_channels_the_installation_setting(ctx: AppContext) -> None:
    unset, explicit = WebhookChannel(b"k"), WebhookChannel(b"k", allow_private=False)
    outbox.Dispatcher(ctx, {"webhook": unset})
    assert unset.allow_private is False
    ctx.settings.notify_webhook_allow_private = True
    unset = WebhookChannel(b"k")
    outbox.Dispatcher(ctx, {"webhook": unset})
    outbox.Dispatcher(ctx, {"webhook": explicit})
    assert unset.allow_private is True and explicit.allow_private is False


# -- who may ------------------------------------------------------------------------------------------
def test_without_credentials_is_401(client: TestClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = client.request(method, URL, json={"channels": {}} if method == "PUT" else None)
        assert_problem(r, 401)


@pytest.mark.parametrize("role", list(Role))
def test_every_role_edits_only_its_own(client: TestClient, world: World, ctx: AppContext, role: Role) -> None:
    resident = world.user_ids[Role.RESIDENT]
    with ctx.db.session() as session:
        before = session.get(NotificationPreference, resident)
        assert before is None
    r = client.put(URL, headers=me(world, role), json={"channels": {"info": []}})
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == world.user_ids[role]
    with ctx.db.session() as session:
        rows = session.execute(select(NotificationPreference)).scalars().all()
        assert [row.user_id for row in rows] == [world.user_ids[role]]
    # No route reaches someone else's preferences, not even for staff.
    other = client.put(f"/api/v1/users/{resident}/notification-preferences", headers=me(world, role),
                       json={"channels": {"critical": ["live"]}})
    assert other.status_code in (404, 405)


def test_api_keys_and_service_accounts_are_refused(client: TestClient, world: World) -> None:
    admin = auth(world.token(Role.PLATFORM_ADMIN))
    r = client.post("/api/v1/users", json={
        "username": "vendor-bridge", "display_name": "Vendor bridge", "is_service_account": True,
        "grants": [{"role": "property_staff", "place_id": "ca"}]}, headers=admin)
    assert r.status_code == 201, r.text
    key = client.post(f"/api/v1/users/{r.json()['id']}/api-keys", json={"name": "bridge"},
                      headers=admin).json()["key"]
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, URL, headers={"X-API-Key": key},
                                  json={"channels": {}} if method == "PUT" else None)
        assert_problem(response, 403)


# -- audit and the outbox -------------------------------------------------------------------------------
def test_changes_are_audited_without_the_webhook_secret(client: TestClient, world: World, ctx: AppContext) -> None:
    user = world.user_ids[Role.RESIDENT]
    secret_url = "https://93.184.216.34:8443/services/T0/B0/pathsecret?token=querysecret#frag"
    r = client.put(URL, headers=me(world), json={"channels": {"major": ["webhook", "sms"]}, "webhook_url": secret_url})
    assert r.status_code == 200, r.text
    assert client.delete(URL, headers=me(world)).status_code == 204
    with ctx.db.session() as session:
        records = session.execute(select(AuditRecord).where(AuditRecord.action.like("notification_preferences.%"))
                                  .order_by(AuditRecord.seq)).scalars().all()
        assert [(a.action, a.actor_id, a.object_kind, a.object_id) for a in records] == [
            ("notification_preferences.update", user, "user", user),
            ("notification_preferences.reset", user, "user", user)]
        details = records[0].details
        assert details["channels"] == {"major": ["webhook", "sms"]}
        assert details["webhook_url"] == "https://93.184.216.34:8443/…"
        assert "querysecret" not in str(details) and "pathsecret" not in str(details)
    # A refused change writes nothing.
    client.put(URL, headers=me(world), json={"channels": {"critical": []}})
    with ctx.db.session() as session:
        count = len(session.execute(select(AuditRecord).where(
            AuditRecord.action.like("notification_preferences.%"))).scalars().all())
    assert count == 2


def test_the_outbox_follows_the_choice(client: TestClient, world: World, ctx: AppContext) -> None:
    user = world.user_ids[Role.RESIDENT]
    assert outbox_channels(ctx, user, "critical", 1) == {"sms", "voice"}
    assert outbox_channels(ctx, user, "major", 2) == {"sms"}
    r = client.put(URL, headers=me(world), json={
        "channels": {"critical": ["voice", "webhook", "live"], "major": ["webhook"], "minor": ["sms"]},
        "webhook_url": PUBLIC})
    assert r.status_code == 200, r.text
    assert outbox_channels(ctx, user, "critical", 3) == {"voice", "webhook"}
    assert outbox_channels(ctx, user, "major", 4) == {"webhook"}
    assert outbox_channels(ctx, user, "minor", 5) == {"sms"}
    assert outbox_channels(ctx, user, "info", 6) == set()
    assert client.delete(URL, headers=me(world)).status_code == 204
    assert outbox_channels(ctx, user, "critical", 7) == {"sms", "voice"}
    assert outbox_channels(ctx, user, "major", 8) == {"sms"}


def test_refusals_are_worded_in_the_callers_language(client: TestClient, world: World) -> None:
    body = {"channels": {"critical": ["live"], "major": ["webhook"]}, "webhook_url": "http://127.0.0.1:8080/hook"}
    zh = assert_problem(client.put(URL, headers={**me(world), "Accept-Language": "zh-CN,zh;q=0.9"}, json=body), 422)
    assert zh["detail"] == ("紧急通知必须保留短信或语音电话：紧急级别请至少选择 sms 或 voice 之一，"
                            "确保火灾、燃气等报警一定能通知到您。")
    details = {e["pointer"]: e["detail"] for e in zh["errors"]}
    assert details["/channels/critical"] == zh["detail"]
    assert details["/webhook_url"] == "Webhook 主机“127.0.0.1”是回环地址；Webhook 只能发往公网地址"
    en = assert_problem(client.put(URL, headers={**me(world), "Accept-Language": "en"}, json=body), 422)
    assert {e["pointer"]: e["detail"] for e in en["errors"]}["/webhook_url"] == (
        "the webhook host '127.0.0.1' is a loopback address; webhooks go to public addresses only")
    no_url = assert_problem(client.put(URL, headers=me(world), json={"channels": {"major": ["webhook"]}}), 422)
    assert no_url["detail"] == "通知偏好设置有误。"  # no Accept-Language: the default, zh-CN
    assert no_url["errors"][0]["detail"] == "选择 Webhook 渠道时必须填写 Webhook 地址"
