"""The pages the fulfillment and registration functions answer with carry the listing's brand, from the
environment the synthesized stack gives them, and never show a validator's own text."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlencode

import pytest

from handlers import fulfillment, registration
from marketplace_saas.marketplace import MarketplaceUnavailable, TokenRejected
from marketplace_saas.settings import listing_settings
from tests.integration.onboarding.conftest import Listing
from tests.support.events import (
    FakeLambdaContext,
    api_event,
    fulfillment_post,
    header,
    register_post,
    session_cookie,
)

CONTEXT = FakeLambdaContext()
FORM = "application/x-www-form-urlencoded"
GOOD = {
    "companyName": "Acme Learning Ltd",
    "contactPerson": "Jane Doe",
    "contactEmail": "jane.doe@example.com",
    "contactPhone": "+1 555 010 2030",
}
HOSTILE = '<script>alert("x")</script> "Quoted" & Co'
PYDANTIC_WORDS = ("String should", "Input should", "Value error", "value is not a valid", "Field required")


def _arrive(onboard: Listing, token: str = "tok-brand") -> str:
    onboard.marketplace.buyer(token)
    response = fulfillment.handler(fulfillment_post(token), CONTEXT)
    assert response["statusCode"] == 303
    return session_cookie(response)


def _assert_branded(html: str, name: str = "Listing onboard") -> None:
    assert f'<p class="masthead-name">{name}</p>' in html
    assert '<a href="mailto:help@onboard.example">help@onboard.example</a>' in html
    assert 'href="/brand.css"' in html and "<h1>" in html


def test_the_stack_gives_both_buyer_facing_functions_the_brand(onboard: Listing) -> None:
    handlers = {f.handler: f.environment for f in onboard.template.functions.values()}
    for handler in ("handlers.fulfillment.handler", "handlers.registration.handler"):
        assert handlers[handler]["LISTING_NAME"] == "Listing onboard"
        assert handlers[handler]["SUPPORT_EMAIL"] == "help@onboard.example"


@pytest.mark.parametrize(
    ("event", "fault", "status"),
    [
        (fulfillment_post("tok-unknown"), None, HTTPStatus.BAD_REQUEST),
        (fulfillment_post(None), None, HTTPStatus.BAD_REQUEST),
        (fulfillment_post("tok-fault"), TokenRejected("expired"), HTTPStatus.BAD_REQUEST),
        (fulfillment_post("tok-fault"), MarketplaceUnavailable("busy"), HTTPStatus.SERVICE_UNAVAILABLE),
        (
            api_event("POST", "/marketplace/fulfillment", body="{}", content_type="application/json"),
            None,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        ),
        (api_event("GET", "/marketplace/nowhere"), None, HTTPStatus.NOT_FOUND),
        (api_event("GET", "/marketplace/fulfillment"), None, HTTPStatus.OK),
    ],
    ids=["invalid-token", "no-token", "expired", "unavailable", "not-a-form", "not-found", "visited"],
)
def test_every_fulfillment_page_carries_the_brand(
    onboard: Listing, event: dict[str, object], fault: Exception | None, status: HTTPStatus
) -> None:
    if fault is not None:
        onboard.marketplace.fail("tok-fault", fault)
    response = fulfillment.handler(event, CONTEXT)
    assert response["statusCode"] == status
    assert header(response, "Content-Type") == "text/html; charset=utf-8"
    assert header(response, "Cache-Control") == "no-store"
    assert "Set-Cookie" not in response["multiValueHeaders"]
    _assert_branded(response["body"])


def test_a_foreign_products_token_gets_the_branded_403(onboard: Listing) -> None:
    onboard.marketplace.buyer("tok-foreign", product="PROD_OTHER")
    response = fulfillment.handler(fulfillment_post("tok-foreign"), CONTEXT)
    assert response["statusCode"] == 403
    _assert_branded(response["body"])


def test_a_hostile_listing_name_is_escaped(onboard: Listing, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTING_NAME", HOSTILE)
    listing_settings.cache_clear()
    response = fulfillment.handler(fulfillment_post("tok-unknown"), CONTEXT)
    html = response["body"]
    assert "<script" not in html and '"Quoted"' not in html
    _assert_branded(html, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &quot;Quoted&quot; &amp; Co")


def test_the_form_post_answers_are_branded(onboard: Listing) -> None:
    cookie = _arrive(onboard)
    expired = registration.handler(register_post(urlencode(GOOD), None, content_type=FORM), CONTEXT)
    assert expired["statusCode"] == 401
    _assert_branded(expired["body"])
    done = registration.handler(register_post(urlencode(GOOD), cookie, content_type=FORM), CONTEXT)
    assert done["statusCode"] == 201
    _assert_branded(done["body"])


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({**GOOD, "companyName": ""}, "<li>Company name: is required</li>"),
        ({**GOOD, "contactPerson": "a" * 201}, "<li>Your name: must be at most 200 characters</li>"),
        ({**GOOD, "contactEmail": "no-at-sign"}, "<li>Work e-mail: enter an e-mail address such as"),
        ({**GOOD, "contactEmail": "a" * 250 + "@example.com"}, "<li>Work e-mail: must be at most 254"),
        ({**GOOD, "contactEmail": ""}, "<li>Work e-mail: enter an e-mail address such as"),
        ({**GOOD, "contactPhone": "call me"}, "<li>Phone, with country code: enter a phone number with"),
        ({**GOOD, "companyName": " Acme"}, "<li>Company name: must not start or end with spaces</li>"),
        ({**GOOD, "extra": "x"}, "<li>extra: is not a field of the registration form</li>"),
    ],
    ids=["empty", "too-long", "no-at", "email-too-long", "email-empty", "phone", "spaces", "extra"],
)
def test_a_form_with_mistakes_is_answered_in_the_forms_words(
    onboard: Listing, fields: dict[str, str], says: str
) -> None:
    cookie = _arrive(onboard)
    response = registration.handler(register_post(urlencode(fields), cookie, content_type=FORM), CONTEXT)
    assert response["statusCode"] == 422
    html = response["body"]
    assert says in html, html
    assert not [words for words in PYDANTIC_WORDS if words in html]
    _assert_branded(html)
    # The page's script shows the same words beside the field.
    as_json = registration.handler(register_post(fields, cookie), CONTEXT)
    assert not [words for words in PYDANTIC_WORDS if words in as_json["body"]]
    assert onboard.subscribers == []
