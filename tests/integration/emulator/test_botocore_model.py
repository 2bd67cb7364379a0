"""The emulator checked against the botocore service models installed with boto3.

- The request shapes the emulator implements (local/marketplace_emulator/shapes.py) are the model's, member
  by member: a new member, a changed limit, pattern or enum in the next botocore fails here.
- A realistic session through boto3 (both identity styles, decimals, allocations, two licenses of one
  account, entitlements with filters and pages over both protocols, and the errors) is recorded on the wire
  and every call is checked by model_check.py: accepted requests fit the input shape (and botocore's
  ParamValidator), answers parse with botocore's own parsers and hold only modeled members, refusals are
  modeled 4xx errors. The session must also use every member and enum value of the modeled answers, so
  an answer member the model gains is noticed too.
- The checker itself finds what does not fit (it is not a test that cannot fail).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
import cbor2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import Shape as BotocoreShape

from local.marketplace_emulator import shapes
from local.marketplace_emulator.server import OPERATIONS, RecordedCall
from tests.integration.emulator import model_check
from tests.integration.emulator.conftest import Emulator

# --- the emulator's shapes are the model's -----------------------------------------------------------------


def shape_differences(ours: shapes.Shape, theirs: BotocoreShape, path: str) -> list[str]:
    where = f"{path} ({theirs.name})"
    differences = []
    if ours.name != theirs.name:
        differences.append(f"{where}: the emulator calls it {ours.name}")
    if ours.type != theirs.type_name:
        return [*differences, f"{where}: model type {theirs.type_name}, emulator type {ours.type}"]
    for constraint in ("min", "max", "pattern"):
        modeled = theirs.metadata.get(constraint)
        if getattr(ours, constraint) != modeled:
            differences.append(
                f"{where}: model {constraint} {modeled!r}, emulator {getattr(ours, constraint)!r}"
            )
    if tuple(getattr(theirs, "enum", None) or ()) != ours.enum:
        differences.append(f"{where}: model enum {theirs.enum}, emulator {ours.enum}")
    if ours.type == "structure":
        modeled_members = theirs.members  # type: ignore[attr-defined]
        if set(modeled_members) != set(ours.members):
            differences.append(
                f"{where}: model members {sorted(modeled_members)}, emulator members {sorted(ours.members)}"
            )
        if set(theirs.required_members) != set(ours.required):  # type: ignore[attr-defined]
            differences.append(
                f"{where}: model requires {sorted(theirs.required_members)}, emulator {sorted(ours.required)}"  # type: ignore[attr-defined]
            )
        for name in set(modeled_members) & set(ours.members):
            differences += shape_differences(ours.members[name], modeled_members[name], f"{path}.{name}")
    if ours.type == "list":
        assert ours.member is not None
        differences += shape_differences(ours.member, theirs.member, f"{path}[]")  # type: ignore[attr-defined]
    if ours.type == "map":
        assert ours.key is not None and ours.value is not None
        differences += shape_differences(ours.key, theirs.key, f"{path} key")  # type: ignore[attr-defined]
        differences += shape_differences(ours.value, theirs.value, f"{path} value")  # type: ignore[attr-defined]
    return differences


@pytest.mark.parametrize("target", sorted(OPERATIONS))
def test_the_emulators_request_shapes_are_the_models(target: str) -> None:
    prefix, operation = target.split(".")
    model = botocore.session.get_session().get_service_model(model_check.SERVICES[prefix])
    assert model.metadata["targetPrefix"] == prefix
    assert operation in model.operation_names
    # The emulator speaks every protocol the model offers.
    assert set(model.metadata.get("protocols", [model.protocol])) <= {"json", "smithy-rpc-v2-cbor"}
    _, ours = OPERATIONS[target]
    differences = shape_differences(ours, model.operation_model(operation).input_shape, operation)
    assert not differences, "\n".join(differences)


def test_the_shape_comparison_notices_a_difference() -> None:
    model = botocore.session.get_session().get_service_model("meteringmarketplace")
    record = model.shape_for("UsageRecord")
    changed = shapes.Shape(
        "UsageRecord",
        "structure",
        members={k: v for k, v in shapes.USAGE_RECORD.members.items() if k != "QuantityAsDecimal"},
        required=frozenset({"Timestamp"}),
    )
    differences = shape_differences(changed, record, "UsageRecord")
    assert any("members" in d for d in differences) and any("requires" in d for d in differences)
    looser = shapes.Shape("UsageQuantity", "integer", min=0, max=10)
    assert shape_differences(looser, model.shape_for("UsageQuantity"), "Quantity") == [
        "Quantity (UsageQuantity): model max 2147483647, emulator 10"
    ]


# --- a realistic session, recorded and checked against the model ------------------------------------------


def unchecked(service: str) -> Any:
    return boto3.client(service, config=Config(parameter_validation=False))


def refused(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return str(error.value.response["Error"]["Code"])


def raw_json(emulator: Emulator, target: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        emulator.url,
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1", "Authorization": "x"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def drive_a_realistic_session(
    emulator: Emulator, metering: Any, entitlement: Any, cbor_entitlement: Any
) -> set[str]:
    """What a SaaS integration does against AWS Marketplace, and what goes wrong; returns the error codes."""
    codes: set[str] = set()
    emulator.product("PROD", ("users", "storage"))
    emulator.product("LEGACY", ("users",), legacy=True)
    emulator.product("CONTRACT", ("seats", "tier", "sso", "ratio"), pricingModel="contract")
    first = emulator.subscribe("PROD", customerAWSAccountId="123456789012")
    second = emulator.subscribe("PROD", customerAWSAccountId="123456789012", newAgreement=True)
    other = emulator.subscribe("PROD", customerAWSAccountId="210987654321")
    legacy = emulator.subscribe("LEGACY")
    entitled = [
        {"dimension": "seats", "value": 25, "expirationDate": "2027-11-30T00:00:00+00:00"},
        {"dimension": "tier", "value": "gold"},
        {"dimension": "sso", "value": True},
        {"dimension": "ratio", "value": 0.5},
    ]
    contract = [
        emulator.subscribe("CONTRACT", customerAWSAccountId="333344445555", entitlements=entitled),
        emulator.subscribe(
            "CONTRACT",
            customerAWSAccountId="333344445555",
            newAgreement=True,
            entitlements=[{"dimension": "seats", "value": n} for n in range(30)],
        ),
    ]

    # Registration: every token resolves; bad ones are refused.
    for buyer in (first, second, other, legacy, *contract):
        metering.resolve_customer(RegistrationToken=buyer["token"])
    codes.add(refused(metering.resolve_customer, RegistrationToken="forged"))
    codes.add(refused(unchecked("meteringmarketplace").resolve_customer, RegistrationToken=""))

    # Metering.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)

    def usage(buyer: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "Timestamp": hour,
            "CustomerAWSAccountId": buyer["customerAWSAccountId"],
            "LicenseArn": buyer["licenseArn"],
            "Dimension": "users",
            **extra,
        }

    tags = [{"Key": "team", "Value": "red"}]
    batch = [
        usage(
            first,
            QuantityAsDecimal="17.42",
            UsageAllocations=[
                {"AllocatedUsageQuantityAsDecimal": "10.4", "Tags": tags},
                {"AllocatedUsageQuantityAsDecimal": "7.02"},
            ],
        ),
        usage(
            second,
            Quantity=3,
            UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": tags}, {"AllocatedUsageQuantity": 2}],
        ),
        usage(other, Dimension="storage", QuantityAsDecimal="0"),
    ]
    metering.batch_meter_usage(UsageRecords=batch)
    metering.batch_meter_usage(UsageRecords=batch)  # a retry: idempotent
    metering.batch_meter_usage(UsageRecords=[usage(first, QuantityAsDecimal="18")])  # DuplicateRecord
    metering.batch_meter_usage(UsageRecords=[usage(first, Dimension="storage")], ProductCode="PROD")
    metering.batch_meter_usage(UsageRecords=[])
    metering.batch_meter_usage(
        UsageRecords=[
            {"Timestamp": hour, "CustomerIdentifier": legacy["customerIdentifier"], "Dimension": "users"}
        ],
        ProductCode="LEGACY",
    )
    # Cancelled, and its final hour closed by unsubscribe-success: CustomerNotSubscribed.
    for kind in ("unsubscribe-pending", "unsubscribe-success"):
        assert emulator.event(kind, licenseArn=other["licenseArn"], endedToDeprovisionedSeconds=0)[0] == 200
    metering.batch_meter_usage(UsageRecords=[usage(other, QuantityAsDecimal="1")])
    emulator.admin("POST", "/_emulator/faults", {"unprocessedShare": 0.5})
    metering.batch_meter_usage(
        UsageRecords=[usage(first, Dimension="storage", Quantity=1), usage(second, Dimension="storage")]
    )
    emulator.admin("POST", "/_emulator/faults", {})

    no_check = unchecked("meteringmarketplace")
    for call, kwargs in [
        (metering.batch_meter_usage, {"UsageRecords": [usage(first, Timestamp=hour - timedelta(hours=30))]}),
        (metering.batch_meter_usage, {"UsageRecords": [usage(first, Dimension="gigawatts")]}),
        (metering.batch_meter_usage, {"UsageRecords": [usage(first, LicenseArn=other["licenseArn"])]}),
        (
            metering.batch_meter_usage,
            {
                "UsageRecords": [{"Timestamp": hour, "CustomerIdentifier": "x", "Dimension": "users"}],
                "ProductCode": "NOPE",
            },
        ),
        (
            metering.batch_meter_usage,
            {
                "UsageRecords": [{"Timestamp": hour, "CustomerIdentifier": "x", "Dimension": "users"}],
                "ProductCode": "LEGACY",
            },
        ),
        (
            no_check.batch_meter_usage,
            {"UsageRecords": [usage(first, UsageAllocations=[{"Tags": [{"Key": "?"}]}])]},
        ),
        (
            no_check.batch_meter_usage,
            {"UsageRecords": [usage(first, Quantity=2, UsageAllocations=[{"AllocatedUsageQuantity": -5}])]},
        ),
        (no_check.batch_meter_usage, {"UsageRecords": [usage(first, Quantity=1, QuantityAsDecimal="1")]}),
        (no_check.batch_meter_usage, {"UsageRecords": [usage(first, Quantity="1")]}),
        (no_check.batch_meter_usage, {"UsageRecords": [usage(first)] * 26}),
    ]:
        codes.add(refused(call, **kwargs))
    emulator.admin("POST", "/_emulator/faults", {"throttleEvery": 1, "operations": ["BatchMeterUsage"]})
    codes.add(refused(metering.batch_meter_usage, UsageRecords=[usage(first)]))
    emulator.admin("POST", "/_emulator/faults", {})

    # Entitlements, over both protocols: filters and pages.
    account, license_arn = contract[0]["customerAWSAccountId"], contract[1]["licenseArn"]
    for client in (entitlement, cbor_entitlement):
        for filters in (
            {},
            {"CUSTOMER_AWS_ACCOUNT_ID": [account]},
            {"LICENSE_ARN": [license_arn]},
            {"DIMENSION": ["tier", "sso"]},
            {"CUSTOMER_IDENTIFIER": ["nobody"]},
        ):
            list(client.get_paginator("get_entitlements").paginate(ProductCode="CONTRACT", Filter=filters))
        client.get_entitlements(ProductCode="CONTRACT", MaxResults=1)
        codes.add(refused(client.get_entitlements, ProductCode="NOPE"))
        codes.add(refused(client.get_entitlements, ProductCode="CONTRACT", NextToken="garbage"))
    codes.add(
        refused(unchecked("marketplace-entitlement").get_entitlements, ProductCode="CONTRACT", MaxResults=0)
    )

    # Bodies no SDK sends.
    for body in (b"[]", b"\xff", b'{"MaxResults": "abc", "ProductCode": "CONTRACT"}'):
        assert raw_json(emulator, "AWSMPEntitlementService.GetEntitlements", body) == 400
    assert (
        raw_json(emulator, "AWSMPMeteringService.BatchMeterUsage", b'{"UsageRecords": [{"Colour": 1}]}')
        == 400
    )

    # A token past its lifetime, last (the clock moves).
    emulator.shift_clock(3600)
    codes.add(refused(metering.resolve_customer, RegistrationToken=first["token"]))
    return codes


def modeled_members(shape: BotocoreShape, seen: frozenset[str] = frozenset()) -> set[str]:
    """Every `Structure.member` and `String=enum value` an answer of `shape` can hold."""
    if shape.name in seen:
        return set()
    seen |= {shape.name}
    kind = shape.type_name
    if kind == "structure":
        found = set()
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            found.add(f"{shape.name}.{name}")
            found |= modeled_members(member, seen)
        return found
    if kind == "list":
        return modeled_members(shape.member, seen)  # type: ignore[attr-defined]
    if kind == "map":
        return modeled_members(shape.value, seen)  # type: ignore[attr-defined]
    if kind == "string" and getattr(shape, "enum", None):
        return {f"{shape.name}={value}" for value in shape.enum}  # type: ignore[attr-defined]
    return set()


def answered_members(shape: BotocoreShape, value: Any) -> set[str]:
    """The `Structure.member`s and enum values an answer holds (the model check has checked its shape)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        found = set()
        for name, item in value.items():
            if name in shape.members:  # type: ignore[attr-defined]
                found.add(f"{shape.name}.{name}")
                found |= answered_members(shape.members[name], item)  # type: ignore[attr-defined]
        return found
    if kind == "list" and isinstance(value, list):
        return set().union(*(answered_members(shape.member, item) for item in value))  # type: ignore[attr-defined]
    if kind == "map" and isinstance(value, dict):
        return set().union(*(answered_members(shape.value, item) for item in value.values()))  # type: ignore[attr-defined]
    if kind == "string" and getattr(shape, "enum", None):
        return {f"{shape.name}={value}"}
    return set()


