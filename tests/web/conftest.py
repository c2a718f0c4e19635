"""Fixtures for browser tests: a real server on a free port and Debian's Chromium via Playwright."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cityweave.api.app import create_app
from cityweave.context import AppContext
from cityweave.net import bind_tcp
from tests.conftest import need_service

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
AXE_VERSION = "4.14.1"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@dataclass
class LiveServer:
    url: str
    app: Any
    ctx: AppContext


@pytest.fixture
def live_server(ctx: AppContext) -> Iterator[LiveServer]:
    app = create_app(ctx)
    sockets = bind_tcp("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, server_header=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test server did not start"
    yield LiveServer(f"http://127.0.0.1:{port}", app, ctx)
    hub = getattr(app.state, "notification_hub", None)
    if hub is not None:
        hub.close()
    server.should_exit = True
    thread.join(10)
    for sock in sockets:
        sock.close()


@pytest.fixture
def chromium() -> Iterator[Any]:
    # Per test, not per session: Playwright's sync API keeps an asyncio loop running in the main
    # thread while it is started, and later tests that call asyncio.run() would fail.
    if not Path(CHROMIUM).exists():
        need_service("Chromium", f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need_service("Playwright", "the playwright package is not installed")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core from the npm registry, cached under .cache/ (never committed)."""
    target = REPO / ".cache" / "axe-core"
    script = target / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            need_service("npm", "npm is needed to fetch axe-core for the accessibility scan")
        target.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([npm, "install", "--prefix", str(target), "--no-audit", "--no-fund",
                                 f"axe-core@{AXE_VERSION}"], check=False, capture_output=True, text=True,
                                timeout=300)
        if result.returncode != 0 or not script.exists():
            need_service("npm registry", f"could not install axe-core: {result.stderr[-500:]}")
    return script.read_text(encoding="utf-8")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
