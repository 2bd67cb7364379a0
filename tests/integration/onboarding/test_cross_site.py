"""Registration takes posts from the listing's own page only: another site cannot register the buyer whose
cookie the browser holds (and so lock the real buyer out with a 409)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from handlers import fulfillment, registration
from marketplace_saas.settings import listing_settings
from tests.integration.onboarding.conftest import Listing
from tests.support.events import FakeLambdaContext, fulfillment_post, register_post, session_cookie

CONTEXT = FakeLambdaContext()
SITE = "https://d111111abcdef8.cloudfront.net"
DETAILS = {
    "companyName": "Acme Learning Ltd",
    "contactPerson": "Jane Doe",
    "contactEmail": "jane.doe@example.com",
    "contactPhone": "+1 555 010 2030",
}
FORGED = {**DETAILS, "companyName": "Evil Corp", "contactEmail": "attacker@evil.example"}


@pytest.fixture
def cookie(onboard: Listing, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SITE_ORIGINS", SITE)
    listing_settings.cache_clear()  # what the stack gives the function
    onboard.marketplace.buyer("tok-valid")
    return session_cookie(fulfillment.handler(fulfillment_post("tok-valid"), CONTEXT))


def post(fields: dict[str, str], cookie: str, **headers: str) -> dict[str, object]:
    event = register_post(fields, cookie)
    event["headers"].update(headers)
    event["multiValueHeaders"].update({name: [value] for name, value in headers.items()})
    return registration.handler(event, CONTEXT)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # a sandboxed frame or a no-referrer page: the origin hidden
        {"Origin": SITE + ".evil.example"},
        {"Origin": "http://d111111abcdef8.cloudfront.net"},  # not over HTTPS
        {"Referer": "https://evil.example/pay.html"},
        {"Origin": "https://evil.example", "Referer": SITE + "/"},
    ],
    ids=["other site", "null", "lookalike", "plain http", "referer only", "origin wins over referer"],
)
def test_a_cross_site_post_is_refused_and_the_buyer_can_still_register(
    onboard: Listing, cookie: str, headers: dict[str, str]
) -> None:
    refused = post(FORGED, cookie, **headers)
    assert refused["statusCode"] == 403
    error = json.loads(str(refused["body"]))
    assert error["error"] == "cross_site_request"
    assert "not from this product's own page" in error["message"]
    assert onboard.subscribers == []
    assert post(DETAILS, cookie, Origin=SITE)["statusCode"] == 201


@pytest.mark.parametrize(
    "headers",
    [{"Origin": SITE}, {"Origin": SITE.upper()}, {"Referer": SITE + "/?from=marketplace"}, {}],
    ids=["own origin", "own origin in capitals", "own page as referer", "neither (not a browser)"],
)
def test_the_listing_s_own_page_registers(onboard: Listing, cookie: str, headers: dict[str, str]) -> None:
    assert post(DETAILS, cookie, **headers)["statusCode"] == 201
    (item,) = onboard.subscribers
    assert item["companyName"] == DETAILS["companyName"]


def test_a_cross_site_form_post_gets_a_page_naming_the_other_site_escaped(
    onboard: Listing, cookie: str
) -> None:
    event = register_post(urlencode(FORGED), cookie, content_type="application/x-www-form-urlencoded")
    origin = 'https://evil.example"><script>alert(1)</script>'
    event["headers"]["Origin"] = origin
    event["multiValueHeaders"]["Origin"] = [origin]
    refused = registration.handler(event, CONTEXT)
    assert refused["statusCode"] == 403
    assert refused["multiValueHeaders"]["Content-Type"] == ["text/html; charset=utf-8"]
    page = str(refused["body"])
    assert "not from this product&#x27;s own page" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert onboard.subscribers == []
