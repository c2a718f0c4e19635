"""The resident's home live: a resident switches a light on the page; the command goes through the
real Mosquitto to a simulated Zigbee2MQTT light, which answers as its bridge would (the simulator's
CommandResponder); the light's echo comes back through ingest, and the page's tile shows the light
on without a reload. Then the light is turned off at the wall, and the tile follows."""

from __future__ import annotations

import queue
from typing import Any

import pytest
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.devices.registry.models import CommandStatus, DeviceCommand
from cityweave.simulator.fleet import LIGHT, ZIGBEE2MQTT, Fleet
from cityweave.simulator.responder import CommandResponder
from tests.rules.e2e import Harness, harness_fixture, until  # noqa: F401 - harness_fixture is the fixture
from tests.web.conftest import screenshot
from tests.world import PASSWORD, ROLE_USERS

HOME = "ca-b1-u1-101"  # the test world's first resident lives here


@pytest.mark.slow
def test_a_resident_switches_a_light_and_sees_its_echo(harness: Harness, live_server, page: Any, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("one browser run is enough; the command path runs on both backends in tests/test_runtime_e2e.py")
    light = harness.bind(HOME, LIGHT, ZIGBEE2MQTT, name="客厅灯")
    runtime = harness.start()
    runtime.install(live_server.app)
    responder = CommandResponder(Fleet(1, (light.virtual.household,), (light.virtual,)), when=harness.clock.now())
    commands = harness.listen(*responder.topics())
    harness.report(light, on_off=False)
    assert until(lambda: harness.stored(light.id, "on_off") is not None), "the light's first report was not stored"

    base = live_server.url
    page.goto(f"{base}/signin")
    page.get_by_label("用户名").fill(ROLE_USERS[Role.RESIDENT][0])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{base}/home")
    tile = page.locator(f'li[data-device="{light.id}"]')
    assert "已关闭" in tile.inner_text()
    page.evaluate("() => { window.stillTheSamePage = true; }")
    page.wait_for_timeout(1_000)  # the page's EventSource connects

    tile.get_by_role("button", name="打开: 客厅灯").click()
    # The light hears the command on its bridge's set topic and answers with its new state.
    answers: list[Any] = []
    while not answers:
        message = commands.received.get(timeout=15)
        harness.clock.advance(seconds=1)
        answers = responder.handle(message.topic, message.payload, harness.clock.now())
    harness.publish([(answer.topic, answer.payload) for answer in answers])

    # No reload: the tile redraws itself from the live device_state event.
    page.wait_for_function(
        f"""() => {{ const t = document.querySelector('li[data-device="{light.id}"]');
                     return t && t.innerText.includes('已开启'); }}""", timeout=20_000)
    assert page.evaluate("() => window.stillTheSamePage === true")
    assert tile.get_by_role("button", name="关闭: 客厅灯").is_visible()
    screenshot(page, "home-light-echo-zh")

    def confirmed() -> bool:
        with live_server.ctx.db.session() as session:
            status = session.execute(select(DeviceCommand.status).where(DeviceCommand.device_id == light.id)).scalar_one()
        return status is CommandStatus.CONFIRMED

    assert until(confirmed), "the echo did not confirm the command"
    # Someone turns the light off at the wall: with no command on its way (so the tile is not
    # polling), the live event alone redraws it.
    assert tile.get_attribute("hx-trigger") is None
    harness.clock.advance(seconds=1)
    harness.report(light, on_off=False)
    page.wait_for_function(
        f"""() => {{ const t = document.querySelector('li[data-device="{light.id}"]');
                     return t && t.innerText.includes('已关闭'); }}""", timeout=20_000)
    assert page.evaluate("() => window.stillTheSamePage === true")
    with pytest.raises(queue.Empty):  # one tap, one command
        while True:
            message = commands.received.get(timeout=1)
            assert not responder.handle(message.topic, message.payload, harness.clock.now())
