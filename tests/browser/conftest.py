"""A real headless Chromium (Debian's, driven by Selenium) against a real running Foyer.

Foyer runs in its own thread and event loop, so the test can drive the browser with
Selenium's blocking calls while the HTTP server, MQTT ingestion and registry answer.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

from core.registry import Registry
from core.registry.people import People
from core.service import Foyer, running
from core.settings import Settings
from tests.e2e.conftest import make_settings, register
from tests.servers import InfluxDB, SecureMosquitto

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)  # a common phone viewport in CSS pixels
START_TIMEOUT_S = 30.0
WAIT_S = 15.0
PASSWORD = "correct horse battery"
TECHNICIAN = "tech1"
BILLING = "bill1"
DWELLING_HOUSEHOLD = ("h-lilas", "Martin", "12 rue des Lilas")  # dwelling d-h-lilas
INGEST_USER, INGEST_PASSWORD = "foyer-ingest", "ingest-pw-Bq7"


def browser_missing() -> bool:
    return not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists())


# Outside CI a developer without the browser gets a skip that says how to get it; in
# CI (CI is set by every common runner) the same absence is a failure, not a skip.
requires_browser = pytest.mark.skipif(
    browser_missing() and not os.environ.get("CI"),
    reason=f"{CHROMIUM} / {CHROMEDRIVER} not installed: run deploy/dev/bootstrap.sh "
    "(Debian packages chromium, chromium-driver)",
)


class FoyerThread:
    """`core.service.running(settings)` kept open in a thread until `stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.foyer: Foyer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="foyer-under-test", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # noqa: BLE001 (handed to the test thread, re-raised there)
            self._error = err
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running(self.settings) as foyer:
            assert foyer.mqtt is not None
            await asyncio.wait_for(foyer.mqtt.subscribed.wait(), START_TIMEOUT_S)
            self.foyer = foyer
            self._ready.set()
            await self._stop.wait()

    def start(self) -> Foyer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("Foyer did not start in time")
        if self._error is not None or self.foyer is None:
            raise RuntimeError("Foyer failed to start") from self._error
        return self.foyer

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT_S)
        assert not self._thread.is_alive(), "Foyer did not shut down in time"
        if self._error is not None:
            raise self._error


@pytest.fixture
def settings(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str, secure_mosquitto: SecureMosquitto
) -> Settings:
    # A broker with per-device accounts, as in production: the password the page shows
    # is the one the broker checks, and Foyer ingests with its own account.
    s = replace(
        make_settings(tmp_path, influxdb, influx_db, secure_mosquitto),
        mqtt_url=f"mqtt://{INGEST_USER}:{INGEST_PASSWORD}@127.0.0.1:{secure_mosquitto.port}",
        mqtt_admin_url=secure_mosquitto.admin_url,
    )
    register(s)
    registry = Registry(s.registry)
    try:
        people = People(registry)
        people.add_user(TECHNICIAN, PASSWORD, ["technician"], actor="test")
        people.add_user(BILLING, PASSWORD, ["billing"], actor="test")
        registry.add_household(*DWELLING_HOUSEHOLD)
    finally:
        registry.close()
    return s


@pytest.fixture
def foyer(settings: Settings) -> Iterator[Foyer]:
    server = FoyerThread(settings)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def base_url(foyer: Foyer) -> str:
    return f"http://127.0.0.1:{foyer.http_port}"


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    if browser_missing():
        pytest.fail(f"CI is set but {CHROMIUM} / {CHROMEDRIVER} are missing")
    # Both paths are given, so Selenium Manager has nothing to resolve; SE_OFFLINE makes
    # sure it never tries the network (there is none on the build machines).
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={PHONE[0]},{PHONE[1]}", "--lang=fr-FR"):  # fmt: skip
        options.add_argument(arg)  # --no-sandbox: the tests run as root
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.set_window_size(*PHONE)
    try:
        yield browser
    finally:
        browser.quit()


def wait(driver: webdriver.Chrome, within: float = WAIT_S) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, within, poll_frequency=0.1)


def by_testid(driver: webdriver.Chrome, testid: str) -> WebElement:
    """The visible element with that data-testid, once it is shown."""
    locator = (By.CSS_SELECTOR, f'[data-testid="{testid}"]')
    element: WebElement = wait(driver).until(ec.visibility_of_element_located(locator))
    return element


def log_in(driver: webdriver.Chrome, username: str, password: str = PASSWORD) -> None:
    """Fill and submit the login page the browser is on."""
    by_testid(driver, "login-username").send_keys(username)
    by_testid(driver, "login-password").send_keys(password)
    by_testid(driver, "login-submit").click()
