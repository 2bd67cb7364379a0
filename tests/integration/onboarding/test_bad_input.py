"""Every bad request gets its clear 4xx, names what is wrong, and writes nothing.

A corpus of well over a hundred bad inputs to the two onboarding endpoints; each case asserts the status,
the error and that neither the subscribers nor the pending-registrations table changed.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from handlers import fulfillment, registration
from marketplace_saas.marketplace import MarketplaceUnavailable, TokenRejected
from tests.integration.onboarding.conftest import Listing
from tests.support.events import FakeLambdaContext, api_event, fulfillment_post, register_post, session_cookie

CONTEXT = FakeLambdaContext()
GOOD = {
    "companyName": "Acme Learning Ltd",
    "contactPerson": "Jane Doe",
    "contactEmail": "jane.doe@example.com",
    "contactPhone": "+1 555 010 2030",
}
FORM = "application/x-www-form-urlencoded"
SESSION = "<session>"  # replaced by a real session cookie in the test


@dataclass(frozen=True)
class Case:
    name: str
    event: dict[str, Any]
    status: int
    error: str | None = None  # JSON error code; None for the HTML pages of the fulfillment endpoint
    says: str = ""  # text the message must contain
    field: str | None = None  # for 422: the field named in `fields`


def register_case(
    name: str, fields: Any, status: int, error: str, says: str = "", field: str | None = None
) -> Case:
    text = fields if isinstance(fields, str) else json.dumps(fields)
    return Case(name, register_post(text, SESSION), status, error, says, field)


def field_cases() -> list[Case]:
    cases = []
    limits = {"companyName": 200, "contactPerson": 200, "contactEmail": 254, "contactPhone": 32}
    for field, limit in limits.items():

        def with_value(value: Any, field: str = field) -> dict[str, Any]:
            return {**GOOD, field: value}

        cases.append(
            register_case(
                f"{field} missing",
                {k: v for k, v in GOOD.items() if k != field},
                422,
                "invalid_fields",
                "is required",
                field,
            )
        )
        cases.append(register_case(f"{field} empty", with_value(""), 422, "invalid_fields", field=field))
        cases.append(
            register_case(
                f"{field} too long", with_value("a" * (limit + 1)), 422, "invalid_fields", field=field
            )
        )
        for control in ("\x00", "\n", "\t", "\x1b", "\x7f", "\u2028", "\x85"):
            cases.append(
                register_case(
                    f"{field} with control {control!r}",
                    with_value(f"ab{control}cd"),
                    422,
                    "invalid_fields",
                    field=field,
                )
            )
        for wrong in (42, 1.5, True, None, ["a"], {"a": "b"}):
            cases.append(
                register_case(
                    f"{field} as {type(wrong).__name__}",
                    with_value(wrong),
                    422,
                    "invalid_fields",
                    field=field,
                )
            )
        cases.append(
            register_case(
                f"{field} padded with spaces", with_value(" padded "), 422, "invalid_fields", field=field
            )
        )
    for email in (
        "no-at-sign",
        "a@",
        "@example.com",
        "a@b",
        "a b@example.com",
        "a@@example.com",
        "a@example..com",
    ):
        cases.append(
            register_case(
                f"email {email!r}",
                {**GOOD, "contactEmail": email},
                422,
                "invalid_fields",
                field="contactEmail",
            )
        )
    for phone in ("abc", "12", "+", "555-CALL-NOW", "+1 (555) 0x0-2030", "++15550102030"):
        cases.append(
            register_case(
                f"phone {phone!r}",
                {**GOOD, "contactPhone": phone},
                422,
                "invalid_fields",
                field="contactPhone",
            )
        )
    for extra in ({"status": "active"}, {"customerAWSAccountId": "999999999999"}, {"productCode": "OTHER"}):
        (name,) = extra
        cases.append(
            register_case(
                f"extra field {name}", {**GOOD, **extra}, 422, "invalid_fields", "is not a field", name
            )
        )
    return cases


def body_cases() -> list[Case]:
    cases = []
    for text in (
        "{",
        "[",
        '{"companyName": }',
        "{'companyName': 'x'}",
        '{"a": 1,}',
        "NaN?",
        "\x00",
        "[" * 5000,
    ):
        cases.append(
            register_case(f"malformed JSON {text[:12]!r}", text, 400, "invalid_json", "not valid JSON")
        )
    for text in ('"a string"', "123", "null", "[1, 2]", "true"):
        cases.append(
            register_case(f"JSON {text} instead of an object", text, 400, "invalid_json", "JSON object")
        )
    for content_type in (
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "",
        "application/jsonx",
    ):
        event = register_post(json.dumps(GOOD), SESSION, content_type=content_type)
        cases.append(
            Case(
                f"content type {content_type!r}", event, 415, "unsupported_media_type", "Content-Type must be"
            )
        )
    cases.append(
        register_case("JSON integer of 5000 digits", '{"a": ' + "7" * 5000 + "}", 400, "invalid_json")
    )
    many = "&".join(f"f{n}=v" for n in range(51))
    cases.append(
        Case("form of 51 fields", register_post(many, SESSION, content_type=FORM), 400, None, "more than 50")
    )
    garbled = register_post(GOOD, SESSION)
    garbled["body"], garbled["isBase64Encoded"] = "not base64!", True
    cases.append(Case("body flagged base64 but not", garbled, 400, "invalid_body", "base64"))
    cases.append(register_case("17 KB body", {**GOOD, "companyName": "a" * 17_000}, 413, "body_too_large"))
    cases.append(register_case("1 MB body", "x" * 1_000_000, 413, "body_too_large"))
    return cases


def session_cases() -> list[Case]:
    no_session = "There is no registration in progress"
    forged = "__Host-registration=" + secrets.token_urlsafe(32)
    return [
        Case("no cookie", register_post(GOOD, None), 401, "no_registration", no_session),
        Case("forged session id", register_post(GOOD, forged), 401, "no_registration", no_session),
        Case(
            "short session id",
            register_post(GOOD, "__Host-registration=abc"),
            401,
            "no_registration",
            no_session,
        ),
        Case("another cookie only", register_post(GOOD, "theme=dark"), 401, "no_registration", no_session),
        Case("garbled cookie header", register_post(GOOD, '";;=\x01'), 401, "no_registration", no_session),
        Case(
            "session id with SQL",
            register_post(GOOD, "__Host-registration=' OR 1=1 --"),
            401,
            "no_registration",
            no_session,
        ),
        Case(
            "state without cookie", api_event("GET", "/api/registration"), 401, "no_registration", no_session
        ),
        Case("unknown API route", api_event("GET", "/api/admin"), 404, "not_found"),
        Case("wrong method", api_event("DELETE", "/api/register"), 404, "not_found"),
    ]


def fulfillment_cases() -> list[Case]:
    again = "return to AWS Marketplace"
    form = "application/x-www-form-urlencoded"
    return [
        Case("no token", fulfillment_post(None), 400, None, again),
        Case("empty token", fulfillment_post(""), 400, None, again),
        Case("token of spaces", fulfillment_post("   "), 400, None, again),
        Case("overlong token", fulfillment_post("t" * 5000), 400, None, again),
        Case("unknown token", fulfillment_post("tok-unknown"), 400, None, again),
        Case("expired token", fulfillment_post("tok-expired"), 400, None, "expired"),
        Case("another product's token", fulfillment_post("tok-foreign"), 403, None, "another product"),
        Case("Marketplace throttling", fulfillment_post("tok-throttled"), 503, None, "in a minute"),
        Case(
            "JSON instead of a form",
            api_event("POST", "/marketplace/fulfillment", body='{"x": 1}', content_type="application/json"),
            415,
            None,
            again,
        ),
        Case(
            "no content type",
            api_event("POST", "/marketplace/fulfillment", body="x-amzn-marketplace-token=a"),
            415,
            None,
            again,
        ),
        Case(
            "huge form",
            api_event("POST", "/marketplace/fulfillment", body="a=" + "b" * 9000, content_type=form),
            413,
            None,
            again,
        ),
        Case("token in the query, not the form", _query_token(), 400, None, again),
        Case(
            "form of 21 fields",
            api_event(
                "POST",
                "/marketplace/fulfillment",
                body="&".join(f"f{n}=v" for n in range(21)),
                content_type=form,
            ),
            400,
            None,
            "more than 20 fields",
        ),
    ]


def _query_token() -> dict[str, Any]:
    event = fulfillment_post(None)
    event["queryStringParameters"] = {"x-amzn-marketplace-token": "tok-valid"}
    event["multiValueQueryStringParameters"] = {"x-amzn-marketplace-token": ["tok-valid"]}
    return event


CASES = field_cases() + body_cases() + session_cases() + fulfillment_cases()


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 100
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(onboard: Listing, case: Case) -> None:
    marketplace = onboard.marketplace
    marketplace.buyer("tok-valid")
    marketplace.fail("tok-expired", TokenRejected("expired"))
    marketplace.buyer("tok-foreign", product="SOMEONE_ELSES_PRODUCT")
    marketplace.fail("tok-throttled", MarketplaceUnavailable("ResolveCustomer failed: ThrottlingException"))
    session = session_cookie(fulfillment.handler(fulfillment_post("tok-valid"), CONTEXT))
    pending_before = onboard.pending

    event = json.loads(json.dumps(case.event))
    for key in ("Cookie",):
        if event["headers"].get(key) == SESSION:
            event["headers"][key] = session
            event["multiValueHeaders"][key] = [session]
    handler = fulfillment.handler if event["path"].startswith("/marketplace/") else registration.handler
    response = handler(event, CONTEXT)

    assert response["statusCode"] == case.status, response.get("body", "")[:300]
    if case.error is None:
        assert case.says.lower() in response["body"].lower()
        assert "<script" not in response["body"]
    else:
        payload = json.loads(response["body"])
        assert payload["error"] == case.error
        assert case.says in payload["message"]
        assert payload["message"]
        if case.field:
            assert case.field in payload["fields"], payload
    assert onboard.subscribers == []
    assert onboard.pending == pending_before
