"""axe-core on every page a buyer or a seller meets in local mode: the landing page in each of its states for
both listings (their accent colours differ), the buyer-facing error pages, and the console. 0 violations.

axe-core (node_modules/axe-core, an exact npm devDependency) is injected into each page by Playwright. The
pages' CSP allows only their own scripts (the landing page `script-src 'self'`, the console none at all), so
an injected script is refused; the test's own browser context therefore bypasses CSP (Playwright's
`bypass_csp`), and the product's headers are unchanged (the test checks that they still carry their CSP).
The module starts its own local mode, so that the faults it injects into the emulator and the buyers it
creates touch no other test.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.conftest import ENDPOINTS, PROJECT_ROOT, consecutive_free_ports, mint_token, post_json, request
from tests.e2e.test_state_across_restarts import LocalMode

pytestmark = pytest.mark.e2e

AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
LISTINGS = ("ai-skills", "data-analytics")
DETAILS = {
    "companyName": "Axe Check Ltd",
    "contactPerson": "Ada Lee",
    "contactEmail": "ada@example.com",
    "contactPhone": "+1 555 010 2030",
}


def _target(node: dict[str, Any]) -> str:
    return " ".join(part if isinstance(part, str) else json.dumps(part) for part in node["target"])


def assert_accessible(page: Any, what: str) -> None:
    """axe-core's default rules (WCAG 2 A and AA, and best practices) find nothing on the page as it is."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("axe.run(document, {resultTypes: ['violations']})")["violations"]
    lines = [
        f"  {violation['id']} ({violation['impact']}): {_target(node)}"
        for violation in found
        for node in violation["nodes"]
    ]
    assert not found, f"{what} ({page.url}): axe found {len(found)} violation(s):\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def own_local_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMode]:
    mode = LocalMode(consecutive_free_ports(3), tmp_path_factory.mktemp("axe") / "local.log", fresh=True)
    try:
        yield mode
    finally:
        mode.kill()
        ENDPOINTS.unlink(missing_ok=True)


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context(bypass_csp=True)  # axe is injected: see the module's docstring
    try:
        yield context.new_page()
    finally:
        context.close()


def _listing(local: LocalMode, path: str) -> dict[str, Any]:
    return dict(local.endpoints["listings"][path])


def _post_form(page: Any, action: str, fields: dict[str, str], enctype: str | None = None) -> None:
    """An HTML form elsewhere posts these fields to `action`, as AWS Marketplace's page does."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    encoding = f' enctype="{enctype}"' if enctype else ""
    page.set_content(f'<form id="f" method="post" action="{html.escape(action)}"{encoding}>{inputs}</form>')
    with page.expect_navigation():
        page.eval_on_selector("#f", "form => form.submit()")


def _arrive(local: LocalMode, page: Any, path: str, **mint: Any) -> dict[str, Any]:
    listing = _listing(local, path)
    minted = mint_token(local.endpoints, listing["productCode"], **mint)
    _post_form(page, listing["fulfillmentUrl"], {"x-amzn-marketplace-token": minted["token"]})
    return minted


def test_the_pages_csp_refuses_an_injected_script(own_local_mode: LocalMode, browser: Any) -> None:
    """Why the test's context bypasses CSP: without it, the pages refuse axe (their CSP is unchanged)."""
    site = request(_listing(own_local_mode, "ai-skills")["siteUrl"])[1]["content-security-policy"]
    assert "script-src 'self'" in site and "unsafe-inline" not in site
    console = request(own_local_mode.endpoints["consoleUrl"])[1]["content-security-policy"]
    assert console.startswith("default-src 'none'") and "script-src" not in console
    context = browser.new_context()
    try:
        page = context.new_page()
        for url in (_listing(own_local_mode, "ai-skills")["siteUrl"], own_local_mode.endpoints["consoleUrl"]):
            page.goto(url)
            refused: list[str] = []
            page.on("console", lambda message, refused=refused: refused.append(message.text))
            with pytest.raises(PlaywrightError):
                page.add_script_tag(path=str(AXE))
            assert page.evaluate("typeof window.axe") == "undefined"
            assert any("Content Security Policy" in text for text in refused), refused
    finally:
        context.close()


