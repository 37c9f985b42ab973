"""The care operator's page in a real headless Chromium, against a real Foyer and registry.

An operator enrols a person through the page's form; the care service then opens an
alert from a detector's Finding, exactly as the scoring job does, and the operator
sees it appear, opens it and acknowledges it (issue 4, item 6).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.wait import WebDriverWait

from alerts.model import Finding
from alerts.service import CareService
from core.registry import Registry
from core.registry.people import People
from core.service import Foyer
from core.settings import Settings
from device_sim.senml import build_pack, encode, volume
from device_sim.transport import MqttSender
from tests.browser.conftest import (
    DWELLING_HOUSEHOLD,
    PASSWORD,
    TECHNICIAN,
    WAIT_S,
    by_testid,
    log_in,
    requires_browser,
    wait,
)
from tests.servers import SecureMosquitto

pytestmark = [requires_browser, pytest.mark.servers]

CARE_USER = "care1"
HOUSEHOLD = DWELLING_HOUSEHOLD[0]
DESK = (1280, 900)  # the care desk's screen
PHONE = (390, 844)
CONTACT_PHONE = "+33687654321"
ITEM = '[data-testid="alert-item"][data-alert-id="{}"]'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The browser suite's settings, plus a care operator account."""
    registry = Registry(settings.registry)
    try:
        People(registry).add_user(CARE_USER, PASSWORD, ["care"], actor="test")
    finally:
        registry.close()
    return settings


def api_session(base_url: str, username: str) -> Callable[..., Any]:
    """A logged-in HTTP client of the Foyer under test: ``call(method, path, body=None)``."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the http:// URL of the Foyer under test)
            base_url + path, data, {"Content-Type": "application/json"}, method=method
        )
        with opener.open(request, timeout=10) as resp:
            return json.loads(resp.read())

    call("POST", "/api/login", {"username": username, "password": PASSWORD})
    return call


def commission_meter(base_url: str, device_id: str) -> str:
    """As a technician would, over the HTTP API: a meter in Mme Martin's dwelling."""
    call = api_session(base_url, TECHNICIAN)
    meter = {"device_id": device_id, "kind": "meter", "dwelling_id": f"d-{HOUSEHOLD}"}
    password: str = call("POST", "/api/devices", meter)["credentials"]["mqtt"]["password"]
    return password


def publish_indexes(broker: SecureMosquitto, device_id: str, password: str) -> None:
    """The meter reports its index over the last hours: 40 L, then 60 L were used."""
    url = f"mqtt://{device_id}:{quote(password, safe='')}@127.0.0.1:{broker.port}"
    now = time.time()
    readings = [volume(now - 3 * 3600, 1000), volume(now - 2 * 3600, 1040),
                volume(now - 3600, 1100)]  # fmt: skip
    payload = encode(build_pack(device_id, readings), "json")

    async def send() -> None:
        sender = MqttSender(url, client_id=device_id)
        await sender.start()
        try:
            await sender.send("meters", device_id, payload, "json")
        finally:
            await sender.close()

    asyncio.run(send())


def enrol(service: CareService) -> int:
    """Enrolment without the form, for the tests about what comes after; its id."""
    view = service.enrolment.create(
        actor="test",
        household_id=HOUSEHOLD,
        person_label="Mme Martin",
        consent_note="formulaire signé 2026-114",
        contacts=[{"name": "Claire", "phone": CONTACT_PHONE}],
    )
    sub_id: int = view["id"]
    return sub_id


def raise_inactivity(service: CareService) -> int:
    """What the scoring job does when the gap is improbable: one Finding in."""
    finding = Finding(
        kind="inactivity",
        audience="family",
        household_id=HOUSEHOLD,
        device_id=None,
        at=datetime.now(UTC),
        score=0.997,
        dedupe_key=f"inactivity:{HOUSEHOLD}",
        explanation={
            "fr": "pas d'eau depuis 09:12, d'habitude utilisée en 2 h",
            "en": "no water since 09:12, usually used within 2 h",
        },
    )
    opened: list[int] = asyncio.run(service.raise_findings([finding]))
    assert len(opened) == 1
    return opened[0]


