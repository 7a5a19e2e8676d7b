"""The console's browser harness: a real ``moonbase serve`` on loopback (the
embedded model, SQLite; tests/e2e/server.py) and headless Chromium driven by
Selenium through Debian's ``chromium`` and ``chromium-driver`` (installed by
``make test``; no browser is downloaded at test time). Each journey saves
screenshots in a temporary folder (its path is printed; set
``MOONBASE_CONSOLE_SCREENSHOTS`` to keep them somewhere else)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import RunningServer, start_server

PASSWORD = "console journeys pass"
OPERATOR = "operator@localhost"
WAIT_S = 120.0  # generous: a busy 2-core machine; never a speed assertion


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@dataclass
class Browser:
    driver: Any  # selenium.webdriver.Chrome
    base_url: str
    shots: Path

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def shot(self, name: str) -> Path:
        target = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(target))
        return target

    def size(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)

    def until(self, check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = check()
            except Exception:  # the page is changing under us
                found = None
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} at {self.driver.current_url}")

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.until(lambda: self.driver.find_element(By.CSS_SELECTOR, selector), selector)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def csp_violations(self) -> list[str]:
        logs = self.driver.get_log("browser")
        return [e["message"] for e in logs if "Content Security Policy" in e["message"]]


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    if _chromium() is None:
        pytest.skip("chromium and chromedriver are not installed (make test installs them)")
    running = start_server(
        Path(tmp_path_factory.mktemp("moonbase-console")),
        extra_env={"MOONBASE_USERS__OPERATOR_PASSWORD": PASSWORD},
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("MOONBASE_CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {folder}")
    return folder


@pytest.fixture
def browser(console_server: RunningServer, screenshots: Path) -> Iterator[Browser]:
    found = _chromium()
    if found is None:
        pytest.skip("chromium and chromedriver are not installed (make test installs them)")
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900", "--lang=en-US",
                     "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
    except WebDriverException as exc:
        pytest.skip(f"headless Chromium would not start: {exc.msg}")
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield Browser(driver, console_server.base_url, screenshots)
    finally:
        driver.quit()