def test_a_realistic_session_fits_the_model(
    emulator: Emulator, metering: Any, entitlement: Any, cbor_entitlement: Any
) -> None:
    codes = drive_a_realistic_session(emulator, metering, entitlement, cbor_entitlement)
    calls = emulator.server.calls
    problems = model_check.all_problems(calls)
    assert not problems, "\n".join(problems)

    # The session did what it says: every operation answered over every protocol, and the errors.
    answered = {(call.operation, call.protocol) for call in calls if call.status == 200}
    assert answered == {
        ("ResolveCustomer", "json"),
        ("BatchMeterUsage", "json"),
        ("GetEntitlements", "json"),
        ("GetEntitlements", "smithy-rpc-v2-cbor"),
    }
    assert codes == {
        "InvalidTokenException",
        "ExpiredTokenException",
        "TimestampOutOfBoundsException",
        "InvalidUsageDimensionException",
        "InvalidLicenseException",
        "InvalidProductCodeException",
        "InvalidCustomerIdentifierException",
        "InvalidTagException",
        "InvalidUsageAllocationsException",
        "ValidationException",
        "SerializationException",
        "ThrottlingException",
        "InvalidParameterException",
    }

    # Every member (and enum value) of every modeled answer was given at least once.
    for operation in ("ResolveCustomer", "BatchMeterUsage", "GetEntitlements"):
        target = next(call.target for call in calls if call.operation == operation)
        output = model_check.operation_model(target).output_shape  # type: ignore[union-attr]
        seen: set[str] = set()
        for call in calls:
            if call.operation == operation and call.status == 200:
                seen |= answered_members(output, model_check.decode(call.protocol, call.body))
        unused = modeled_members(output) - seen
        assert not unused, f"{operation}: the session never answered with {sorted(unused)}"