def open_logged_in(driver: webdriver.Chrome, base_url: str, username: str) -> None:
    driver.get(f"{base_url}/care")
    # Not logged in yet: the page sends the browser to the login page and back.
    wait(driver).until(ec.url_contains("/login?next="))
    log_in(driver, username)
    wait(driver).until(ec.url_contains("/care"))


def enrol_through_the_form(driver: webdriver.Chrome, shots: Path) -> None:
    by_testid(driver, "nav-enrol").click()
    by_testid(driver, "e-household").send_keys(HOUSEHOLD)
    by_testid(driver, "e-label").send_keys("Mme Martin")
    by_testid(driver, "e-consent").send_keys("formulaire signé 2026-114")
    by_testid(driver, "e-contact-name").send_keys("Claire (fille)")
    phone = by_testid(driver, "e-contact-phone")
    phone.send_keys("06 87 65 43 21")  # a national number: refused with the hint
    by_testid(driver, "e-submit").click()
    assert by_testid(driver, "notice").text  # nothing sent: the form says what is wrong
    assert phone.get_attribute("aria-invalid") == "true"
    hint = driver.find_element(By.CSS_SELECTOR, '[data-testid="e-contact"] [data-err]')
    assert "+33" in hint.text
    phone.clear()
    phone.send_keys("+33 6 87 65 43 21")  # spaces are tidied away, not refused
    assert phone.get_attribute("aria-invalid") == "false" and not hint.text  # fixed as typed
    driver.save_screenshot(str(shots / "care-enrol.png"))
    by_testid(driver, "e-submit").click()
    wait(driver).until(ec.url_contains("#subscriptions"))


def alert_status_is(status: str) -> Callable[[webdriver.Chrome], bool]:
    def check(driver: webdriver.Chrome) -> bool:
        badge = driver.find_element(By.CSS_SELECTOR, '[data-testid="alert-status"]')
        return badge.get_attribute("data-status") == status

    return check


def steady_wait(driver: webdriver.Chrome, within: float = WAIT_S) -> WebDriverWait[Any]:
    """A wait that looks again when the page redrew the element (it refreshes every 10 s)."""
    return WebDriverWait(
        driver, within, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )


def text_becomes(driver: webdriver.Chrome, testid: str, wanted: Callable[[str], bool]) -> None:
    locator = (By.CSS_SELECTOR, f'[data-testid="{testid}"]')
    steady_wait(driver).until(lambda d: wanted(d.find_element(*locator).text))


def bar_litres(driver: webdriver.Chrome) -> list[str]:
    bars = driver.find_elements(By.CSS_SELECTOR, '[data-testid="chart-bar"]')
    return sorted(b.get_attribute("data-litres") or "" for b in bars)


def assert_fits_the_screen(driver: webdriver.Chrome) -> None:
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, f"page is {overflow}px wider than the screen"


