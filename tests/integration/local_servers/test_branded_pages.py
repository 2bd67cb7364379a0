"""Through the local gateway, as a buyer's browser sees them: the site's brand.css, and a fulfillment error
page that uses it, both with the distribution's security headers."""

from __future__ import annotations

from tests.integration.local_servers.conftest import Server, exchange, post_form, status_of


def _headers(answer: bytes) -> dict[str, str]:
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in head)}


def test_brand_css_is_served_with_the_listings_accent(gateway: Server) -> None:
    answer = exchange(gateway.port, b"GET /brand.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200
    headers = _headers(answer)
    assert headers["content-type"] == "text/css; charset=utf-8"
    assert "style-src 'self'" in headers["content-security-policy"]
    # The fixture's listing keeps the default accent, on which white text reads best.
    assert answer.endswith(b":root { --accent: #1f5fbf; --on-accent: #ffffff; }\n")


def test_an_invalid_link_gets_the_listings_page_with_its_security_headers(gateway: Server) -> None:
    form = b"x-amzn-marketplace-offer-type=free-trial"
    answer = post_form(gateway.port, "/marketplace/fulfillment", form)
    assert status_of(answer) == 400
    headers = _headers(answer)
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store" and "set-cookie" not in headers
    body = answer.partition(b"\r\n\r\n")[2]
    assert b'<p class="masthead-name">Listing onboard</p>' in body
    assert b'<link rel="stylesheet" href="/brand.css">' in body
