"""The console live: a smoke payload published on the real Mosquitto (a Zigbee2MQTT detector,
through the DeviceRuntime's ingest and the fire rule) appears in the staff console without a
reload, a staff member opens it from the refreshed table and acknowledges it with a note, and a
colleague's console hears of the acknowledgement."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role, User
from cityweave.alarms.models import Alarm, AlarmStatus
from cityweave.simulator.fleet import SMOKE, ZIGBEE2MQTT
from tests.rules.e2e import Harness, harness_fixture, until  # noqa: F401 - harness_fixture is the fixture
from tests.web.conftest import screenshot
from tests.world import PASSWORD, ROLE_USERS

HOME = "ca-b1-u1-101"


@pytest.mark.slow
def test_a_smoke_alarm_reaches_the_console_live_and_staff_acknowledge_it(
        harness: Harness, live_server, page: Any, chromium: Any, world: Any, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("one browser run is enough; the alarm path runs on both backends in tests/rules")
    smoke = harness.bind(HOME, SMOKE, ZIGBEE2MQTT)
    harness.start()
    base = live_server.url
    page.goto(f"{base}/signin")
    page.get_by_label("用户名").fill(ROLE_USERS[Role.COMMUNITY_ADMIN][0])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{base}/console")
    # A colleague (property staff, signed in on another browser) has the console open too.
    with live_server.ctx.db.session() as session:
        cookie = accounts.issue_session(live_server.ctx, session, session.get(User, world.user_ids[Role.PROPERTY_STAFF]),
                                        source_ip=None)
    colleague_context = chromium.new_context(locale="zh-CN")
    colleague_context.add_cookies([{"name": "cw_session", "value": cookie, "url": base}])
    colleague = colleague_context.new_page()
    colleague.goto(f"{base}/console")
    assert colleague.get_by_role("heading", name="运行总览").is_visible()
    critical = page.locator('[data-severity="critical"]')
    assert critical.inner_text().strip() == "0"
    page.wait_for_timeout(1_000)  # the page's EventSource connects

    harness.report(smoke, smoke=True)
    # No reload: the live feed shows the alarm, and the figures refresh themselves.
    page.wait_for_selector("#live-feed li.sev-critical", timeout=20_000)
    page.wait_for_function("() => document.querySelector('[data-severity=critical]').textContent.trim() === '1'",
                           timeout=20_000)
    assert page.url == f"{base}/console"
    screenshot(page, "console-live-alarm")

    alarm_id = until(lambda: _open_alarm(live_server.ctx))
    assert alarm_id
    # The open-alarms table refreshed itself too: staff open the alarm from it and acknowledge it
    # with a note, as they would.
    page.locator(f'tr[data-alarm="{alarm_id}"] a').click()
    page.wait_for_url(f"{base}/console/alarms/{alarm_id}")
    page.get_by_label("备注（可选）").fill("已电话联系住户")
    page.get_by_role("button", name="确认").click()
    page.wait_for_function("() => document.getElementById('alarm-status').textContent.trim() === '已确认'",
                           timeout=15_000)
    assert "已电话联系住户" in page.locator("main").inner_text()
    with live_server.ctx.db.session() as session:
        assert session.get(Alarm, alarm_id).status is AlarmStatus.ACKNOWLEDGED
    # A colleague's console, open all along, heard of the acknowledgement without a reload.
    colleague.wait_for_selector("#live-feed li[data-change=acknowledged]", timeout=20_000)
    # ... in its viewer's words: "已确认 · 紧急 · <the alarm's title> · <place>".
    told = colleague.locator("#live-feed li[data-change=acknowledged]").first.inner_text()
    assert told.startswith("已确认 · 紧急") and "acknowledged" not in told, told
    colleague_context.close()


def _open_alarm(ctx) -> str | None:
    with ctx.db.session() as session:
        return session.execute(select(Alarm.id).where(Alarm.kind == "fire")).scalars().first()