def test_operator_enrols_a_person_then_sees_and_acknowledges_her_inactivity_alert(
    driver: webdriver.Chrome,
    base_url: str,
    foyer: Foyer,
    tmp_path: Path,
    secure_mosquitto: SecureMosquitto,
) -> None:
    publish_indexes(secure_mosquitto, "m-care-1", commission_meter(base_url, "m-care-1"))
    driver.set_window_size(*DESK)
    open_logged_in(driver, base_url, CARE_USER)
    by_testid(driver, "alerts-empty")
    enrol_through_the_form(driver, tmp_path)

    card = by_testid(driver, "subscription")
    assert card.get_attribute("data-household-id") == HOUSEHOLD
    assert "Mme Martin" in card.text
    assert "care1" in card.text  # the consent is recorded as given to this operator
    # Phone numbers are personal data: masked to the last two digits until asked for.
    assert by_testid(driver, "phone").text == "+" + "•" * 9 + "21"
    assert CONTACT_PHONE not in driver.page_source
    by_testid(driver, "subs-show-phones").click()
    text_becomes(driver, "phone", lambda text: text == CONTACT_PHONE)
    driver.save_screenshot(str(tmp_path / "care-desk-subscriptions.png"))

    alert_id = raise_inactivity(foyer.care)
    by_testid(driver, "nav-alerts").click()
    # No click on "refresh": the list refreshes itself every 10 s.
    item = (By.CSS_SELECTOR, ITEM.format(alert_id))
    row = wait(driver, within=25).until(ec.visibility_of_element_located(item))
    assert "Mme Martin" in row.text
    assert "09:12" in row.text  # the detector's explanation, in French
    row.click()

    wait(driver).until(alert_status_is("notified"))
    assert "09:12" in by_testid(driver, "alert-explanation").text
    sms = by_testid(driver, "alert-sms-item")  # the first contact was told
    assert "21" in sms.text and CONTACT_PHONE not in sms.text
    actions = [e.get_attribute("data-action") for e in
               driver.find_elements(By.CSS_SELECTOR, '[data-testid="alert-event"]')]  # fmt: skip
    assert actions[0] == "opened"
    assert_fits_the_screen(driver)
    driver.save_screenshot(str(tmp_path / "care-desk-alert.png"))

    by_testid(driver, "alert-note").send_keys("appelé la fille, elle passe / called the daughter")
    by_testid(driver, "alert-acknowledge").click()
    wait(driver).until(alert_status_is("acknowledged"))
    assert "care1" in by_testid(driver, "alert-detail").text  # acknowledged by
    assert by_testid(driver, "alert-resolve").is_displayed()  # still to be closed
    assert not driver.find_element(By.ID, "a-ack").is_displayed()
    # the list beside it says so too (it is redrawn, so the badge is looked up each time)
    badge = ITEM.format(alert_id) + ' [data-testid="status-badge"]'
    wait(driver).until(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, badge).get_attribute("data-status") == "acknowledged"
        )
    )

    by_testid(driver, "alert-household").click()
    by_testid(driver, "consumption-chart")
    markers = driver.find_elements(By.CSS_SELECTOR, '[data-testid="chart-alert"]')
    assert [m.get_attribute("data-alert-id") for m in markers] == [str(alert_id)]
    assert "Mme Martin" in by_testid(driver, "timeline-title").text
    # The meter's readings, as hourly bars: the 40 L and the 60 L between its indexes
    # (the chart redraws itself every 10 s; the readings may still be in the batch writer).
    steady_wait(driver, 25).until(lambda d: bar_litres(d) == ["40", "60"])
    text_becomes(driver, "timeline-last-use-at", lambda text: text not in ("", "—"))
    driver.save_screenshot(str(tmp_path / "care-desk-timeline.png"))

    driver.set_window_size(*PHONE)
    driver.get(f"{base_url}/care#alert/{alert_id}")
    wait(driver).until(alert_status_is("acknowledged"))
    assert not driver.find_element(By.ID, "pane-list").is_displayed()  # one pane on a phone
    assert_fits_the_screen(driver)
    driver.save_screenshot(str(tmp_path / "care-phone-alert.png"))
    by_testid(driver, "nav-alerts").click()
    wait(driver).until(ec.visibility_of_element_located(item))
    assert_fits_the_screen(driver)
    driver.save_screenshot(str(tmp_path / "care-phone-list.png"))


def test_the_operator_filters_alerts_by_status(
    driver: webdriver.Chrome, base_url: str, foyer: Foyer
) -> None:
    service = foyer.care
    enrol(service)
    alert_id = raise_inactivity(service)
    asyncio.run(service.resolve(alert_id, "test", "fausse alerte / false alarm"))
    open_logged_in(driver, base_url, CARE_USER)
    by_testid(driver, "alerts-empty")  # the default view lists what still needs someone
    Select(by_testid(driver, "filter-status")).select_by_value("resolved")
    row = wait(driver).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ITEM.format(alert_id)))
    )
    assert "resolved" in row.text