@pytest.mark.parametrize("path", LISTINGS)
def test_the_landing_page_in_every_state(own_local_mode: LocalMode, tab: Any, path: str) -> None:
    listing = _listing(own_local_mode, path)
    page = tab

    page.goto(listing["siteUrl"])
    page.wait_for_selector("#state-no-registration:not([hidden])")
    assert_accessible(page, f"{path}: no registration")

    # Loading: the registration API has not answered yet.
    held: list[Any] = []
    page.route("**/api/registration", lambda route: held.append(route))
    page.goto(listing["siteUrl"], wait_until="domcontentloaded")
    page.wait_for_selector("#state-loading:not([hidden])")
    assert_accessible(page, f"{path}: loading")
    # The service is busy.
    for route in held:
        route.fulfill(status=503, content_type="application/json", body='{"message": "busy"}')
    page.unroute("**/api/registration")
    page.route(
        "**/api/registration",
        lambda route: route.fulfill(status=503, content_type="application/json", body="{}"),
    )
    page.reload()
    page.wait_for_selector("#state-error:not([hidden])")
    assert_accessible(page, f"{path}: error")
    page.unroute("**/api/registration")

    _arrive(own_local_mode, page, path, status="pending")
    page.wait_for_selector("#state-form:not([hidden])")
    assert_accessible(page, f"{path}: form")

    page.fill("#companyName", "")
    page.fill("#contactEmail", "not-an-email")
    page.fill("#contactPhone", "call me")
    page.click("#submit")
    page.wait_for_selector("#contactEmail-error:not([hidden])")
    assert_accessible(page, f"{path}: form with mistakes")

    for field, value in DETAILS.items():
        page.fill(f"#{field}", value)
    page.click("#submit")
    page.wait_for_selector("#state-registered:not([hidden])")
    assert page.inner_text("#status") == "Registration complete."
    assert_accessible(page, f"{path}: registered")

    page.reload()
    page.wait_for_selector("#state-registered:not([hidden])")
    assert page.inner_text("#registered-title") == "You are already registered"
    assert_accessible(page, f"{path}: already registered")


@pytest.mark.parametrize("path", LISTINGS)
def test_the_free_trial_form(own_local_mode: LocalMode, tab: Any, path: str) -> None:
    tab.goto(own_local_mode.endpoints["consoleUrl"])
    with tab.expect_navigation():
        _section(tab, path).get_by_role("link", name="Subscribe with a free trial").click()
    assert "x-amzn-marketplace-offer-type" in tab.content()
    with tab.expect_navigation():
        tab.click("text=Set up your account")
    tab.wait_for_selector("#free-trial:not([hidden])")
    assert_accessible(tab, f"{path}: free-trial form")


@pytest.mark.parametrize("path", LISTINGS)
def test_the_buyer_facing_error_pages(own_local_mode: LocalMode, tab: Any, path: str) -> None:
    listing = _listing(own_local_mode, path)
    other = _listing(own_local_mode, next(p for p in LISTINGS if p != path))
    page = tab
    pages: list[tuple[str, int, Any]] = []

    def check(what: str, status: int, response: Any) -> None:
        assert response is not None and response.status == status, what
        assert page.locator("h1").count() == 1, what
        assert_accessible(page, f"{path}: {what} ({status})")
        pages.append((what, status, response))

    with page.expect_navigation() as navigation:
        _post_form(page, listing["fulfillmentUrl"], {"x-amzn-marketplace-token": "never-issued"})
    check("invalid token", 400, navigation.value)
    with page.expect_navigation() as navigation:
        _post_form(page, listing["fulfillmentUrl"], {"other": "field"})
    check("no token", 400, navigation.value)
    minted = mint_token(own_local_mode.endpoints, other["productCode"])
    with page.expect_navigation() as navigation:
        _post_form(page, listing["fulfillmentUrl"], {"x-amzn-marketplace-token": minted["token"]})
    check("another product's token", 403, navigation.value)
    with page.expect_navigation() as navigation:
        _post_form(page, listing["fulfillmentUrl"], {"x": "y"}, enctype="text/plain")
    check("not a form post", 415, navigation.value)
    check("fulfillment URL visited", 200, page.goto(listing["fulfillmentUrl"]))
    check("no such page", 404, page.goto(listing["siteUrl"] + "nowhere.html"))

    emulator = own_local_mode.endpoints["emulator"]["url"]
    faults = {"throttleEvery": 1, "operations": ["ResolveCustomer"]}
    assert post_json(f"{emulator}/_emulator/faults", faults)[0] == 200
    try:
        minted = mint_token(own_local_mode.endpoints, listing["productCode"])
        with page.expect_navigation() as navigation:
            _post_form(page, listing["fulfillmentUrl"], {"x-amzn-marketplace-token": minted["token"]})
        check("AWS Marketplace busy", 503, navigation.value)
    finally:
        assert post_json(f"{emulator}/_emulator/faults", {})[0] == 200


