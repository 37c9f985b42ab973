"""The billing staff's page in a real headless Chromium, against a real Foyer, registry and
InfluxDB: a billing officer previews Batzendorf's first semester of 2013, reads the
anomalies and the total, issues the run after confirming, downloads the bill and
cancels it with a credit note (issue 5, part 4)."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from core.registry import Registry
from core.settings import Settings
from core.store.influx import InfluxStore
from tests.browser.conftest import BILLING, by_testid, log_in, requires_browser, wait
from tests.browser.test_care_page import assert_fits_the_screen
from tests.integration.test_billing_api import DEBTOR, batzendorf_events, seed_batzendorf

pytestmark = [requires_browser, pytest.mark.servers]

INVOICE = '[data-testid="invoice"][data-number="{}"]'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The browser suite's settings, plus Batzendorf's move-in household and its lifts."""
    registry = Registry(settings.registry)
    try:
        seed_batzendorf(registry)
    finally:
        registry.close()

    async def write() -> None:
        store = InfluxStore(settings.influx_url, settings.influx_db)
        await store.open()
        try:
            await store.write(batzendorf_events())
        finally:
            await store.close()

    asyncio.run(write())
    return settings


def fetch(driver: webdriver.Chrome, url: str) -> tuple[int, str, bytes]:
    """GET ``url`` with the browser's session cookie: what a click on the link downloads."""
    cookie = driver.get_cookie("foyer_session")
    assert cookie is not None
    assert url.startswith("http://127.0.0.1:"), url
    headers = {"Cookie": f"foyer_session={cookie['value']}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (checked above)
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (Foyer under test)
        return resp.status, resp.headers.get_content_type(), resp.read()


def test_billing_officer_previews_issues_downloads_and_credits_a_bill(
    driver: webdriver.Chrome, base_url: str, tmp_path: Path
) -> None:
    driver.get(f"{base_url}/login")
    log_in(driver, BILLING)
    wait(driver).until(ec.url_contains("/billing"))  # billing staff land on their page

    Select(by_testid(driver, "p-tariff")).select_by_value("batzendorf-2013")
    by_testid(driver, "p-period").send_keys("2013-S1")
    by_testid(driver, "p-submit").click()

    assert "55,41" in by_testid(driver, "total-to-issue").text
    bill = by_testid(driver, "bill")
    assert bill.get_attribute("data-household") == "H1" and "55,41" in bill.text
    group = by_testid(driver, "anomaly-group")
    assert group.get_attribute("data-reason") == "lift_of_unbound_bin"
    anomalies = driver.find_elements(By.CSS_SELECTOR, '[data-testid="anomaly"]')
    assert len(anomalies) == 2 and all("B-LOST" in a.text for a in anomalies)
    assert by_testid(driver, "run-status").get_attribute("data-status") == "preview"
    assert_fits_the_screen(driver)
    driver.save_screenshot(str(tmp_path / "billing-preview.png"))

    day = by_testid(driver, "issue-date")
    driver.execute_script("arguments[0].value = '2013-07-10'", day)
    by_testid(driver, "issue").click()
    question = by_testid(driver, "issue-confirm-text").text
    assert "55,41" in question and "10/07/2013" in question
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="invoice"]')  # not yet
    by_testid(driver, "issue-confirm").click()

    locator = (By.CSS_SELECTOR, INVOICE.format("2013-OM-000001"))
    invoice = wait(driver).until(ec.visibility_of_element_located(locator))
    assert "2013-OM-000001" in by_testid(driver, "notice").text
    assert by_testid(driver, "run-status").get_attribute("data-status") == "issued"
    pdf_link = invoice.find_element(By.CSS_SELECTOR, '[data-testid="invoice-pdf"]')
    status, content_type, body = fetch(driver, pdf_link.get_attribute("href") or "")
    assert (status, content_type, body[:4]) == (200, "application/pdf", b"%PDF")
    merged = by_testid(driver, "dl-pdf").get_attribute("href") or ""
    assert fetch(driver, merged)[:2] == (200, "application/pdf")
    assert DEBTOR not in driver.page_source  # names are on the bills, not on the list

    invoice.find_element(By.CSS_SELECTOR, '[data-testid="invoice-credit"]').click()
    by_testid(driver, "credit-form-submit").click()  # no reason: refused on the page
    assert "reason" in by_testid(driver, "credit-form-error").text
    by_testid(driver, "credit-reason").send_keys("bac attribué par erreur")
    by_testid(driver, "credit-form-submit").click()

    note_locator = (By.CSS_SELECTOR, '[data-testid="invoice"][data-kind="credit_note"]')
    note = wait(driver).until(ec.visibility_of_element_located(note_locator))
    assert "2013-OM-000001" in note.text and "55,41" in note.text  # cancels it, in full
    cancelled = driver.find_element(*locator)
    assert "annulée" in cancelled.text
    assert cancelled.find_elements(By.CSS_SELECTOR, '[data-testid="invoice-reissue"]')
    assert "avoir" in by_testid(driver, "notice").text.lower()
    driver.save_screenshot(str(tmp_path / "billing-credit-note.png"))