def test_a_technician_is_told_not_allowed_and_sees_no_personal_data(
    driver: webdriver.Chrome, base_url: str, foyer: Foyer
) -> None:
    service = foyer.care
    enrol(service)
    open_logged_in(driver, base_url, TECHNICIAN)
    message = by_testid(driver, "forbidden")
    assert "not allowed" in message.text
    assert TECHNICIAN in message.text
    assert not driver.find_element(By.ID, "app").is_displayed()
    assert "Mme Martin" not in driver.page_source


def test_operator_declares_an_absence_sees_it_shaded_on_the_timeline_then_ends_it(
    driver: webdriver.Chrome, base_url: str, foyer: Foyer, tmp_path: Path
) -> None:
    enrol(foyer.care)
    driver.set_window_size(*PHONE)
    open_logged_in(driver, base_url, CARE_USER)
    by_testid(driver, "nav-subscriptions").click()
    assert by_testid(driver, "away-state").text.startswith("présent")
    by_testid(driver, "away-open").click()
    since = datetime.now().astimezone() - timedelta(days=1)  # left yesterday (local time)
    start = by_testid(driver, "away-start")
    driver.execute_script("arguments[0].value = arguments[1]", start, f"{since:%Y-%m-%dT%H:%M}")
    by_testid(driver, "away-submit").click()
    text_becomes(driver, "away-state", lambda text: text.startswith("absent"))
    assert by_testid(driver, "away-badge").text == "away"
    assert_fits_the_screen(driver)

    by_testid(driver, "subscription-timeline").click()
    view_box = by_testid(driver, "consumption-chart").get_dom_attribute("viewBox")
    shaded = driver.find_elements(By.CSS_SELECTOR, '[data-testid="chart-away"]')
    assert len(shaded) == 1
    # one day out of the seven shown: about a seventh of the drawing's width
    share = float(shaded[0].get_dom_attribute("width")) / float(view_box.split()[2])
    assert 0.1 < share < 0.2
    assert_fits_the_screen(driver)  # the chart scrolls inside its card, not the page
    driver.save_screenshot(str(tmp_path / "care-phone-timeline.png"))

    by_testid(driver, "nav-subscriptions").click()
    by_testid(driver, "away-back").click()
    text_becomes(driver, "away-state", lambda text: text.startswith("présent"))


NEW_PHONE = "+33611223344"
SECOND_PHONE = "+33712345678"


def masked(phone: str) -> str:
    """As the page shows a number until asked: the last two digits only."""
    return "+" + "•" * (len(phone) - 3) + phone[-2:]


def card_phones(driver: webdriver.Chrome) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, '[data-testid="contact"] [data-testid="phone"]')
    return [row.text for row in rows]


def status_badge_is(status: str) -> Callable[[webdriver.Chrome], bool]:
    def check(driver: webdriver.Chrome) -> bool:
        badge = driver.find_element(By.CSS_SELECTOR, '[data-testid="subscription-status"]')
        return badge.get_attribute("data-status") == status

    return check


