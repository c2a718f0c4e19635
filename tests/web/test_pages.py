"""The pages over HTTP: sign-in, cookies, CSRF, CSP, language and text size, sign-out everywhere."""

from __future__ import annotations

import re

from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.alarms.models import Alarm
from cityweave.audit.models import AuditRecord
from tests.conftest import auth
from tests.world import PASSWORD, ROLE_USERS

RESIDENT = ROLE_USERS[Role.RESIDENT][0]
ADMIN = ROLE_USERS[Role.COMMUNITY_ADMIN][0]


def sign_in(client, username: str, password: str = PASSWORD):
    return client.post("/signin", data={"username": username, "password": password}, follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)


def test_sign_in_page_is_chinese_by_default_with_a_strict_policy(client):
    page = client.get("/signin")
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    assert "登录" in page.text and "用户名" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "inline script would break the CSP"
    assert not re.search(r"\sstyle=", page.text), "inline style would break the CSP"
    # The API keeps its JSON answers free of page headers.
    assert "content-security-policy" not in client.get("/healthz").headers


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client, ctx):
    answer = sign_in(client, RESIDENT, "not-the-password")
    assert answer.status_code == 401 and "用户名或密码错误" in answer.text
    assert "cw_session" not in answer.headers.get("set-cookie", "")
    unknown = sign_in(client, "nobody-here", "whatever")
    assert unknown.status_code == 401 and "用户名或密码错误" in unknown.text
    with ctx.db.session() as session:
        outcomes = session.execute(select(AuditRecord.outcome).where(AuditRecord.action == "auth.login")).scalars().all()
    assert outcomes.count("failure") >= 2


def test_resident_signs_in_to_their_home_with_a_safe_cookie(client, world):
    answer = sign_in(client, RESIDENT)
    assert answer.status_code == 303 and answer.headers["location"] == "/home"
    cookie = answer.headers["set-cookie"]
    assert "cw_session=cws_" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP in the test; Secure whenever served over TLS
    home = client.get("/home")
    assert home.status_code == 200 and "我的家" in home.text and "紧急呼叫" in home.text
    assert "ca-b1-u1-101" not in client.get("/home").url.path  # nothing personal in URLs
    assert client.get("/", follow_redirects=False).headers["location"] == "/home"
    assert client.get("/console", follow_redirects=False).headers["location"] == "/home"


def test_pages_need_a_session_and_come_back_after_sign_in(client):
    answer = client.get("/console", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?next=/console"
    after = client.post("/signin", data={"username": ADMIN, "password": PASSWORD, "next": "/console"},
                        follow_redirects=False)
    assert after.headers["location"] == "/console"
    evil = client.post("/signin", data={"username": ADMIN, "password": PASSWORD, "next": "//evil.example/x"},
                       follow_redirects=False)
    assert evil.headers["location"] == "/console"  # never to another site


def test_emergency_call_needs_the_csrf_token(client, ctx):
    sign_in(client, RESIDENT)
    home = client.get("/home").text
    refused = client.post("/home/emergency", data={"household_id": "ca-b1-u1-101"})
    assert refused.status_code == 403
    wrong = client.post("/home/emergency", data={"household_id": "ca-b1-u1-101", "csrf": "0" * 64})
    assert wrong.status_code == 403
    sent = client.post("/home/emergency", data={"household_id": "ca-b1-u1-101", "csrf": csrf_of(home)})
    assert sent.status_code == 200 and "已发出求助" in sent.text
    with ctx.db.session() as session:
        alarm = session.execute(select(Alarm).where(Alarm.kind == "emergency_call")).scalar_one()
        assert alarm.place_id == "ca-b1-u1-101" and alarm.severity.value == "critical"
    # Someone else's household: refused, nothing raised there.
    other = client.post("/home/emergency", data={"household_id": "cb-b1-u1-101", "csrf": csrf_of(home)})
    assert other.status_code == 400


def test_console_shows_the_overview_to_staff(client, world):
    sign_in(client, ADMIN)
    page = client.get("/console")
    assert page.status_code == 200 and "运行总览" in page.text and "紧急告警" in page.text
    fragment = client.get("/console/overview")
    assert fragment.status_code == 200 and 'id="figures"' in fragment.text


def test_language_and_large_text_are_remembered(client):
    answer = client.post("/preferences", data={"lang": "en", "back": "/signin"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    page = client.get("/signin")
    assert '<html lang="en">' in page.text and "Sign in" in page.text and "Username" in page.text
    client.post("/preferences", data={"large": "1", "back": "/signin"})
    assert 'class="large' in client.get("/signin").text
    client.post("/preferences", data={"lang": "zh-CN", "large": "0"})
    page = client.get("/signin")
    assert '<html lang="zh-CN">' in page.text and 'class="large' not in page.text
    ignored = client.post("/preferences", data={"lang": "fr", "back": "https://evil.example"}, follow_redirects=False)
    assert ignored.headers["location"] == "/"


def test_the_api_accepts_the_session_cookie_but_changes_need_the_csrf_header(client, world):
    sign_in(client, RESIDENT)
    assert client.get("/api/v1/alarms").status_code == 200
    refused = client.post("/api/v1/alarms/emergency", json={"household_id": "ca-b1-u1-101"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    token = csrf_of(client.get("/home").text)
    sent = client.post("/api/v1/alarms/emergency", json={"household_id": "ca-b1-u1-101"},
                       headers={"X-CSRF-Token": token})
    assert sent.status_code in (200, 201)


def test_sign_out_everywhere_ends_api_tokens_too(client, world):
    api_token = world.token(Role.RESIDENT)
    sign_in(client, RESIDENT)
    token = csrf_of(client.get("/home").text)
    assert client.get("/api/v1/alarms", headers=auth(api_token)).status_code == 200
    out = client.post("/signout", data={"csrf": token, "everywhere": "true"}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert client.get("/home", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/alarms", headers=auth(api_token)).status_code == 401
