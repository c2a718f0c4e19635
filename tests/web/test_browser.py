"""The pages in a real browser (Debian's Chromium through Playwright): sign-in, language switch,
large text, the emergency button's cancel window, and an axe-core scan of each main page.
Screenshots go to test-artifacts/screenshots/ (not committed) for a reviewer to look at."""

from __future__ import annotations

from typing import Any

import pytest

from cityweave.accounts.models import Role
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