def test_operator_edits_a_subscription_then_ends_it_after_confirming(
    driver: webdriver.Chrome, base_url: str, foyer: Foyer, tmp_path: Path
) -> None:
    sub_id = enrol(foyer.care)
    api = api_session(base_url, CARE_USER)
    path = f"/api/care/subscriptions/{sub_id}"
    before = api("GET", path)
    open_logged_in(driver, base_url, CARE_USER)
    by_testid(driver, "nav-subscriptions").click()
    by_testid(driver, "edit-open").click()
    label = by_testid(driver, "edit-label")
    assert label.get_attribute("value") == "Mme Martin"  # prefilled
    phone = by_testid(driver, "edit-contact-phone")
    # the number on file stays masked in the form too: empty field, masked placeholder
    assert phone.get_attribute("value") == ""
    assert masked(CONTACT_PHONE) in (phone.get_attribute("placeholder") or "")
    assert CONTACT_PHONE not in driver.page_source

    label.clear()
    label.send_keys("Mme Lucie Martin")
    phone.send_keys("06 11 22 33 44")  # no country code: the server refuses it
    by_testid(driver, "edit-submit").click()
    error = by_testid(driver, "edit-error")
    assert "contacts[1].phone" in error.text and "E.164" in error.text  # the server's words
    assert phone.get_attribute("aria-invalid") == "true"
    assert by_testid(driver, "edit-form").is_displayed()
    assert label.get_attribute("value") == "Mme Lucie Martin"  # nothing typed is lost
    assert phone.get_attribute("value") == "06 11 22 33 44"
    assert api("GET", path)["person_label"] == "Mme Martin"  # and nothing was saved
    assert_fits_the_screen(driver)
    driver.save_screenshot(str(tmp_path / "care-phone-edit-refused.png"))

    phone.clear()
    phone.send_keys("+33 6 11 22 33 44")
    by_testid(driver, "edit-submit").click()
    edit_form = (By.CSS_SELECTOR, '[data-testid="edit-form"]')
    wait(driver).until(ec.invisibility_of_element_located(edit_form))
    driver.refresh()
    text_becomes(driver, "subscription-title", lambda text: text.startswith("Mme Lucie Martin"))
    assert card_phones(driver) == [masked(NEW_PHONE)]
    assert NEW_PHONE not in driver.page_source
    after = api("GET", path)
    assert after["person_label"] == "Mme Lucie Martin"
    assert [(c["name"], c["phone"]) for c in after["contacts"]] == [("Claire", NEW_PHONE)]
    # Only the changed fields were sent: no consent note, so the consent is not renewed.
    assert (after["consent_at"], after["consent_by"]) == (before["consent_at"], "test")

    by_testid(driver, "end-open").click()
    by_testid(driver, "end-form")
    assert api("GET", path)["status"] == "active"  # asking is not ending
    driver.save_screenshot(str(tmp_path / "care-phone-end-confirm.png"))
    by_testid(driver, "end-confirm").click()
    steady_wait(driver).until(status_badge_is("ended"))
    card = by_testid(driver, "subscription")
    assert card.find_elements(By.TAG_NAME, "button") == []  # no action on an ended one
    assert by_testid(driver, "ended-at").text not in ("", "—")
    assert api("GET", path)["status"] == "ended"


def test_operator_adds_a_contact_first_in_line_and_renews_the_consent(
    driver: webdriver.Chrome, base_url: str, foyer: Foyer
) -> None:
    sub_id = enrol(foyer.care)
    api = api_session(base_url, CARE_USER)
    claire = api("GET", f"/api/care/subscriptions/{sub_id}")["contacts"][0]
    driver.set_window_size(*DESK)
    open_logged_in(driver, base_url, CARE_USER)
    by_testid(driver, "nav-subscriptions").click()
    by_testid(driver, "edit-open").click()
    by_testid(driver, "edit-consent").send_keys("avenant signé 2026-201")
    by_testid(driver, "edit-add-contact").click()
    driver.find_elements(By.CSS_SELECTOR, '[data-testid="edit-contact-name"]')[1].send_keys("Paul")
    driver.find_elements(By.CSS_SELECTOR, '[data-testid="edit-contact-phone"]')[1].send_keys(
        SECOND_PHONE
    )
    driver.find_elements(By.CSS_SELECTOR, '[data-testid="edit-contact-up"]')[1].click()
    assert_fits_the_screen(driver)
    by_testid(driver, "edit-submit").click()
    steady_wait(driver).until(
        lambda d: card_phones(d) == [masked(SECOND_PHONE), masked(CONTACT_PHONE)]
    )

    after = api("GET", f"/api/care/subscriptions/{sub_id}")
    assert [c["phone"] for c in after["contacts"]] == [SECOND_PHONE, CONTACT_PHONE]
    assert after["contacts"][1]["id"] == claire["id"]  # same row: her SMS history and STOP kept
    assert after["consent_note"] == "avenant signé 2026-201"
    assert after["consent_by"] == CARE_USER  # a new note renews the consent, in her name
    assert CARE_USER in by_testid(driver, "consent").text
