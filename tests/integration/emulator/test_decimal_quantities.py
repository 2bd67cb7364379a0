"""QuantityAsDecimal (since the model of 2026-10-20; Quantity is deprecated): decimal strings, compared by
value, never mixed with Quantity in one record or with the other kind in its allocations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.emulator.conftest import Emulator

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture
def buyer(emulator: Emulator) -> dict[str, Any]:
    emulator.product()
    return emulator.subscribe()


@pytest.fixture
def unchecked(emulator: Emulator) -> Any:
    """A client without botocore's own checks, so the server's are what is tested."""
    return boto3.client("meteringmarketplace", config=Config(parameter_validation=False))


def record(buyer: dict[str, Any], **quantity: Any) -> dict[str, Any]:
    return {
        "Timestamp": HOUR,
        "CustomerAWSAccountId": buyer["customerAWSAccountId"],
        "LicenseArn": buyer["licenseArn"],
        "Dimension": "users",
        **quantity,
    }


def decimal_allocation(quantity: str, team: str) -> dict[str, Any]:
    return {"AllocatedUsageQuantityAsDecimal": quantity, "Tags": [{"Key": "team", "Value": team}]}


def code_of(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


@pytest.mark.parametrize(
    ("sent", "billed"),
    [
        ("17.42", "17.42"),
        ("17.00", "17"),
        ("0", "0"),
        ("0.000", "0"),
        ("9999999999.999999", "9999999999.999999"),
    ],
)
def test_a_decimal_quantity_is_billed_by_value(
    emulator: Emulator, metering: Any, buyer: dict[str, Any], sent: str, billed: str
) -> None:
    assert metering.batch_meter_usage(UsageRecords=[record(buyer, QuantityAsDecimal=sent)])["Results"][0][
        "Status"
    ] == ("Success")
    assert [r["quantity"] for r in emulator.billed()] == [billed]


def test_no_quantity_at_all_is_zero(emulator: Emulator, metering: Any, buyer: dict[str, Any]) -> None:
    # "Defaults to 0 if neither Quantity nor QuantityAsDecimal is specified."
    metering.batch_meter_usage(UsageRecords=[record(buyer)])
    assert [r["quantity"] for r in emulator.billed()] == ["0"]


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ({"Quantity": 17}, {"QuantityAsDecimal": "17.00"}),
        ({"QuantityAsDecimal": "17"}, {"QuantityAsDecimal": "17.0"}),
        ({"QuantityAsDecimal": "17.000000"}, {"Quantity": 17}),
    ],
    ids=["int then decimal", "decimal then decimal", "decimal then int"],
)
def test_duplicates_compare_by_value(
    emulator: Emulator, metering: Any, buyer: dict[str, Any], first: dict[str, Any], again: dict[str, Any]
) -> None:
    sent = metering.batch_meter_usage(UsageRecords=[record(buyer, **first)])["Results"][0]
    repeated = metering.batch_meter_usage(UsageRecords=[record(buyer, **again)])["Results"][0]
    assert repeated["Status"] == "Success"
    assert repeated["MeteringRecordId"] == sent["MeteringRecordId"]
    assert [r["quantity"] for r in emulator.billed()] == ["17"]


def test_another_value_in_the_same_hour_is_a_duplicate_record(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    metering.batch_meter_usage(UsageRecords=[record(buyer, QuantityAsDecimal="17")])
    later = metering.batch_meter_usage(UsageRecords=[record(buyer, QuantityAsDecimal="17.000001")])
    assert later["Results"][0]["Status"] == "DuplicateRecord"
    assert [r["quantity"] for r in emulator.billed()] == ["17"]


def test_both_kinds_of_quantity_in_one_record_are_refused(
    emulator: Emulator, unchecked: Any, buyer: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        unchecked.batch_meter_usage(UsageRecords=[record(buyer, Quantity=17, QuantityAsDecimal="17")])
    assert code_of(refused) == "ValidationException"
    assert "not both" in str(refused.value)
    assert emulator.billed() == []


@pytest.mark.parametrize(
    "bad", ["-1", "1e3", "017", "1.", ".5", "1.1234567", "12345678901", "", "NaN", "1,5"]
)
def test_a_decimal_quantity_outside_the_models_pattern_is_refused(
    emulator: Emulator, unchecked: Any, buyer: dict[str, Any], bad: str
) -> None:
    with pytest.raises(ClientError) as refused:
        unchecked.batch_meter_usage(UsageRecords=[record(buyer, QuantityAsDecimal=bad)])
    assert code_of(refused) == "ValidationException"
    assert "QuantityAsDecimal" in str(refused.value)


def test_decimal_allocations_must_add_up_exactly(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    buckets = [decimal_allocation("10.4", "red"), decimal_allocation("7.02", "blue")]
    result = metering.batch_meter_usage(
        UsageRecords=[record(buyer, QuantityAsDecimal="17.42", UsageAllocations=buckets)]
    )
    assert result["Results"][0]["Status"] == "Success"
    (billed,) = emulator.billed()
    assert billed["quantity"] == "17.42"
    assert [(a["quantity"], a["tags"][0]["Value"]) for a in billed["allocations"]] == [
        ("10.4", "red"),
        ("7.02", "blue"),
    ]


@pytest.mark.parametrize(
    ("quantity", "allocations"),
    [
        (
            {"QuantityAsDecimal": "17.42"},
            [decimal_allocation("10.4", "red"), decimal_allocation("7.021", "b")],
        ),
        ({"QuantityAsDecimal": "3"}, [decimal_allocation("-5", "red"), decimal_allocation("8", "blue")]),
        ({"QuantityAsDecimal": "3"}, [{"AllocatedUsageQuantity": 3, "Tags": [{"Key": "t", "Value": "v"}]}]),
        ({"Quantity": 3}, [decimal_allocation("3", "red")]),
        (
            {"QuantityAsDecimal": "3"},
            [{"AllocatedUsageQuantity": 3, "AllocatedUsageQuantityAsDecimal": "3"}],
        ),
        ({}, [decimal_allocation("0", "red"), {"AllocatedUsageQuantity": 0}]),
    ],
    ids=[
        "sum off by 0.001",
        "negative decimal allocation",
        "integer allocation on a decimal record",
        "decimal allocation on an integer record",
        "both kinds in one allocation",
        "two kinds among the allocations",
    ],
)
def test_allocations_must_match_the_records_kind_and_value(
    emulator: Emulator,
    unchecked: Any,
    buyer: dict[str, Any],
    quantity: dict[str, Any],
    allocations: list[dict[str, Any]],
) -> None:
    with pytest.raises(unchecked.exceptions.InvalidUsageAllocationsException):
        unchecked.batch_meter_usage(UsageRecords=[record(buyer, **quantity, UsageAllocations=allocations)])
    assert emulator.billed() == []


def test_a_string_where_an_integer_quantity_belongs_is_a_serialization_error(
    emulator: Emulator, unchecked: Any, buyer: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        unchecked.batch_meter_usage(UsageRecords=[record(buyer, Quantity="17")])
    assert code_of(refused) == "SerializationException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
