"""Requests boto3 would never send (it checks them first), sent raw: the emulator answers each with an
error AWS could give (a 4xx botocore can read), never a dropped connection or a 500."""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.integration.emulator.conftest import Emulator

METERING = "AWSMPMeteringService"
ENTITLEMENT = "AWSMPEntitlementService"


def post(emulator: Emulator, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, Any]:
    """POST over a fresh connection; a dropped connection fails the test (http.client raises)."""
    url = urlsplit(emulator.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        connection.request(
            "POST", path, body=body, headers={"Authorization": "AWS4-HMAC-SHA256 x", **headers}
        )
        response = connection.getresponse()
        raw = response.read()
        return response.status, response.headers, raw
    finally:
        connection.close()


def json_call(emulator: Emulator, service: str, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
    status, headers, raw = post(
        emulator,
        "/",
        body,
        {"X-Amz-Target": f"{service}.{operation}", "Content-Type": "application/x-amz-json-1.1"},
    )
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    return status, json.loads(raw)


def cbor_call(emulator: Emulator, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
    status, headers, raw = post(
        emulator,
        f"/service/{ENTITLEMENT}/operation/{operation}",
        body,
        {"Content-Type": "application/cbor", "Smithy-Protocol": "rpc-v2-cbor"},
    )
    assert headers["Smithy-Protocol"] == "rpc-v2-cbor"
    return status, cbor2.loads(raw)


@pytest.fixture
def buyer(emulator: Emulator) -> dict[str, Any]:
    emulator.product()
    emulator.product("CONTRACT", ("seats",), pricingModel="contract")
    emulator.subscribe("CONTRACT", entitlements=[{"dimension": "seats", "value": 5}])
    return emulator.subscribe()


def usage(buyer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "Timestamp": (datetime.now(UTC) - timedelta(minutes=2)).timestamp(),
        "CustomerAWSAccountId": buyer["customerAWSAccountId"],
        "LicenseArn": buyer["licenseArn"],
        "Dimension": "users",
        **extra,
    }


def meter(emulator: Emulator, request: Any) -> tuple[int, dict[str, Any]]:
    return json_call(emulator, METERING, "BatchMeterUsage", json.dumps(request).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"UsageRecords"',
        b"null",
        b"42",
        b"{",
        b'{"UsageRecords": [}',
        b"\xff\xfe{}",
        b'{"UsageRecords": "\xe9"}',
    ],
    ids=["a list", "a string", "null", "a number", "truncated", "not JSON", "UTF-16", "invalid UTF-8"],
)
def test_a_body_that_is_not_a_json_object_is_a_serialization_error(
    emulator: Emulator, buyer: dict[str, Any], body: bytes
) -> None:
    status, answer = json_call(emulator, METERING, "BatchMeterUsage", body)
    assert (status, answer["__type"]) == (400, "SerializationException")
    assert answer["message"]
    assert emulator.billed() == []


@pytest.mark.parametrize(
    ("record", "where"),
    [
        (
            {"UsageAllocations": [{"AllocatedUsageQuantity": "3", "Tags": [{"Key": "k", "Value": "v"}]}]},
            "AllocatedUsageQuantity",
        ),
        ({"Quantity": 3.5}, "Quantity"),
        ({"Quantity": True}, "Quantity"),
        ({"Dimension": ["users"]}, "Dimension"),
        ({"Timestamp": "2026-11-18T12:00:00Z"}, "Timestamp"),
        ({"UsageAllocations": {"AllocatedUsageQuantity": 3}}, "UsageAllocations"),
        ({"Colour": "blue"}, "Colour"),
    ],
    ids=[
        "string allocation quantity",
        "fractional Quantity",
        "boolean Quantity",
        "list dimension",
        "string timestamp",
        "object for a list",
        "a member the model does not have",
    ],
)
def test_a_value_of_the_wrong_type_is_a_serialization_error(
    emulator: Emulator, buyer: dict[str, Any], record: dict[str, Any], where: str
) -> None:
    status, answer = meter(emulator, {"UsageRecords": [usage(buyer, Quantity=3) | record]})
    assert (status, answer["__type"]) == (400, "SerializationException")
    assert where in answer["message"]
    assert emulator.billed() == []


@pytest.mark.parametrize(
    "allocations",
    [
        [{"AllocatedUsageQuantity": -5, "Tags": [{"Key": "k", "Value": "v"}]}],
        [
            {"AllocatedUsageQuantity": 5, "Tags": [{"Key": "k", "Value": "a"}]},
            {"AllocatedUsageQuantity": -2, "Tags": [{"Key": "k", "Value": "b"}]},
        ],
    ],
    ids=["-5", "5 and -2 make 3"],
)
def test_negative_allocations_are_refused(
    emulator: Emulator, buyer: dict[str, Any], allocations: list[dict[str, Any]]
) -> None:
    status, answer = meter(
        emulator, {"UsageRecords": [usage(buyer, Quantity=3, UsageAllocations=allocations)]}
    )
    assert (status, answer["__type"]) == (400, "InvalidUsageAllocationsException")
    assert "greater than or equal to 0" in answer["message"]
    assert emulator.billed() == []


def test_a_missing_required_member_is_a_validation_error(emulator: Emulator, buyer: dict[str, Any]) -> None:
    status, answer = meter(emulator, {"UsageRecords": [{"Dimension": "users", "Quantity": 1}]})
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "Timestamp" in answer["message"]
    status, answer = meter(emulator, {})
    assert (status, answer["__type"]) == (400, "ValidationException")


def test_product_code_with_account_and_license_is_accepted(emulator: Emulator, buyer: dict[str, Any]) -> None:
    # AWS accepts it (it double-bills; the project never sends both): no error for it here either.
    status, answer = meter(emulator, {"ProductCode": "PROD", "UsageRecords": [usage(buyer, Quantity=1)]})
    assert status == 200, answer
    assert answer["Results"][0]["Status"] == "Success"


def test_resolve_customer_with_a_number_for_a_token(emulator: Emulator, buyer: dict[str, Any]) -> None:
    status, answer = json_call(emulator, METERING, "ResolveCustomer", b'{"RegistrationToken": 5}')
    assert (status, answer["__type"]) == (400, "SerializationException")
    status, answer = json_call(emulator, METERING, "ResolveCustomer", b'{"RegistrationToken": ""}')
    assert (status, answer["__type"]) == (400, "InvalidTokenException")


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({"ProductCode": "CONTRACT", "MaxResults": "abc"}, "SerializationException"),
        ({"ProductCode": "CONTRACT", "MaxResults": 0}, "InvalidParameterException"),
        ({"ProductCode": "CONTRACT", "MaxResults": 26}, "InvalidParameterException"),
        ({"ProductCode": "CONTRACT", "Filter": {"SHOE_SIZE": ["9"]}}, "InvalidParameterException"),
        ({"ProductCode": "CONTRACT", "Filter": {"DIMENSION": []}}, "InvalidParameterException"),
        ({"ProductCode": "CONTRACT", "Filter": {"DIMENSION": "seats"}}, "SerializationException"),
        ({"ProductCode": "CONTRACT", "NextToken": "page-x"}, "InvalidParameterException"),
        ({"ProductCode": ""}, "InvalidParameterException"),
        ({}, "InvalidParameterException"),
    ],
)
@pytest.mark.parametrize("protocol", ["json", "cbor"])
def test_get_entitlements_refuses_what_aws_refuses_over_both_protocols(
    emulator: Emulator, buyer: dict[str, Any], request_body: dict[str, Any], code: str, protocol: str
) -> None:
    if protocol == "json":
        status, answer = json_call(
            emulator, ENTITLEMENT, "GetEntitlements", json.dumps(request_body).encode()
        )
    else:
        status, answer = cbor_call(emulator, "GetEntitlements", cbor2.dumps(request_body))
    assert status == 400
    assert answer["__type"].rsplit("#", 1)[-1] == code
    assert answer["message"]


