"""The console's community view and device page live: their live parts are fragments with their
own routes, answered under the same checks as the pages (scope, staff only, signed in), and the
community map follows a real smoke alarm from Mosquitto without a reload."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role, User
from cityweave.alarms.models import Severity
from cityweave.devices.reading import Reading
from cityweave.simulator.fleet import SMOKE, ZIGBEE2MQTT
from cityweave.telemetry.store import TelemetryStore
from tests.rules.e2e import Harness, harness_fixture  # noqa: F401 - harness_fixture is the fixture
from tests.web.conftest import screenshot
from tests.web.test_console_home import raise_alarm
from tests.web.test_pages import ADMIN, RESIDENT, sign_in
from tests.world import PASSWORD

HOME = "ca-b1-u1-101"


def as_grid_worker(client, ctx, world) -> None:
    """A session for the grid worker (issued as a sign-in would, as the console's role tests do)."""
    with ctx.db.session() as session:
        token = accounts.issue_session(ctx, session, session.get(User, world.user_ids[Role.GRID_WORKER]),
                                       source_ip=None)
    client.cookies.clear()
    client.cookies.set("cw_session", token)


def test_the_community_map_fragment_follows_alarms_under_the_pages_checks(client, ctx, world):
    raise_alarm(ctx, "ca-b1-u1-102", severity=Severity.MAJOR)
    assert client.get("/console/community/ca/map", follow_redirects=False).headers["location"] \
        == "/signin?next=/console/community/ca/map"
    sign_in(client, ADMIN)
    page = client.get("/console/community").text
    # The page carries the fragment, which fetches itself again on alarm events, debounced.
    fragment = re.search(r'<div id="community-map"[^>]*>', page).group(0)
    assert 'data-live="alarm"' in fragment and 'hx-get="/console/community/ca/map"' in fragment
    assert re.search(r'hx-trigger="cw:live from:body (delay|throttle):\d+m?s"', fragment)
    answer = client.get("/console/community/ca/map")
    assert answer.status_code == 200 and answer.text.strip().startswith('<div id="community-map"') and "<html" not in answer.text
    # The state is in words too, not in the colour alone: the cell's title and the table.
    assert 'data-place="ca-b1-u1-102" data-state="major"' in answer.text
    assert re.search(r"地点 ca-b1-u1-102 · [^<]+</title>", answer.text)
    assert 'id="alarmed-ca-b1-u1-102"' in answer.text and "地点 ca-b2" in answer.text
    assert client.get("/console/community/cc/map").status_code == 404  # another city's community
    assert client.get("/console/community/no-such/map").status_code == 404


def test_a_grid_worker_sees_the_map_of_their_grid_only(client, ctx, world):
    # Their grid is ca-g1: building ca-b1, not ca-b2.
    as_grid_worker(client, ctx, world)
    answer = client.get("/console/community/ca/map")
    assert answer.status_code == 200 and "地点 ca-b1" in answer.text and "地点 ca-b2" not in answer.text
    assert client.get("/console/community?place_id=cb").status_code == 404
    assert client.get("/console/community/cb/map").status_code == 404  # another community
    assert client.get("/console/community/ca-g1/map").status_code == 404  # not a community


def test_residents_get_no_community_map(client, world):
    sign_in(client, RESIDENT)
    assert client.get("/console/community/ca/map").status_code == 403


def test_the_device_readings_fragment_redraws_like_a_home_tile(client, ctx, world):
    device_id = world.device_of_household[HOME]
    now = ctx.clock.now()
    with ctx.db.session() as session:
        TelemetryStore(clock=ctx.clock).write(session, [
            Reading(device_id, "power_w", 12.5, now - timedelta(minutes=5)), Reading(device_id, "on_off", True, now),
        ], {device_id: "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"})
    path = f"/console/devices/{device_id}/readings"
    assert client.get(path, follow_redirects=False).headers["location"] == f"/signin?next={path}"
    sign_in(client, ADMIN)
    page = client.get(f"/console/devices/{device_id}").text
    block = re.search(r'<section class="card" id="device-readings"[^>]*>', page).group(0)
    assert 'data-live="device_state"' in block and f'data-device="{device_id}"' in block
    assert f'data-tile="{path}"' in block
    answer = client.get(path)
    assert answer.status_code == 200 and "<html" not in answer.text
    assert answer.text.strip().startswith('<section class="card" id="device-readings"')
    assert "power_w" in answer.text and "12.5" in answer.text
    other = world.device_of_household["cc-b1-u1-101"]
    assert client.get(f"/console/devices/{other}/readings").status_code == 404
    as_grid_worker(client, ctx, world)
    assert client.get(path).status_code == 200
    assert client.get(f"/console/devices/{world.device_of_household['ca-b2-u1-201']}/readings").status_code == 404
    client.cookies.clear()
    sign_in(client, RESIDENT)
    assert client.get(path).status_code == 403


@pytest.mark.slow
def test_the_community_map_shows_a_smoke_alarm_without_a_reload(
        harness: Harness, live_server, page: Any, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("one browser run is enough; the alarm path runs on both backends in tests/rules")
    smoke = harness.bind(HOME, SMOKE, ZIGBEE2MQTT)
    harness.start()
    base = live_server.url
    page.goto(f"{base}/signin?next=/console/community")
    page.get_by_label("用户名").fill(ADMIN)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{base}/console/community")
    cell = f'#community-map rect[data-place="{HOME}"]'
    assert page.locator(cell).get_attribute("data-state") == "none"
    page.evaluate("() => { window.stillTheSamePage = true; }")
    page.wait_for_timeout(1_000)  # the page's EventSource connects

    harness.report(smoke, smoke=True)
    # No reload: the map fetched itself again, and the household's cell says "critical" in its
    # state and in its words (the cell's title, the table's link).
    page.wait_for_selector(f'{cell}[data-state="critical"]', timeout=20_000)
    assert page.evaluate("() => window.stillTheSamePage === true")
    assert "紧急" in page.locator(f"{cell} title").text_content()
    assert page.locator(f"#alarmed-{HOME}").is_visible()
    screenshot(page, "console-community-live")

    # The detector's page in the console follows its readings the same way (device_state events
    # redraw the readings block from its data-tile address, as on a home tile).
    page.goto(f"{base}/console/devices/{smoke.id}")
    row = page.locator('#device-readings tr[data-capability="smoke"]')
    before = row.inner_text()
    page.evaluate("() => { window.stillTheSamePage = true; }")
    page.wait_for_timeout(1_000)  # the page's EventSource connects
    harness.clock.advance(minutes=5)
    harness.report(smoke, smoke=False)
    page.wait_for_function(
        """(before) => { const r = document.querySelector('#device-readings tr[data-capability="smoke"]');
                         return r && r.innerText !== before; }""", arg=before, timeout=20_000)
    assert page.evaluate("() => window.stillTheSamePage === true")
