"""A new seller's first hour, in the browser, as the README tells it: start local mode, subscribe as a buyer
from the console, register on the listing's page, record usage with the seller's command, press "Bill now",
see it billed in the console's table and chart; then stop local mode (SIGKILL, as a machine that loses power)
and start it again: the subscriber and the billing are still there, and nothing is billed twice, neither by
"Bill now" nor by the scheduled metering job. Screenshots of each step go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PROJECT_ROOT
from tests.e2e.test_state_across_restarts import LocalMode, start  # noqa: F401 - `start` is a fixture

pytestmark = pytest.mark.e2e

LISTING = "data-analytics"  # LocalMode's listing
METERING_SECONDS = 2  # the scheduled job runs often, so the test can see that it bills nothing twice
BUYER = {
    "companyName": "First Buyer Ltd",
    "contactPerson": "Robin Hale",
    "contactEmail": "robin@example.com",
    "contactPhone": "+1 555 010 2030",
}


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def record_usage(account: str, quantity: int, moment: datetime) -> None:
    """What the seller's product runs (README, "Record usage"), against the running local mode."""
    command = [sys.executable, "-m", "operations.record_usage", "--local", "--listing", LISTING]
    command += ["--customer", account, "--dimension", "lab_hours", "--quantity", str(quantity)]
    command += ["--time", moment.strftime("%Y-%m-%dT%H:%M:%SZ")]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "lambda")]),
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _billed(mode: LocalMode, account: str) -> dict[datetime, list[str]]:
    """What the emulator billed this buyer, per hour: one quantity per hour, or it was billed twice."""
    hours: dict[datetime, list[str]] = {}
    for record in mode.billed():
        if record["customer"] == account:
            assert record["status"] == "Success", record
            hours.setdefault(datetime.fromisoformat(record["hour"]), []).append(record["quantity"])
    return hours


def _section(page: Any) -> Any:
    return page.locator("section").filter(has=page.locator("h2", has_text=LISTING))


def _dashboard(page: Any, mode: LocalMode) -> Any:
    page.goto(mode.endpoints["consoleUrl"])
    return _section(page)


def _bill_now(page: Any, mode: LocalMode) -> str:
    with page.expect_navigation():
        _dashboard(page, mode).get_by_role("button", name="Bill now").click()
    return str(page.inner_text("main"))


def _console_shows_billed(page: Any, mode: LocalMode, account: str, hours: dict[datetime, str]) -> None:
    """The console's table of what AWS Marketplace billed, and the chart beside it, hold these hours."""
    section = _dashboard(page, mode)
    table = section.locator("table", has=page.locator("th", has_text="Customer"))
    billed = [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in table.locator("tbody tr").all()
        if account in row.inner_text()
    ]
    shown = sorted((datetime.fromisoformat(row[3]), row[0], row[2], row[4], row[5]) for row in billed)
    assert shown == sorted((hour, account, "lab_hours", n, "Success") for hour, n in hours.items()), billed
    chart = section.locator("figure.chart", has=page.locator("figcaption", has_text="lab_hours"))
    bars = sorted(chart.locator("rect.bar.billed title").all_text_contents())
    assert bars == sorted(f"{hour:%Y-%m-%dT%H:00:00Z}: billed {n}" for hour, n in hours.items())


def test_a_new_seller_bills_a_buyer_once_across_a_restart(
    start: Any,  # noqa: F811 - the fixture imported above
    tab: Any,
    artifacts: Path,
) -> None:
    first = start(fresh=True, metering_interval=METERING_SECONDS)
    page = tab

    # The console: subscribe as a new buyer, then AWS Marketplace's "Set up your account" button.
    section = _dashboard(page, first)
    assert section.inner_text().count("No registered subscribers yet.") == 1
    with page.expect_navigation():
        section.get_by_role("link", name="Subscribe as a new buyer").click()
    account = page.inner_text("main strong")
    assert len(account) == 12 and account.isdigit()
    page.screenshot(path=str(artifacts / "journey-1-subscribed.png"), full_page=True)
    with page.expect_navigation():
        page.click("text=Set up your account")
    assert page.url == first.listing["siteUrl"]
    page.wait_for_selector("#state-form:not([hidden])")
    for field, value in BUYER.items():
        page.fill(f"#{field}", value)
    page.click("#submit")
    page.wait_for_selector("#state-registered:not([hidden])")
    assert page.inner_text("#registered-company") == BUYER["companyName"]
    page.screenshot(path=str(artifacts / "journey-2-registered.png"), full_page=True)

    # The product reports usage in the current hour: the scheduled job sends only hours that are over.
    now = datetime.now(UTC)
    if now.minute == 59 and now.second > 30:  # not so near the hour's end that it ends meanwhile
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    record_usage(account, 7, now)
    section = _dashboard(page, first)
    assert "Nothing billed yet." in section.inner_text()
    usage = section.locator("tr", has_text=account).filter(has_text="lab_hours")
    assert usage.count() == 1 and "7" in usage.inner_text()

    # "Bill now": the current hour is sent at once.
    report = _bill_now(page, first)
    assert "1 billed" in report, report
    page.screenshot(path=str(artifacts / "journey-3-billed-now.png"), full_page=True)
    _console_shows_billed(page, first, account, {_hour(now): "7"})
    page.screenshot(path=str(artifacts / "journey-4-console-billed.png"), full_page=True)
    assert _billed(first, account) == {_hour(now): ["7"]}

    # Stopped hard, and started again without --fresh: everything is still there.
    first.kill()
    second = start(metering_interval=METERING_SECONDS)
    assert "Kept 1 subscriber(s) (1 registered), 1 usage record(s) and 1 billed record(s)" in second.output()
    section = _dashboard(page, second)
    subscriber = section.locator("tr", has_text=BUYER["companyName"])
    assert subscriber.count() == 1 and account in subscriber.inner_text()
    _console_shows_billed(page, second, account, {_hour(now): "7"})
    page.screenshot(path=str(artifacts / "journey-5-after-restart.png"), full_page=True)

    # Bill now again: nothing left to send.
    report = _bill_now(page, second)
    assert "sent 0 usage record(s)" in report, report
    # The scheduled job: an earlier hour's usage (reported late) is billed by its next run, and the hour
    # billed before the restart is not billed again.
    earlier = now - timedelta(hours=2)
    record_usage(account, 5, earlier)
    deadline = time.monotonic() + 30
    while _hour(earlier) not in _billed(second, account) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2 * METERING_SECONDS)  # and another run or two after it
    assert _billed(second, account) == {_hour(now): ["7"], _hour(earlier): ["5"]}
    _console_shows_billed(page, second, account, {_hour(now): "7", _hour(earlier): "5"})
    page.screenshot(path=str(artifacts / "journey-6-scheduled-run.png"), full_page=True)