# --- the checker finds what does not fit ---------------------------------------------------------------


def json_call(target: str, request: Any, status: int, answer: Any, **headers: str) -> RecordedCall:
    return RecordedCall(
        "json",
        target,
        json.dumps(request).encode(),
        status,
        {"Content-Type": "application/x-amz-json-1.1", **headers},
        json.dumps(answer).encode(),
    )


RESOLVE = "AWSMPMeteringService.ResolveCustomer"
METER = "AWSMPMeteringService.BatchMeterUsage"
GOOD_RECORD = {"Timestamp": 1795000000, "CustomerAWSAccountId": "123456789012", "Dimension": "users"}


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (
            json_call(RESOLVE, {"RegistrationToken": "t"}, 200, {"ProductCode": "P", "Colour": "red"}),
            "'Colour' is not a member",
        ),
        (
            json_call(RESOLVE, {"RegistrationToken": "t"}, 200, {"Metadata": {"AgreementId": ""}}),
            "below the minimum 1",
        ),
        (json_call(RESOLVE, {"Token": "t"}, 200, {}), "accepted a request the model refuses"),
        (json_call(RESOLVE, {"RegistrationToken": 5}, 200, {}), "accepted a request the model refuses"),
        (
            json_call(
                METER, {"UsageRecords": [GOOD_RECORD] * 26}, 200, {"Results": [], "UnprocessedRecords": []}
            ),
            "above the maximum 25",
        ),
        (
            json_call(
                METER,
                {"UsageRecords": [GOOD_RECORD]},
                200,
                {"Results": [{"UsageRecord": GOOD_RECORD, "Status": "Billed"}], "UnprocessedRecords": []},
            ),
            "is not one of",
        ),
        (
            json_call(METER, {"UsageRecords": [GOOD_RECORD]}, 200, {"Results": [], "UnprocessedRecords": []}),
            "each record sent exactly once",
        ),
        (
            json_call(RESOLVE, {"RegistrationToken": "t"}, 400, {"__type": "NoSuchThing", "message": "x"}),
            "neither a modeled",
        ),
        (
            json_call(
                RESOLVE, {"RegistrationToken": "t"}, 500, {"__type": "InvalidTokenException", "message": "x"}
            ),
            "HTTP 400, not 500",
        ),
        (
            json_call(
                RESOLVE, {"RegistrationToken": "t"}, 400, {"__type": "SerializationException", "message": "x"}
            ),
            "fits the shape",
        ),
        (
            json_call(RESOLVE, {"RegistrationToken": "t"}, 400, {"__type": "InvalidTokenException"}),
            "a message",
        ),
        (
            RecordedCall("json", RESOLVE, b"{}", 200, {"Content-Type": "application/json"}, b"{}"),
            "Content-Type",
        ),
        (
            RecordedCall(
                "smithy-rpc-v2-cbor",
                "AWSMPEntitlementService.GetEntitlements",
                cbor2.dumps({"ProductCode": "P"}),
                200,
                {"Content-Type": "application/cbor", "Smithy-Protocol": "rpc-v2-cbor"},
                cbor2.dumps({"Entitlements": [{"ExpirationDate": 1795000000}]}),
            ),
            "a timestamp over smithy-rpc-v2-cbor",
        ),
    ],
)
def test_the_checker_finds_what_does_not_fit_the_model(call: RecordedCall, says: str) -> None:
    problems = model_check.call_problems(call)
    assert any(says in problem for problem in problems), problems


def test_the_checker_passes_a_call_that_fits() -> None:
    call = json_call(
        RESOLVE,
        {"RegistrationToken": "t"},
        200,
        {"ProductCode": "P", "CustomerAWSAccountId": "123456789012", "Metadata": {"AgreementId": "agmt-1"}},
    )
    assert model_check.call_problems(call) == []