@pytest.mark.parametrize("body", [b"", cbor2.dumps([]), cbor2.dumps("x"), b"\xff\xff\xff"])
def test_a_cbor_body_that_is_not_a_map_is_a_serialization_error(emulator: Emulator, body: bytes) -> None:
    status, answer = cbor_call(emulator, "GetEntitlements", body)
    if body == b"":
        # An empty body is an empty request: ProductCode is missing.
        assert (status, answer["__type"]) == (
            400,
            "com.amazonaws.marketplaceentitlementservice#InvalidParameterException",
        )
    else:
        assert (status, answer["__type"]) == (400, "SerializationException")


def test_a_bad_content_length_is_answered(emulator: Emulator) -> None:
    url = urlsplit(emulator.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        connection.putrequest("POST", "/")
        connection.putheader("Content-Length", "lots")
        connection.putheader("Authorization", "x")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 400
        assert "Content-Length" in json.loads(response.read())["message"]
    finally:
        connection.close()


def test_the_emulator_still_serves_after_malformed_requests(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    for body in (b"[]", b"\xff", b'{"UsageRecords": [{"Quantity": "x"}]}'):
        assert json_call(emulator, METERING, "BatchMeterUsage", body)[0] == 400
    assert metering.resolve_customer(RegistrationToken=buyer["token"])["LicenseArn"] == buyer["licenseArn"]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
MEMBER_NAMES = st.sampled_from(
    [
        "UsageRecords",
        "ProductCode",
        "Timestamp",
        "Dimension",
        "Quantity",
        "QuantityAsDecimal",
        "UsageAllocations",
        "CustomerAWSAccountId",
        "LicenseArn",
        "CustomerIdentifier",
        "AllocatedUsageQuantity",
        "Tags",
        "Key",
        "Value",
        "RegistrationToken",
        "Filter",
        "MaxResults",
        "NextToken",
    ]
)
# Bodies shaped like the real ones, with members of any JSON type, so the checks past the first are reached.
REQUEST_LIKE = st.recursive(
    JSON_VALUES,
    lambda children: st.dictionaries(MEMBER_NAMES, children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=16,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(
        [f"{METERING}.BatchMeterUsage", f"{METERING}.ResolveCustomer", f"{ENTITLEMENT}.GetEntitlements"]
    ),
    body=REQUEST_LIKE,
)
def test_any_json_body_gets_an_answer_botocore_can_read(
    emulator: Emulator, buyer: dict[str, Any], target: str, body: Any
) -> None:
    # The fixture checks each of these calls against the model when the test ends.
    service, operation = target.split(".")
    status, answer = json_call(emulator, service, operation, json.dumps(body).encode())
    assert status == 200 or (400 <= status < 500 and answer["__type"] and answer["message"]), (status, answer)
