"""The technician page in a real headless Chromium, against a real Foyer, broker and store.

The device side is played by device_sim's own MQTT sender and SenML builder, with the
credentials the page showed: what a technician would type into a real meter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from core.service import Foyer
from device_sim.senml import build_pack, encode, volume
from device_sim.transport import MqttSender
from tests.browser.conftest import (
    BILLING,
    DWELLING_HOUSEHOLD,
    TECHNICIAN,
    by_testid,
    log_in,
    requires_browser,
    wait,
)
from tests.servers import SecureMosquitto

pytestmark = [requires_browser, pytest.mark.servers]

DWELLING_ID = f"d-{DWELLING_HOUSEHOLD[0]}"
NARROW_PHONE = (360, 740)  # the narrowest width the page promises to work at


def publish_first_reading(broker: SecureMosquitto, device_id: str, password: str) -> None:
    """Act as the meter: one SenML index reading, QoS 1, with its issued credentials."""
    url = f"mqtt://{device_id}:{quote(password, safe='')}@127.0.0.1:{broker.port}"
    payload = encode(build_pack(device_id, [volume(time.time(), 1234)]), "json")

    async def send() -> None:
        sender = MqttSender(url, client_id=device_id)
        await sender.start()
        try:
            await sender.send("meters", device_id, payload, "json")
        finally:
            await sender.close()

    asyncio.run(send())


def status_is(status: str) -> Callable[[webdriver.Chrome], bool]:
    def check(driver: webdriver.Chrome) -> bool:
        badge = driver.find_element(By.CSS_SELECTOR, '[data-testid="detail-status"]')
        return badge.text == status and badge.get_attribute("data-status") == status

    return check


def assert_fits_the_screen(driver: webdriver.Chrome) -> None:
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, f"page is {overflow}px wider than the phone screen"


def open_logged_in(driver: webdriver.Chrome, base_url: str, username: str) -> None:
    driver.get(f"{base_url}/technician")
    # Not logged in yet: the page sends the browser to the login page and back.
    wait(driver).until(ec.url_contains("/login?next="))
    log_in(driver, username)
    wait(driver).until(ec.url_contains("/technician"))


def commission_meter(driver: webdriver.Chrome, device_id: str) -> None:
    by_testid(driver, "nav-commission").click()
    Select(by_testid(driver, "c-kind")).select_by_value("meter")
    by_testid(driver, "c-device-id").send_keys(device_id)
    by_testid(driver, "c-model").send_keys("Itron Cyble 5")
    by_testid(driver, "c-serial").send_keys("SN-000123")
    by_testid(driver, "c-dwelling-search").send_keys("Lilas")
    by_testid(driver, "dwelling-choice").click()  # the search result names the dwelling
    assert by_testid(driver, "c-dwelling-id").get_attribute("value") == DWELLING_ID
    Select(by_testid(driver, "c-interval")).select_by_value("900")
    by_testid(driver, "c-submit").click()


def test_technician_commissions_a_meter_and_sees_it_turn_active_on_its_first_reading(
    driver: webdriver.Chrome, base_url: str, secure_mosquitto: SecureMosquitto, tmp_path: Path
) -> None:
    driver.set_window_size(*NARROW_PHONE)
    open_logged_in(driver, base_url, TECHNICIAN)
    by_testid(driver, "device-item")  # the list loaded (the registry holds 5 devices)
    assert_fits_the_screen(driver)

    commission_meter(driver, "m-browser-1")
    assert "une seule fois" in by_testid(driver, "credentials-warning").text
    assert by_testid(driver, "cred-mqtt-username").text == "m-browser-1"
    password = by_testid(driver, "cred-mqtt-password").text
    assert len(password) >= 16
    wait(driver).until(status_is("pending"))
    assert by_testid(driver, "detail-id").text == "m-browser-1"
    assert_fits_the_screen(driver)

    publish_first_reading(secure_mosquitto, "m-browser-1", password)
    wait(driver, within=30).until(status_is("active"))
    # the panel the technician is looking at while typing the password says so too
    assert by_testid(driver, "cred-status").text == "active"

    by_testid(driver, "credentials-done").click()
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="cred-mqtt-password"]')
    driver.save_screenshot(str(tmp_path / "technician-phone.png"))
    by_testid(driver, "nav-list").click()
    item = '[data-testid="device-item"][data-device-id="m-browser-1"] [data-testid="status-badge"]'
    badge = wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, item)))
    assert badge.text == "active"


def test_a_swap_keeps_both_indexes_and_a_retired_device_offers_no_more_actions(
    driver: webdriver.Chrome, base_url: str
) -> None:
    open_logged_in(driver, base_url, TECHNICIAN)
    commission_meter(driver, "m-browser-old")
    by_testid(driver, "credentials-done").click()
    wait(driver).until(status_is("pending"))

    by_testid(driver, "action-swap").click()
    by_testid(driver, "s-old-final").send_keys("123,456")  # as read on a French dial
    assert by_testid(driver, "s-old-final").find_element(By.XPATH, "..").text.endswith("123456 L")
    by_testid(driver, "s-new-id").send_keys("m-browser-new")
    by_testid(driver, "s-model").send_keys("Itron Cyble 5")
    by_testid(driver, "s-serial").send_keys("SN-000124")
    by_testid(driver, "s-new-initial").send_keys("0,010")
    by_testid(driver, "s-submit").click()

    wait(driver).until(lambda d: by_testid(d, "detail-id").text == "m-browser-new")
    assert by_testid(driver, "cred-mqtt-username").text == "m-browser-new"
    by_testid(driver, "credentials-done").click()
    wait(driver).until(status_is("pending"))

    by_testid(driver, "action-retire").click()
    by_testid(driver, "retire-yes").click()
    wait(driver).until(status_is("retired"))
    assert not driver.find_element(By.ID, "d-actions").is_displayed()


def test_a_wrong_password_shows_the_error_and_stays_on_the_login_page(
    driver: webdriver.Chrome, base_url: str, foyer: Foyer
) -> None:
    driver.get(f"{base_url}/login")
    log_in(driver, TECHNICIAN, "not the password")
    error = by_testid(driver, "login-error")
    assert error.text  # the server's own words, e.g. "wrong username or password"
    assert "/login" in driver.current_url
    assert by_testid(driver, "login-password").get_attribute("value") == ""


def test_a_user_without_the_technician_role_is_told_so_and_sees_no_device(
    driver: webdriver.Chrome, base_url: str
) -> None:
    open_logged_in(driver, base_url, BILLING)
    message = by_testid(driver, "forbidden")
    assert "not allowed" in message.text
    assert BILLING in message.text
    assert not driver.find_element(By.ID, "app").is_displayed()
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="device-item"]')


def test_a_yellow_bin_is_commissioned_with_its_waste_stream(
    driver: webdriver.Chrome, base_url: str
) -> None:
    open_logged_in(driver, base_url, TECHNICIAN)
    by_testid(driver, "nav-commission").click()
    Select(by_testid(driver, "c-kind")).select_by_value("bin")
    by_testid(driver, "c-device-id").send_keys("b-yellow-1")
    by_testid(driver, "c-dwelling-search").send_keys("Lilas")
    by_testid(driver, "dwelling-choice").click()
    by_testid(driver, "c-volume").send_keys("240")
    Select(by_testid(driver, "c-stream")).select_by_value("recyclables")
    by_testid(driver, "c-submit").click()
    by_testid(driver, "credentials-done").click()
    wait(driver).until(lambda d: by_testid(d, "detail-id").text == "b-yellow-1")
    # the device panel says what the billing will use: its volume and its stream
    fields = wait(driver).until(lambda d: d.find_element(By.ID, "d-fields").text)
    assert "240 L" in fields and "recyclables" in fields
