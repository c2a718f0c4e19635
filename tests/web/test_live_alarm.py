"""The console live: a smoke payload published on the real Mosquitto (a Zigbee2MQTT detector,
through the DeviceRuntime's ingest and the fire rule) appears in the staff console without a
reload, and the staff member acknowledges it from the page."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.alarms.models import Alarm, AlarmStatus
from cityweave.simulator.fleet import SMOKE, ZIGBEE2MQTT
from tests.rules.e2e import Harness, harness_fixture, until  # noqa: F401 - harness_fixture is the fixture
from tests.web.conftest import screenshot
from tests.world import PASSWORD, ROLE_USERS

HOME = "ca-b1-u1-101"


@pytest.mark.slow
def test_a_smoke_alarm_reaches_the_console_live_and_staff_acknowledge_it(
        harness: Harness, live_server, page: Any, backend: str) -> None:
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
    answer = page.evaluate(
        """async (id) => {
            const csrf = document.body.dataset.csrf;
            const r = await fetch(`/api/v1/alarms/${id}/acknowledge`, {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                body: JSON.stringify({note: '已电话联系住户'})});
            return r.status;
        }""", alarm_id)
    assert answer == 200
    page.wait_for_function(
        "() => [...document.querySelectorAll('#live-feed li')].some(li => li.textContent.includes('acknowledged'))",
        timeout=20_000)
    with live_server.ctx.db.session() as session:
        assert session.get(Alarm, alarm_id).status is AlarmStatus.ACKNOWLEDGED


def _open_alarm(ctx) -> str | None:
    with ctx.db.session() as session:
        return session.execute(select(Alarm.id).where(Alarm.kind == "fire")).scalars().first()
