"""`POST /api/usage`: the exact answer to each kind of malformed usage, rule by rule.

A seller's product may match on these messages, so each rule's wording is pinned here; nothing is written
for a refused request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from marketplace_saas import wiring
from tests.integration.metering.conftest import Harness
from tests.integration.metering.test_usage_api import post

ACCOUNT = "123456789012"
TAG = "'^[a-zA-Z0-9+ -=._:/@]+$'"
ARN = (
    "'^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:"
    "[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$'"
)


@pytest.fixture
def api(harness: Harness) -> Iterator[Harness]:
    wiring.use(None)
    yield harness
    wiring.use(None)


def usage(**fields: Any) -> str:
    """A request body: a valid usage record with `fields` changed (a value of `...` leaves the field out);
    numbers given as text are written as JSON numbers."""
    body: dict[str, Any] = {"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": 3}
    body.update(fields)
    return json.dumps({key: value for key, value in body.items() if value is not ...})


def number(text: str) -> str:
    return f"@number:{text}"


def _as_json(body: str) -> str:
    # "@number:1e400" in a body stands for the JSON number 1e400 (json.dumps cannot write some numbers).
    while '"@number:' in body:
        start = body.index('"@number:')
        end = body.index('"', start + 1)
        body = body[:start] + body[start + len('"@number:') : end] + body[end + 1 :]
    return body


def allocation(quantity: Any = 3, **tags: str) -> dict[str, Any]:
    return {"quantity": quantity, "tags": tags or {"team": "red"}}


CASES = [
    # the body and its fields
    (usage(customerAWSAccountId=...), "customerAWSAccountId: Field required"),
    ("[]", "body: Input should be a valid dictionary or instance of UsageRecord"),
    ('"usage"', "body: Input should be a valid dictionary or instance of UsageRecord"),
    ("null", "body: Input should be a valid dictionary or instance of UsageRecord"),
    (
        usage(extra="field", other=1),
        "extra: Extra inputs are not permitted; other: Extra inputs are not permitted",
    ),
    (
        usage(customer_aws_account_id="1"),
        "customer_aws_account_id: Extra inputs are not permitted",
    ),
    # customerAWSAccountId and licenseArn
    (
        usage(customerAWSAccountId=number("123456789012")),
        "customerAWSAccountId: Input should be a valid string",
    ),
    (usage(customerAWSAccountId="12345"), "customerAWSAccountId: String should match pattern '^\\d{12}$'"),
    (
        usage(customerAWSAccountId=ACCOUNT + "\n"),
        "customerAWSAccountId: String should match pattern '^\\d{12}$'",
    ),
    (usage(licenseArn="l-not-an-arn"), f"licenseArn: String should match pattern {ARN}"),
    (usage(licenseArn=number("7")), "licenseArn: Input should be a valid string"),
    (
        usage(licenseArn="arn:aws:license-manager::1:license:" + "l" * 2048),
        "licenseArn: String should have at most 2048 characters",
    ),
    # dimension
    (usage(dimension=""), "dimension: String should have at least 1 character"),
    (usage(dimension="d" * 256), "dimension: String should have at most 255 characters"),
    (usage(dimension=None), "dimension: Input should be a valid string"),
    # quantity
    (usage(quantity=-1), "quantity: Input should be greater than or equal to 0"),
    (usage(quantity="-0.5"), "quantity: Input should be greater than or equal to 0"),
    (
        usage(quantity=number("1.1234567")),
        "quantity: Decimal input should have no more than 6 decimal places",
    ),
    (usage(quantity="10000000000"), "quantity: Input should be less than or equal to 9999999999.999999"),
    (usage(quantity=True), "quantity: must be a number, e.g. 17.42"),
    (usage(quantity="NaN"), "quantity: Input should be a finite number"),
    (usage(quantity="-Infinity"), "quantity: Input should be a finite number"),
    (usage(quantity="three"), "quantity: Input should be a valid decimal"),
    (usage(quantity=None), "quantity: Decimal input should be an integer, float, string or Decimal object"),
    (usage(quantity=[3]), "quantity: Decimal input should be an integer, float, string or Decimal object"),
    # time
    (usage(time="2026-11-23T10:15:00"), "time: must include a time zone, e.g. 2026-11-23T10:15:00Z"),
    (usage(time="2026-11-23"), "time: must include a time zone, e.g. 2026-11-23T10:15:00Z"),
    (usage(time="yesterday"), "time: Input should be a valid datetime or date, input is too short"),
    (
        usage(time="2026-11-23T10:15:00 Z"),
        "time: Input should be a valid datetime or date, unexpected extra characters at the end of the input",
    ),
    (
        usage(time="2026-13-01T00:00:00Z"),
        "time: Input should be a valid datetime or date, month value is outside expected range of 1-12",
    ),
    (
        usage(time="2026-02-30T00:00:00Z"),
        "time: Input should be a valid datetime or date, day value is outside expected range",
    ),
    (
        usage(time="2026/11/23T10:15:00Z"),
        "time: Input should be a valid datetime or date, invalid date separator, expected `-`",
    ),
    (usage(time="0000-01-01T00:00:00Z"), "time: Input should be a valid datetime, year 0 is out of range"),
    (
        usage(time=number("1e400")),
        "time: Input should be a valid datetime, dates after 9999 are not supported as unix timestamps",
    ),
    (
        usage(time=number("-1e15")),
        "time: Input should be a valid datetime, dates before 0000 are not supported as unix timestamps",
    ),
    (usage(time=True), "time: Input should be a valid datetime"),
    (usage(time={}), "time: Input should be a valid datetime"),
    # allocations
    (usage(allocations=[]), "allocations: List should have at least 1 item after validation, not 0"),
    (usage(allocations={}), "allocations: Input should be a valid list"),
    (
        usage(allocations=["red"]),
        "allocations.0: Input should be a valid dictionary or instance of UsageAllocation",
    ),
    (usage(allocations=[{}]), "allocations.0.quantity: Field required; allocations.0.tags: Field required"),
    (
        usage(allocations=[{"quantity": 3, "tags": {}}]),
        "allocations.0.tags: Dictionary should have at least 1 item after validation, not 0",
    ),
    (
        usage(allocations=[{"quantity": 3, "tags": []}]),
        "allocations.0.tags: Input should be a valid dictionary",
    ),
    (
        usage(allocations=[{"quantity": 3, "tags": {"bad?key": "v", "k": "bad?"}}]),
        f"allocations.0.tags.bad?key.[key]: String should match pattern {TAG}; "
        f"allocations.0.tags.k: String should match pattern {TAG}",
    ),
    (
        usage(allocations=[{"quantity": 3, "tags": {"": "v", "k": ""}}]),
        "allocations.0.tags..[key]: String should have at least 1 character; "
        "allocations.0.tags.k: String should have at least 1 character",
    ),
    (
        usage(allocations=[{"quantity": 3, "tags": {"k" * 101: "v" * 257}}]),
        f"allocations.0.tags.{'k' * 101}.[key]: String should have at most 100 characters; "
        f"allocations.0.tags.{'k' * 101}: String should have at most 256 characters",
    ),
    (
        usage(allocations=[{"quantity": 3, "tags": {"k": 1}}]),
        "allocations.0.tags.k: Input should be a valid string",
    ),
    (
        usage(allocations=[{"quantity": 3, "tags": {f"k{n}": "v" for n in range(6)}}]),
        "allocations.0.tags: Dictionary should have at most 5 items after validation, not more",
    ),
    (
        usage(allocations=[{**allocation(True), "share": 1}]),
        "allocations.0.quantity: must be a number, e.g. 17.42; "
        "allocations.0.share: Extra inputs are not permitted",
    ),
    (
        usage(allocations=[allocation(-1)]),
        "allocations.0.quantity: Input should be greater than or equal to 0",
    ),
    (
        usage(allocations=[allocation(number("0.03"), n=str(n)) for n in range(101)]),
        "allocations: List should have at most 100 items after validation, not 101",
    ),
    (usage(allocations=[allocation(1)]), "body: allocations add up to 1, not to the quantity 3"),
    (
        usage(allocations=[allocation(number("1.5")), allocation("1.50")]),
        "body: two allocations have the same tags; merge them",
    ),
    # every problem at once, in the fields' order
    (
        usage(customerAWSAccountId="12345", dimension="", quantity=-1, time="noon", allocations=[], extra=1),
        "customerAWSAccountId: String should match pattern '^\\d{12}$'; "
        "dimension: String should have at least 1 character; "
        "quantity: Input should be greater than or equal to 0; "
        "time: Input should be a valid datetime or date, input is too short; "
        "allocations: List should have at least 1 item after validation, not 0; "
        "extra: Extra inputs are not permitted",
    ),
]


@pytest.mark.parametrize(("body", "message"), CASES)
def test_malformed_usage_gets_a_422_naming_each_problem_and_where(
    api: Harness, body: str, message: str
) -> None:
    api.buyer(ACCOUNT)
    status, answer = post(_as_json(body))
    assert (status, answer) == (422, {"error": "invalid_usage", "message": message})
    assert api.items() == []


@pytest.mark.parametrize(
    ("fields", "hour_total"),
    [
        ({"quantity": " 17.42 "}, "17.42"),  # text around the number is ignored
        ({"quantity": "1.000000000"}, "1"),  # trailing zeros are not decimal places
        ({"quantity": "1_000"}, "1000"),
        ({"quantity": number("0.1")}, "0.1"),
        ({"quantity": "-0"}, "0"),
        ({"customer_aws_account_id": ACCOUNT, "customerAWSAccountId": ...}, "3"),
        ({"allocations": [allocation(number("1.5")), allocation("1.5", team="blue")]}, "3"),
    ],
)
def test_the_forms_a_valid_usage_may_take(api: Harness, fields: dict[str, Any], hour_total: str) -> None:
    api.buyer(ACCOUNT)
    status, answer = post(_as_json(usage(**fields)))
    assert (status, answer.get("hourTotal")) == (201, hour_total), answer


@pytest.mark.parametrize(
    "moment",
    [
        "{hour}:15:00Z",
        "{hour}:15:00z",
        "{hour}:15Z",
        "{hour}:15:00.1234567Z",
        "{hour}:15:00,5Z",
        "{hour}:15:00+00:00",
        "{hour}:15:00-0000",
        "{hour}:15:00\u221200:00",
        "{epoch}",
        "{epoch_ms}",
        "@{epoch}",
        "@{epoch}.5",
        "@{epoch_ms}",
    ],
)
def test_the_forms_a_usage_time_may_take(api: Harness, moment: str) -> None:
    """ISO 8601 with `T`, `t`, `_` or a space, any offset; or seconds (milliseconds above 2e10) since 1970."""
    api.buyer(ACCOUNT)
    hour = int(time.time() // 3600 * 3600) - 3600  # the API's clock is the real one
    iso = datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H")
    epoch, epoch_ms = hour + 900, (hour + 900) * 1000
    text = moment.format(hour=iso, epoch=epoch, epoch_ms=epoch_ms)
    value: Any = number(text[1:]) if text.startswith("@") else text
    status, answer = post(_as_json(usage(time=value)))
    assert (status, answer.get("usageHour")) == (201, f"{iso}:00:00Z"), answer
