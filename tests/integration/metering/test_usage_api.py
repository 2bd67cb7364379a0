"""`POST /api/usage` through the real handler: what the seller's product sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from handlers import usage as usage_handler
from marketplace_saas import wiring
from tests.integration.metering.conftest import Harness
from tests.support.events import FakeLambdaContext, api_event

ACCOUNT = "123456789012"


@pytest.fixture
def api(harness: Harness) -> Iterator[Harness]:
    wiring.use(None)  # the recorder is built from this test's environment
    yield harness
    wiring.use(None)


def post(body: Any, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    text = body if isinstance(body, str) else json.dumps(body)
    response = usage_handler.handler(
        api_event("POST", "/api/usage", body=text, content_type=content_type), FakeLambdaContext()
    )
    return response["statusCode"], json.loads(response["body"])


def test_usage_is_recorded_and_the_hour_total_returned(api: Harness) -> None:
    api.buyer(ACCOUNT)
    status, body = post({"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": 4})
    assert status == 201
    assert body["hourTotal"] == "4" and body["usageHour"].endswith(":00:00Z")
    assert body["licenseArn"].startswith("arn:aws:license-manager::")
    status, body = post({"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": 3})
    assert body["hourTotal"] == "7"


def test_decimal_quantities_arrive_without_float_error_as_numbers_or_strings(api: Harness) -> None:
    api.buyer(ACCOUNT)
    for quantity in ("0.1", "0.1", "0.1"):
        post(f'{{"customerAWSAccountId": "{ACCOUNT}", "dimension": "users", "quantity": {quantity}}}')
    status, body = post({"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": "17.12"})
    assert (status, body["hourTotal"]) == (201, "17.42")


def test_an_account_with_two_licenses_must_say_which(api: Harness) -> None:
    first = api.buyer(ACCOUNT)["licenseArn"]
    second = api.buyer(ACCOUNT, new_agreement=True)["licenseArn"]
    status, body = post({"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": 1})
    assert (status, body["error"]) == (409, "license_required")
    assert first in body["message"] and second in body["message"]
    status, body = post(
        {"customerAWSAccountId": ACCOUNT, "licenseArn": second, "dimension": "users", "quantity": 1}
    )
    assert (status, body["licenseArn"]) == (201, second)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (
            {"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": -2},
            "application/json",
            422,
            "invalid_usage",
        ),
        (
            {"customerAWSAccountId": ACCOUNT, "dimension": "nope", "quantity": 2},
            "application/json",
            422,
            "unknown_dimension",
        ),
        (
            {"customerAWSAccountId": "999999999999", "dimension": "users", "quantity": 2},
            "application/json",
            404,
            "unknown_customer",
        ),
        (
            {
                "customerAWSAccountId": ACCOUNT,
                "dimension": "users",
                "quantity": 2,
                "time": "2020-01-01T00:00:00Z",
            },
            "application/json",
            422,
            "time_too_old",
        ),
        ("{not json", "application/json", 400, "invalid_json"),
        # A 5,000-digit integer and deep nesting: Python's JSON parser gives up; the answer is still a 4xx.
        (
            f'{{"customerAWSAccountId": "{ACCOUNT}", "dimension": "users", "quantity": {"9" * 5000}}}',
            "application/json",
            422,
            "invalid_usage",
        ),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400, "invalid_json"),
        (
            {"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": "1.0000001"},
            "application/json",
            422,
            "invalid_usage",
        ),
        ({"customerAWSAccountId": ACCOUNT}, "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_bad_usage_gets_a_clear_error_and_writes_nothing(
    api: Harness, body: Any, content_type: str, status: int, error: str
) -> None:
    api.buyer(ACCOUNT)
    answer_status, answer = post(body, content_type)
    assert (answer_status, answer["error"]) == (status, error)
    assert answer["message"]
    assert api.items() == []
