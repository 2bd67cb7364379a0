"""Whatever arrives on any route API Gateway sends to a handler: never a 5xx, never a traceback in the answer,
and nothing written to the listing's tables.

Bodies (text, JSON of any shape and depth, integers of thousands of digits, forms of any number of fields,
base64 or not), content types, methods, cookies (none, garbage, or a real buyer's session), Origin and
Referer, other headers. The buyer behind the real session is registered already and their subscription has
ended, so even a well-formed request is refused or repeated: anything written would be a defect.

The examples are derived from the test's name (derandomized), so CI runs the same 1,000 per route each time
in a bounded time; set ROUTE_EXAMPLES to run more (e.g. 20000) while hunting.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from handlers import fulfillment, registration, usage
from marketplace_saas.marketplace import MarketplaceUnavailable, TokenRejected
from marketplace_saas.observability import logger
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
SITE = "https://d111111abcdef8.cloudfront.net"
EXAMPLES = int(os.environ.get("ROUTE_EXAMPLES", "1000"))
ROUTE_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the listing's state is the same before and after each example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
DETAILS = {
    "companyName": "Acme Learning Ltd",
    "contactPerson": "Jane Doe",
    "contactEmail": "jane.doe@example.com",
    "contactPhone": "+1 555 010 2030",
}
ACCOUNT = "111122223333"  # the buyer FakeMarketplace.buyer() creates
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ROUTES: dict[str, tuple[str, str, Handler]] = {
    "fulfillment": ("POST", "/marketplace/fulfillment", fulfillment.handler),
    "register": ("POST", "/api/register", registration.handler),
    "registration state": ("GET", "/api/registration", registration.handler),
    "usage": ("POST", "/api/usage", usage.handler),
}
FIELD_NAMES = [
    *DETAILS,
    "x-amzn-marketplace-token",
    "x-amzn-marketplace-offer-type",
    "customerAWSAccountId",
    "licenseArn",
    "dimension",
    "quantity",
    "time",
    "allocations",
    "tags",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10)), children, max_size=6),
    ),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.one_of(json_scalars, st.just(value)) for name, value in DETAILS.items()},
        "customerAWSAccountId": st.one_of(st.just(ACCOUNT), st.just("123456789012"), json_scalars),
        "dimension": st.one_of(st.just("users"), json_scalars),
        "quantity": st.one_of(st.integers(), st.decimals(allow_nan=False).map(str), json_scalars),
        "time": st.one_of(st.datetimes().map(lambda moment: moment.isoformat() + "Z"), json_scalars),
        "allocations": json_values,
        "x-amzn-marketplace-token": st.text(max_size=30),
    },
)


def _json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True, default=str)


bodies = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda raw: raw.decode("latin-1")),
    json_values.map(_json_text),
    shaped.map(_json_text),
    st.dictionaries(st.sampled_from(FIELD_NAMES), st.text(max_size=30)).map(urlencode),
    # Forms of many fields, JSON numbers of thousands of digits, JSON nested far deeper than Python recurses.
    st.integers(0, 120).map(lambda count: "&".join(f"f{n}=v" for n in range(count))),
    st.integers(4000, 6000).map(lambda digits: '{"quantity": ' + "7" * digits + "}"),
    st.integers(4000, 6000).map(lambda digits: '{"companyName": ' + "7" * digits + "}"),
    st.integers(900, 100_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(900, 30_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
            ";",
        ]
    ),
    st.text(max_size=30),
)
origins = st.one_of(
    st.none(),
    st.sampled_from([SITE, "https://evil.example", "null", SITE + ":8443", ""]),
    st.text(max_size=30),
)
referers = st.one_of(
    st.none(),
    st.sampled_from([SITE + "/", "https://evil.example/page", "not a url", "//x"]),
    st.text(max_size=30),
)


@st.composite
def requests(draw: st.DrawFn, route: str, session: str) -> dict[str, Any]:
    method, path, _ = ROUTES[route]
    method = draw(
        st.one_of(
            st.just(method),
            st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
            st.text(max_size=8),
        )
    )
    body = draw(bodies)
    cookie = draw(
        st.one_of(
            st.none(),
            st.just(session),
            st.text(max_size=60),
            st.text(max_size=50).map(lambda value: "__Host-registration=" + value),
        )
    )
    headers = draw(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=4))
    for name, strategy in (("Origin", origins), ("Referer", referers)):
        value = draw(strategy)
        if value is not None:
            headers[name] = value
    event = api_event(
        method, path, body=body, content_type=draw(content_types), cookie=cookie, headers=headers
    )
    if draw(st.booleans()) and body is not None:
        # API Gateway's binary media types: the body arrives base64-encoded (or, here, sometimes as garbage).
        event["body"] = draw(
            st.one_of(
                st.just(base64.b64encode(body.encode("utf-8", "replace")).decode()),
                st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),
                st.text(max_size=60),
            )
        )
        event["isBase64Encoded"] = True
    if draw(st.booleans()):
        event["headers"] = None if draw(st.booleans()) else {}
        event["multiValueHeaders"] = None
    return event


@pytest.fixture
def listing(onboard: Listing, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Listing, str]]:
    """A buyer who registered and whose subscription then ended; their real session cookie."""
    monkeypatch.setenv("SITE_ORIGINS", SITE)
    listing_settings.cache_clear()
    # Thousands of requests: their log lines and metric blobs would cost more than the requests themselves.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    level = logger.log_level
    logger.setLevel("ERROR")
    onboard.marketplace.buyer("tok-valid")
    onboard.marketplace.fail("tok-expired", TokenRejected("expired"))
    onboard.marketplace.fail(
        "tok-busy", MarketplaceUnavailable("ResolveCustomer failed: ThrottlingException")
    )
    onboard.marketplace.buyer("tok-foreign", product="SOMEONE_ELSES_PRODUCT")
    cookie = session_cookie(fulfillment.handler(fulfillment_post("tok-valid"), CONTEXT))
    assert registration.handler(register_post(DETAILS, cookie), CONTEXT)["statusCode"] == 201
    table = onboard.table("SubscribersTableName")
    (item,) = onboard.subscribers
    key = {"customerAWSAccountId": item["customerAWSAccountId"], "subscriptionKey": item["subscriptionKey"]}
    table.update_item(Key=key, UpdateExpression="SET #s = :c", ExpressionAttributeNames={"#s": "status"},
                      ExpressionAttributeValues={":c": "cancelled"})  # fmt: skip
    yield onboard, cookie
    logger.setLevel(level)


def _state(listing: Listing) -> list[Any]:
    return [
        sorted(json.dumps(item, sort_keys=True, default=str) for item in listing.items(output))
        for output in ("SubscribersTableName", "RegistrationsTableName", "MeteringTableName")
    ]


@pytest.mark.parametrize("route", list(ROUTES))
def test_no_request_fails_the_server_or_writes(listing: tuple[Listing, str], route: str) -> None:
    onboard, session = listing
    before = _state(onboard)
    handler = ROUTES[route][2]

    @ROUTE_SETTINGS
    @given(event=requests(route, session))
    def check(event: dict[str, Any]) -> None:
        response = handler(event, CONTEXT)
        status = response["statusCode"]
        body = response.get("body") or ""
        assert status < 500, (status, body[:300])
        assert "Traceback" not in body and 'File "' not in body, body[:300]
        if status >= 400:
            kind = header(response, "Content-Type") or ""
            if kind.startswith("application/json"):
                error = json.loads(body)
                assert error["error"] and error["message"], error
            else:
                assert kind.startswith("text/html") and body.startswith("<!doctype html>"), (kind, body[:100])

    check()
    # Checked once per route, not per example (three table scans each would cost more than the request):
    # nothing deletes what a refused request could have written, so any write is still here.
    assert _state(onboard) == before
