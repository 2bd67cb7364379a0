"""The pending-registration cookie: the only thing the buyer's browser holds between the two steps.

`__Host-` pins it to this origin over HTTPS (no Domain, Path=/); HttpOnly hides it from scripts; SameSite=Lax
keeps other sites' requests from carrying it, while the top-level redirect from AWS Marketplace still works.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from aws_lambda_powertools.shared.cookies import Cookie, SameSite

COOKIE_NAME = "__Host-registration"


def registration_cookie(registration_id: str, max_age: int) -> Cookie:
    return Cookie(
        name=COOKIE_NAME,
        value=registration_id,
        path="/",
        secure=True,
        http_only=True,
        max_age=max_age,
        same_site=SameSite.LAX_MODE,
    )


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
