"""The buyer's journey in headless Chromium against local mode: AWS Marketplace's POST, the landing page,
the form, and the states a buyer can meet. Screenshots of each step go to tests/e2e/artifacts/."""

from __future__ import annotations

import html
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PROJECT_ROOT, billed_for, mint_token, post_json

pytestmark = pytest.mark.e2e

DETAILS = {
    "companyName": "Acme <b>Learning</b> & Co",
    "contactPerson": "Jane Doe",
    "contactEmail": "jane.doe@example.com",
    "contactPhone": "+1 555 010 2030",
}


class Page:
    """A browser tab that fails the test on any script error, console error or CSP violation."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # The API's expected 4xx answers are logged by Chromium as failed loads; CSP violations
        # ("Refused to ...") and script errors are not expected and fail the test.
        expected = message.text.startswith("Failed to load resource: the server responded with a status of 4")
        if message.type == "error" and not expected:
            self.problems.append(f"console {message.type}: {message.text}")

    def arrive_from_marketplace(self, fulfillment_url: str, token: str) -> None:
        """Do what AWS Marketplace does: an HTML form POSTs the token to the fulfillment URL."""
        self.page.set_content(
            f'<form id="mp" method="post" action="{html.escape(fulfillment_url)}">'
            f'<input type="hidden" name="x-amzn-marketplace-token" value="{html.escape(token)}"></form>'
        )
        with self.page.expect_navigation():
            self.page.eval_on_selector("#mp", "form => form.submit()")


@pytest.fixture
def tab(browser: Any) -> Iterator[Page]:
    context = browser.new_context()
    page = Page(context.new_page())
    try:
        yield page
        assert page.problems == []
    finally:
        context.close()


def test_a_buyer_from_marketplace_registers_through_the_page(
    local_mode: dict[str, Any], tab: Page, artifacts: Path
) -> None:
    listing = local_mode["listings"]["ai-skills"]
    # Marketplace has not confirmed the subscription yet when the buyer arrives.
    minted = mint_token(local_mode, listing["productCode"], status="pending")

    tab.arrive_from_marketplace(listing["fulfillmentUrl"], minted["token"])
    page = tab.page
    assert page.url == listing["siteUrl"]  # the token is in no URL
    assert minted["token"] not in page.url
    page.wait_for_selector("#state-form:not([hidden])")
    assert page.inner_text("h1") == "Codio AI Skills Training"
    assert "Active learners in the hour (Users)" in page.inner_text("#dimensions")
    page.screenshot(path=str(artifacts / "1-form.png"), full_page=True)

    for field, value in DETAILS.items():
        page.fill(f"#{field}", value)
    page.click("#submit")
    page.wait_for_selector("#state-registered:not([hidden])")
    assert page.inner_text("#registered-company") == DETAILS["companyName"]  # shown as text, not markup
    assert "Waiting for AWS Marketplace to confirm" in page.inner_text("#subscription-status")
    page.screenshot(path=str(artifacts / "2-registered.png"), full_page=True)

    # AWS Marketplace confirms: its events reach the lifecycle function through the listing's queue.
    confirm = {
        "type": "subscribe-success",
        "productCode": listing["productCode"],
        "customerAWSAccountId": minted["customerAWSAccountId"],
    }
    assert post_json(f"{local_mode['emulator']['url']}/_emulator/events", confirm)[0] == 200
    page.wait_for_timeout(200)
    for _ in range(50):
        page.reload()
        page.wait_for_selector("#state-registered:not([hidden])")
        if "active" in page.inner_text("#subscription-status"):
            break
        page.wait_for_timeout(200)
    assert page.inner_text("#registered-title") == "You are already registered"
    assert page.inner_text("#subscription-status") == "Your subscription is active."


def test_invalid_fields_are_announced_next_to_each_field(
    local_mode: dict[str, Any], tab: Page, artifacts: Path
) -> None:
    listing = local_mode["listings"]["data-analytics"]
    tab.arrive_from_marketplace(
        listing["fulfillmentUrl"], mint_token(local_mode, listing["productCode"])["token"]
    )
    page = tab.page
    page.wait_for_selector("#state-form:not([hidden])")
    page.fill("#companyName", "Beta Analytics")
    page.fill("#contactPerson", "Sam")
    page.fill("#contactEmail", "not-an-email")
    page.fill("#contactPhone", "call me")
    page.click("#submit")
    page.wait_for_selector("#contactEmail-error:not([hidden])")
    assert page.get_attribute("#contactEmail", "aria-invalid") == "true"
    assert page.get_attribute("#contactPhone", "aria-invalid") == "true"
    assert page.get_attribute("#companyName", "aria-invalid") is None
    assert page.evaluate("document.activeElement.id") == "contactEmail"
    assert page.input_value("#companyName") == "Beta Analytics"  # nothing typed is lost
    page.screenshot(path=str(artifacts / "3-field-errors.png"), full_page=True)


def test_arriving_without_a_registration_explains_where_to_start(
    local_mode: dict[str, Any], tab: Page, artifacts: Path
) -> None:
    tab.page.goto(local_mode["listings"]["ai-skills"]["siteUrl"])
    tab.page.wait_for_selector("#state-no-registration:not([hidden])")
    assert "Set up your account" in tab.page.inner_text("#state-no-registration")
    tab.page.screenshot(path=str(artifacts / "0-no-registration.png"), full_page=True)


def test_an_expired_link_gets_a_page_that_says_what_to_do(local_mode: dict[str, Any], tab: Page) -> None:
    listing = local_mode["listings"]["ai-skills"]
    tab.arrive_from_marketplace(listing["fulfillmentUrl"], "a-token-marketplace-never-issued")
    assert "return to AWS Marketplace" in tab.page.inner_text("main")


def test_the_form_works_without_javascript(local_mode: dict[str, Any], browser: Any) -> None:
    listing = local_mode["listings"]["data-analytics"]
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        Page(page).arrive_from_marketplace(
            listing["fulfillmentUrl"], mint_token(local_mode, listing["productCode"])["token"]
        )
        for field, value in {**DETAILS, "companyName": "No Script Ltd"}.items():
            page.fill(f"#{field}", value)
        with page.expect_navigation():
            page.click("#submit")
        assert "You are registered" in page.inner_text("h1")
        assert "No Script Ltd" in page.inner_text("main")
    finally:
        context.close()


def test_the_page_fits_a_phone(local_mode: dict[str, Any], browser: Any, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 667})
    try:
        page = context.new_page()
        listing = local_mode["listings"]["ai-skills"]
        Page(page).arrive_from_marketplace(
            listing["fulfillmentUrl"], mint_token(local_mode, listing["productCode"])["token"]
        )
        page.wait_for_selector("#state-form:not([hidden])")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(artifacts / "4-phone.png"), full_page=True)
    finally:
        context.close()


def test_the_console_plays_aws_marketplace_for_a_whole_journey(
    local_mode: dict[str, Any], tab: Page, artifacts: Path
) -> None:
    page = tab.page
    page.goto(local_mode["consoleUrl"] + "buy/data-analytics")
    page.screenshot(path=str(artifacts / "5-console-subscribed.png"), full_page=True)
    with page.expect_navigation():
        page.click("text=Set up your account")
    assert page.url == local_mode["listings"]["data-analytics"]["siteUrl"]
    page.wait_for_selector("#state-form:not([hidden])")
    for field, value in {**DETAILS, "companyName": "Console Buyer Ltd"}.items():
        page.fill(f"#{field}", value)
    page.click("#submit")
    page.wait_for_selector("#state-registered:not([hidden])")

    def our_status() -> str:
        """The Status column: what the listing's subscribers table says (On Marketplace is the next one)."""
        page.goto(local_mode["consoleUrl"])
        row = page.locator("tr", has_text="Console Buyer Ltd")
        assert row.count() == 1
        return row.locator("td").nth(4).inner_text().strip()  # company, e-mail, account, license, status

    def wait_for_status(wanted: str) -> None:
        for _ in range(60):
            if our_status() == wanted:
                return
            page.wait_for_timeout(250)
        assert our_status() == wanted

    # Marketplace announced the subscription when it sent the buyer: the lifecycle function activated it.
    wait_for_status("active")
    row = page.locator("tr", has_text="Console Buyer Ltd")
    account = row.locator("td").nth(2).inner_text().strip()

    # The product reports usage in the current hour, which is normally sent only after the hour ends.
    command = [sys.executable, "-m", "operations.record_usage", "--local", "--listing", "data-analytics"]
    command += ["--customer", account, "--dimension", "lab_hours", "--quantity", "6"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stderr

    with page.expect_navigation():
        row.locator("button", has_text="unsubscribe-pending").click()
    wait_for_status("cancel-pending")
    # The cancellation flushed the current hour at once: Marketplace billed it inside the final hour.
    product = local_mode["listings"]["data-analytics"]["productCode"]
    (billed,) = [r for r in billed_for(local_mode, product, account) if r["quantity"] == "6"]
    assert (billed["dimension"], billed["status"]) == ("lab_hours", "Success")
    page.screenshot(path=str(artifacts / "6-console-cancel-pending.png"), full_page=True)

    # What AWS sends next for this (EventBridge) listing ends nothing by itself: the license stays in its
    # final hour, and the metering job closes it when that hour is over.
    with page.expect_navigation():
        page.locator("tr", has_text="Console Buyer Ltd").locator(
            "button", has_text="unsubscribe-success"
        ).click()
    page.wait_for_timeout(3000)  # the lifecycle queue is polled every second
    assert our_status() == "cancel-pending"
    page.screenshot(path=str(artifacts / "7-console-final-hour.png"), full_page=True)
