"""The status page in a real browser: Debian's chromium, headless, driven by selenium and chromium-driver.

The page is loaded once; a real server then fails, and what a person sees (the
real's state badge, its weight, the timeline) must change without the page being
reloaded. Screenshots are kept as test artefacts (HEALTHD_ARTEFACTS, default
.cache/artefacts/ in the checkout).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon.helpers import WebServer, config_text, web_servers

from .common import daemon_with_http

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTEFACTS = Path(os.environ.get("HEALTHD_ARTEFACTS", Path(__file__).parents[3] / ".cache" / "artefacts"))
VIP = "127.0.0.100"
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless chromium (the Debian packages chromium and chromium-driver; ./run test installs them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), "needs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,800", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def reals() -> AsyncIterator[list[WebServer]]:
    async with web_servers(ADDRESSES) as servers:
        yield servers


async def wait_in_browser(condition: Callable[[], Any], what: str, limit: float = 20.0) -> Any:
    """Poll a (blocking) selenium condition from a thread, so that healthd's loop keeps running."""
    deadline = time.monotonic() + limit
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        assert time.monotonic() < deadline, f"the page never showed {what}"
        await asyncio.sleep(0.25)


async def test_page_shows_a_failing_real_without_a_reload(tmp_path: Path, reals: list[WebServer],
                                                           browser: Any) -> None:
    port = reals[0].port
    broken = reals[1]
    config = config_text(VIP, port, ADDRESSES, head="checkinterval=0.5")

    def text(selector: str) -> str:
        """What a person reads in the first element matching `selector`, read in one step (the page
        re-renders every 2 s, so an element found in one call may be gone by the next)."""
        return str(browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector))

    def row_text(label: str) -> Callable[[], str]:
        return lambda: text(f'tr[data-real="{label}"]')

    def cell(label: str, name: str) -> str:
        return text(f'tr[data-real="{label}"] td.{name}')

    async with daemon_with_http(tmp_path, config) as (_daemon, _table, url):
        await asyncio.to_thread(browser.get, url)
        await wait_in_browser(lambda: "UP" in row_text(broken.label)(), f"{broken.label} up")
        # what a person reads before the failure
        assert cell(broken.label, "weight") == "2"
        assert "passed" in cell(broken.label, "check")
        heading = text("section.virtual h2")
        assert f"TCP {VIP}:{port}" in heading and "scheduler wrr" in heading and "3/3 up" in heading
        assert "3/3 reals up" in text("#summary")
        assert "No reload since start" in text("#config")
        browser.execute_script("window.healthdTestMarker = 'same page';")

        broken.page = "maintenance\n"
        await wait_in_browser(lambda: "DOWN" in row_text(broken.label)(), f"{broken.label} down")
        await wait_in_browser(lambda: cell(broken.label, "weight") == "not in table", "the weight gone")

        assert browser.execute_script("return window.healthdTestMarker") == "same page"  # never reloaded
        assert "failed" in cell(broken.label, "check") and "receive" in cell(broken.label, "check").lower()
        assert cell(broken.label, "failures") != "0"
        assert "2/3 reals up" in text("#summary")
        timeline = text("#timeline")
        assert f"{broken.label} of {VIP}:{port}: up" in timeline and "→ down" in timeline
        for other in (reals[0], reals[2]):
            assert "UP" in row_text(other.label)()
        os.makedirs(ARTEFACTS, exist_ok=True)
        assert browser.save_screenshot(str(ARTEFACTS / "status-page.png"))

        # on a phone's width the rows become cards: nothing runs off the screen sideways
        await asyncio.to_thread(browser.set_window_size, 390, 844)
        await asyncio.sleep(0.5)
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        assert browser.execute_script(
            "return getComputedStyle(document.querySelector('table thead')).display") == "none"
        assert browser.save_screenshot(str(ARTEFACTS / "status-page-phone.png"))
