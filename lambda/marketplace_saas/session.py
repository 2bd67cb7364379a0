"""The pending-registration cookie: the only thing the buyer's browser holds between the two steps.

`__Host-` pins it to this origin over HTTPS (no Domain, Path=/); HttpOnly hides it from scripts; SameSite=Lax
keeps other sites' requests from carrying it, while the top-level redirect from AWS Marketplace still works.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

COOKIE_NAME = "__Host-registration"
# What a registration id is made of (secrets.token_urlsafe): a cookie value needs no quoting.
_COOKIE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def registration_cookie(registration_id: str, max_age: int) -> str:
    """The `Set-Cookie` value that hands the browser its pending registration's id."""
    if not registration_id or not set(registration_id) <= _COOKIE_SAFE:
        raise ValueError("a registration id is URL-safe base64 text")
    return f"{COOKIE_NAME}={registration_id}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"


def registration_id_from(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel else None
