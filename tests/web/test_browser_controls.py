"""A resident sets the air conditioner and a light from their tiles in a real browser (Chromium):
the tile shows the command on its way without a reload, at phone width and in large text, and the
home with its new controls passes an axe-core scan. Screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import httpx
import pytest

from cityweave.accounts.models import Role
from tests.conftest import auth
from tests.rules.homes import CLIMATE, LIGHT, _z2m
from tests.web.conftest import screenshot
from tests.web.test_browser import RESIDENT, axe_violations, sign_in
from tests.web.test_home_devices import Publisher, store


@pytest.mark.slow
def test_a_resident_sets_the_air_conditioner_and_sees_it_on_its_way(live_server, page, axe_source, backend, world):
    if backend != "sqlite":
        pytest.skip("the browser flow runs once; storage is covered on both backends elsewhere")
    base = live_server.url
    ids = {}
    for key, name, kind, properties in (("light", "客厅灯", "light", LIGHT), ("ac", "客厅空调", "climate", CLIMATE)):
        answer = httpx.post(f"{base}/api/v1/devices", json=_z2m(name, kind, properties),
                            headers=auth(world.token(Role.RESIDENT)))
        assert answer.status_code == 201, answer.text
        ids[key] = answer.json()["device"]["id"]
    store(live_server.ctx, ids["ac"], hvac_mode="cool", target_temperature=26.0, temperature=27.5)
    store(live_server.ctx, ids["light"], on_off=True, brightness=50.0)
    publisher = Publisher()
    live_server.app.state.device_publisher = publisher

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    sign_in(page, base, RESIDENT)
    page.wait_for_url(f"{base}/home")
    page.get_by_role("button", name="大字模式").click()
    page.wait_for_load_state()
    ac = page.locator(f"li[data-device='{ids['ac']}']")
    assert "空调模式: 制冷" in ac.inner_text()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert axe_violations(page, axe_source) == []
    screenshot(page, "home-controls-mobile-large-zh")

    # Keyboard: focus the "+1 °C" button and press Enter; the tile comes back in place, pending.
    page.evaluate("() => { window.cwSamePage = true; }")
    ac.get_by_role("button", name="调高到 27 °C").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"li[data-device='{ids['ac']}'] .command:has-text('已发送，等待设备响应')")
    assert page.evaluate("() => window.cwSamePage === true")  # no reload: the page and its stream stay
    assert any(b'"occupied_heating_setpoint": 27' in payload or b'"occupied_heating_setpoint":27' in payload
               for _, payload in publisher.published), publisher.published

    light = page.locator(f"li[data-device='{ids['light']}']")
    light.get_by_role("button", name="75%").click()
    page.wait_for_selector(f"li[data-device='{ids['light']}'] .command:has-text('已发送')")
    assert page.evaluate("() => window.cwSamePage === true")
    assert axe_violations(page, axe_source) == []
    screenshot(page, "home-controls-pending-mobile-large-zh")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="大字模式").click()  # back to normal text
    page.wait_for_load_state()
    page.goto(f"{base}/home")
    assert axe_violations(page, axe_source) == []
    screenshot(page, "home-controls-zh")