@pytest.mark.parametrize("path", LISTINGS)
def test_the_pages_a_form_posted_without_javascript_gets(
    own_local_mode: LocalMode, browser: Any, tab: Any, path: str
) -> None:
    """Without JavaScript the form is posted as HTML and answered with a page. axe needs JavaScript, so it
    runs on that very answer (status, headers and body as the server sent them) in a tab with JavaScript."""
    listing = _listing(own_local_mode, path)
    answers: list[tuple[str, int, dict[str, str], bytes]] = []
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()

        def submit(what: str, fields: dict[str, str]) -> None:
            for field, value in fields.items():
                page.fill(f"#{field}", value)
            with page.expect_navigation() as navigation:
                page.click("#submit")
            response = navigation.value
            answers.append((what, response.status, response.headers, response.body()))

        page.goto(listing["siteUrl"])  # no registration in this browser: the link has expired
        submit("expired link", DETAILS)
        _arrive(own_local_mode, page, path)
        submit("form with mistakes", {**DETAILS, "contactEmail": "not-an-email", "contactPhone": "x"})
        page.goto(listing["siteUrl"])
        submit("registered", DETAILS)
    finally:
        context.close()
    assert [(what, status) for what, status, _, _ in answers] == [
        ("expired link", 401),
        ("form with mistakes", 422),
        ("registered", 201),
    ]
    for what, status, headers, body in answers:
        tab.route(listing["apiUrl"] + "register", _answer(status, headers, body))
        response = tab.goto(listing["apiUrl"] + "register")
        assert response.status == status
        assert_accessible(tab, f"{path}: without JavaScript, {what} ({status})")
        tab.unroute(listing["apiUrl"] + "register")


def _answer(status: int, headers: dict[str, str], body: bytes) -> Callable[[Any], None]:
    return lambda route: route.fulfill(status=status, headers=headers, body=body)


def _section(page: Any, path: str) -> Any:
    return page.locator("section").filter(has=page.locator("h2", has_text=path))


def test_the_console_pages(own_local_mode: LocalMode, tab: Any) -> None:
    console = own_local_mode.endpoints["consoleUrl"]
    page = tab
    page.goto(console)
    assert_accessible(page, "console dashboard, before any usage")

    # A registered buyer with usage billed (the chart has bars), and a buyer who never registered.
    page.goto(f"{console}buy/data-analytics")
    account = page.inner_text("main strong")
    assert_accessible(page, "console: subscribed as a new buyer")
    with page.expect_navigation():
        page.click("text=Set up your account")
    page.wait_for_selector("#state-form:not([hidden])")
    for field, value in DETAILS.items():
        page.fill(f"#{field}", value)
    page.click("#submit")
    page.wait_for_selector("#state-registered:not([hidden])")
    announced = mint_token(own_local_mode.endpoints, _listing(own_local_mode, "ai-skills")["productCode"])
    own_local_mode.record(account, 4, hours_ago=1)
    own_local_mode.record(account, 2, hours_ago=0)

    page.goto(console)
    with page.expect_navigation():
        _section(page, "data-analytics").get_by_role("button", name="Bill now").click()
    assert "billed" in page.inner_text("main")
    assert_accessible(page, "console: billed now")

    page.goto(console)
    assert page.locator("rect.bar.billed").count() == 2
    assert_accessible(page, "console dashboard, with subscribers, usage and charts")

    response = page.goto(f"{console}buy/nowhere")
    assert response is not None and response.status == 404
    assert_accessible(page, "console: no such listing (404)")
    response = page.goto(f"{console}buy/data-analytics?account=12")
    assert response is not None and response.status == 400
    assert_accessible(page, "console: bad request (400)")
    row = page.locator("tr", has_text=announced["customerAWSAccountId"])
    for _ in range(40):  # the lifecycle function hears of the subscription through its queue
        page.goto(console)
        if row.count():
            break
        page.wait_for_timeout(250)
    with page.expect_navigation() as navigation:  # an active license cannot fail: refused
        row.get_by_role("button", name="subscribe-fail").click()
    assert navigation.value.status == 409
    assert_accessible(page, "console: event refused (409)")
