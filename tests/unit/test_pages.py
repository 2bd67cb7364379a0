"""The buyer-facing server pages carry the listing's brand, escape everything, and stay within the CSP."""

from __future__ import annotations

import re

import pytest

from marketplace_saas import pages
from marketplace_saas.settings import listing_settings

HOSTILE_NAME = "<script>alert(\"name\")</script> & 'Co'"
HOSTILE_EMAIL = 'help"><script>alert(1)</script>@example.com'
BRAND = pages.Brand(HOSTILE_NAME, HOSTILE_EMAIL)


def _assert_no_markup_from_values(html: str) -> None:
    assert "<script" not in html.lower()
    assert 'alert("name")' not in html and "'Co'" not in html
    # Nothing the CSP (style-src 'self', script-src 'self') would refuse.
    assert "style=" not in html and "<style" not in html and "on" + "click" not in html


def test_a_page_shows_the_listings_name_and_support_email_escaped() -> None:
    html = pages.page(
        "This set-up link is not valid", "Start <again>.", link=('/?a=1&b="2"', "Back"), brand=BRAND
    )
    _assert_no_markup_from_values(html)
    escaped_name = "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt; &amp; &#x27;Co&#x27;"
    assert f'<p class="masthead-name">{escaped_name}</p>' in html
    assert f"<title>This set-up link is not valid \u2013 {escaped_name}</title>" in html
    escaped_email = "help&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.com"
    assert f'<a href="mailto:{escaped_email}">{escaped_email}</a>' in html
    assert "<p>Start &lt;again&gt;.</p>" in html
    assert '<a href="/?a=1&amp;b=&quot;2&quot;">Back</a>' in html
    assert re.findall(r"<h1>(.*?)</h1>", html) == ["This set-up link is not valid"]


def test_a_page_looks_like_the_landing_page() -> None:
    html = pages.page("Not found", "There is nothing at this address.", brand=pages.Brand("Acme Analytics"))
    # The site's stylesheet, then the accent colour the stack writes beside config.json.
    assert html.index('href="/styles.css"') < html.index('href="/brand.css"')
    assert '<header class="masthead">' in html and "Available on AWS Marketplace" in html
    assert '<section class="card">\n<h1>Not found</h1>' in html
    assert "<footer" not in html  # no support e-mail configured: no footer promising one


def test_a_page_without_a_name_still_has_its_heading() -> None:
    html = pages.page("Request too large", pages.START_AGAIN, brand=pages.Brand())
    assert "masthead-name" not in html and "<title>Request too large</title>" in html


def test_field_errors_are_escaped_and_branded() -> None:
    html = pages.field_errors(
        "Please check the form", {"Company name": "is required", "<b>x</b>": "is <not> a field"}, brand=BRAND
    )
    _assert_no_markup_from_values(html)
    assert "<li>Company name: is required</li>" in html
    assert "<li>&lt;b&gt;x&lt;/b&gt;: is &lt;not&gt; a field</li>" in html
    assert "masthead-name" in html and "mailto:" in html


def test_the_brand_comes_from_the_functions_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LISTING_PATH",
        "PRODUCT_CODE",
        "PRICING_MODEL",
        "LEGACY_IDENTITY",
        "SUBSCRIBERS_TABLE",
        "REGISTRATIONS_TABLE",
        "METERING_TABLE",
        "HELD_EVENTS_TABLE",
    ):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("LISTING_NAME", HOSTILE_NAME)
    monkeypatch.setenv("SUPPORT_EMAIL", "help@example.com")
    listing_settings.cache_clear()
    try:
        html = pages.page("Not found")
    finally:
        listing_settings.cache_clear()
    _assert_no_markup_from_values(html)
    assert "&lt;script&gt;alert(&quot;name&quot;)" in html and 'href="mailto:help@example.com"' in html
