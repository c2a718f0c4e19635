"""The pages in a real browser (Debian's Chromium through Playwright): sign-in, language switch,
large text, the emergency button's cancel window, and an axe-core scan of each main page.
Screenshots go to test-artifacts/screenshots/ (not committed) for a reviewer to look at."""

from __future__ import annotations

from typing import Any

import pytest

from cityweave.accounts.models import Role
from cityweave.alarms.models import Severity
from tests.web.conftest import screenshot
from tests.world import PASSWORD, ROLE_USERS

RESIDENT = ROLE_USERS[Role.RESIDENT][0]
ADMIN = ROLE_USERS[Role.COMMUNITY_ADMIN][0]
SERIOUS = {"serious", "critical"}


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/signin")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()


def axe_violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    # Evaluated through the DevTools protocol: our CSP (rightly) refuses an injected <script>.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(f"() => {{ {axe_source}\n; window.axe = axe; }}")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in SERIOUS]


@pytest.mark.slow
def test_staff_and_resident_pages_in_a_browser(live_server, page, axe_source, backend):
    if backend != "sqlite":
        pytest.skip("the browser flow runs once; storage is covered on both backends elsewhere")
    base = live_server.url
    page.goto(base + "/")
    assert page.url.endswith("/signin")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert axe_violations(page, axe_source) == []
    screenshot(page, "signin-zh")

    sign_in(page, base, ADMIN)
    page.wait_for_url(f"{base}/console")
    assert page.get_by_role("heading", name="运行总览").is_visible()
    assert axe_violations(page, axe_source) == []
    screenshot(page, "console-overview-zh")

    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="Operations overview").is_visible()
    screenshot(page, "console-overview-en")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/signin")

    page.get_by_role("button", name="中文").click()
    sign_in(page, base, RESIDENT)
    page.wait_for_url(f"{base}/home")
    normal = page.locator("body").evaluate("b => parseFloat(getComputedStyle(b).fontSize)")
    page.get_by_role("button", name="大字模式").click()
    page.wait_for_load_state()
    large = page.locator("body").evaluate("b => parseFloat(getComputedStyle(b).fontSize)")
    assert large >= normal * 1.3, (normal, large)
    assert axe_violations(page, axe_source) == []
    screenshot(page, "home-large-zh")

    # The emergency button: tap, then cancel inside the window: nothing is sent.
    sos = page.get_by_role("button", name="紧急呼叫")
    sos.click()
    cancel = page.get_by_role("button", name="取消")
    assert cancel.is_visible()
    cancel.click()
    page.wait_for_timeout(6_000)
    assert page.locator("#sos-result").inner_text() == ""
    # Tap and let it go: after the countdown the call is sent and confirmed on the page.
    page.get_by_role("button", name="紧急呼叫").click()
    page.wait_for_selector("#sos-result .ok", timeout=15_000)
    assert "已发出求助" in page.locator("#sos-result").inner_text()
    screenshot(page, "home-emergency-sent")


@pytest.mark.slow
def test_every_main_page_passes_axe_and_a_report_reaches_the_queue(live_server, page, axe_source, backend, tmp_path):
    """A resident reports a problem with a photo; staff see it in the queue, acknowledge an alarm,
    and every main page (both languages where cheap) is scanned and photographed."""
    if backend != "sqlite":
        pytest.skip("the browser flow runs once; storage is covered on both backends elsewhere")
    from PIL import Image

    from tests.web.test_console_home import raise_alarm

    base = live_server.url
    alarm_id = raise_alarm(live_server.ctx, "ca-b1-u1-102", severity=Severity.MAJOR)
    picture = tmp_path / "leak.png"
    Image.new("RGB", (320, 240), (30, 90, 200)).save(picture)

    def check(name: str) -> None:
        assert axe_violations(page, axe_source) == [], name
        screenshot(page, name)

    sign_in(page, base, RESIDENT)
    page.wait_for_url(f"{base}/home")
    assert page.get_by_role("heading", name="场景").is_visible()
    check("home-zh")
    page.get_by_label("问题类型").select_option("repair-water")
    page.get_by_label("问题描述").fill("厨房水管漏水，地上有积水")
    page.get_by_label("照片（可选）").set_input_files(str(picture))
    page.get_by_role("button", name="提交报事").click()
    page.wait_for_url("**/home/reports/**")
    assert "您的报事已收到" in page.locator("main").inner_text()
    assert page.locator("img.photo").evaluate("img => img.complete && img.naturalWidth > 0")
    number = page.get_by_role("heading", level=1).inner_text().split()[-1]
    check("home-report-zh")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: mobile-first layout
    page.goto(f"{base}/home")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    check("home-mobile-zh")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/home?tv=1")
    assert "tv" in (page.locator("body").get_attribute("class") or "")
    check("home-tv-zh")
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url(f"{base}/signin")

    sign_in(page, base, ADMIN)
    page.wait_for_url(f"{base}/console")
    check("console-overview-zh")
    # Keyboard only: the first Tab reaches the skip link, visibly focused; it leads to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("() => location.hash") == "#main"
    page.get_by_role("link", name="工单", exact=True).click()
    page.wait_for_url(f"{base}/console/workorders")
    assert page.get_by_role("link", name=number).is_visible()
    check("console-workorders-zh")
    page.get_by_role("link", name=number).click()
    page.wait_for_selector("img.photo")
    assert "厨房水管漏水" in page.locator("main").inner_text()
    check("console-workorder-zh")

    page.get_by_role("link", name="告警", exact=True).click()
    page.wait_for_url(f"{base}/console/alarms")
    check("console-alarms-zh")
    page.locator(f"tr[data-alarm='{alarm_id}']").get_by_role("button", name="确认").click()
    page.wait_for_url("**/console/alarms?**")
    assert page.locator(f"tr[data-alarm='{alarm_id}']").get_by_text("已确认").is_visible()
    for path, name in [("/console/statistics", "console-statistics-zh"), ("/console/residents", "console-residents-zh"),
                       ("/console/devices", "console-devices-zh"), ("/console/community", "console-community-zh")]:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        check(name)
    page.goto(f"{base}/console/devices")
    page.locator("table a").first.click()
    page.wait_for_load_state("networkidle")
    check("console-device-zh")

    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    for path, name in [("/console/alarms", "console-alarms-en"), ("/console/workorders", "console-workorders-en"),
                       ("/console/statistics", "console-statistics-en"), ("/console/community", "console-community-en")]:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == "en"
        check(name)
    # Large text works on the console too.
    page.get_by_role("button", name="Large text").click()
    page.wait_for_load_state()
    assert "large" in (page.locator("body").get_attribute("class") or "")
    check("console-community-large-en")
