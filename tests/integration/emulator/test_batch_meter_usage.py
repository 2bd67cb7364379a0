"""BatchMeterUsage: the 25-record, one-product, identity, 6-hour, dimension, allocation, subscription and
per-hour de-duplication rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.emulator.conftest import Emulator


def record(buyer: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base = {
        "Timestamp": datetime.now(UTC) - timedelta(minutes=5),
        "CustomerAWSAccountId": buyer["customerAWSAccountId"],
        "LicenseArn": buyer["licenseArn"],
        "Dimension": "users",
        "Quantity": 3,
    }
    return {**base, **overrides}


@pytest.fixture
def buyer(emulator: Emulator) -> dict[str, Any]:
    emulator.product()
    return emulator.subscribe()


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_a_record_is_billed_once_for_its_usage_hour(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    result = metering.batch_meter_usage(UsageRecords=[record(buyer)])
    (outcome,) = result["Results"]
    assert outcome["Status"] == "Success" and outcome["MeteringRecordId"]
    assert result["UnprocessedRecords"] == []
    (billed,) = emulator.billed()
    assert billed["customer"] == buyer["customerAWSAccountId"]
    assert billed["identityType"] == "CustomerAWSAccountId"
    assert billed["licenseArn"] == buyer["licenseArn"]
    assert billed["quantity"] == 3 and billed["dimension"] == "users"
    assert billed["hour"].endswith(":00:00+00:00")


def test_an_identical_record_is_idempotent(emulator: Emulator, metering: Any, buyer: dict[str, Any]) -> None:
    same = record(buyer)
    first = metering.batch_meter_usage(UsageRecords=[same])["Results"][0]
    again = metering.batch_meter_usage(UsageRecords=[same])["Results"][0]
    assert again["Status"] == "Success"
    assert again["MeteringRecordId"] == first["MeteringRecordId"]
    assert len(emulator.billed()) == 1


def test_another_quantity_for_the_same_hour_is_a_duplicate(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    hour_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    metering.batch_meter_usage(UsageRecords=[record(buyer, Timestamp=hour_start)])
    later = metering.batch_meter_usage(
        UsageRecords=[record(buyer, Timestamp=hour_start + timedelta(seconds=30), Quantity=9)]
    )
    assert later["Results"][0]["Status"] == "DuplicateRecord"
    (billed,) = emulator.billed()
    assert billed["quantity"] == 3  # the first record is what is billed


def test_more_than_25_records_are_refused(metering: Any, buyer: dict[str, Any]) -> None:
    records = [
        record(buyer, Dimension="users", Timestamp=datetime.now(UTC) - timedelta(hours=1, minutes=i))
        for i in range(26)
    ]
    with pytest.raises(ClientError) as refused:
        metering.batch_meter_usage(UsageRecords=records)
    assert "at most 25" in str(refused.value)


def test_one_product_per_call(emulator: Emulator, metering: Any, buyer: dict[str, Any]) -> None:
    emulator.product("OTHER")
    other = emulator.subscribe("OTHER")
    with pytest.raises(ClientError) as refused:
        metering.batch_meter_usage(UsageRecords=[record(buyer), record(other)])
    assert "one product" in str(refused.value)
    assert emulator.billed() == []


def test_customer_identifier_and_account_id_are_mutually_exclusive(
    metering: Any, buyer: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        metering.batch_meter_usage(UsageRecords=[record(buyer, CustomerIdentifier="abc")])
    assert "exactly one of CustomerAWSAccountId and CustomerIdentifier" in str(refused.value)


def test_license_arn_and_product_code_are_mutually_exclusive(metering: Any, buyer: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as refused:
        metering.batch_meter_usage(UsageRecords=[record(buyer)], ProductCode="PROD")
    assert "ProductCode must not be given" in str(refused.value)


def test_the_legacy_identity_style_meters_by_customer_identifier_and_product_code(
    emulator: Emulator, metering: Any
) -> None:
    emulator.product("LEGACY", legacy=True)
    buyer = emulator.subscribe("LEGACY")
    legacy_record = {
        "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
        "CustomerIdentifier": buyer["customerIdentifier"],
        "Dimension": "users",
        "Quantity": 2,
    }
    result = metering.batch_meter_usage(UsageRecords=[legacy_record], ProductCode="LEGACY")
    assert result["Results"][0]["Status"] == "Success"
    (billed,) = emulator.billed("LEGACY")
    assert billed["identityType"] == "CustomerIdentifier"
    assert billed["customer"] == buyer["customerIdentifier"]


@pytest.mark.parametrize(
    "age",
    [timedelta(hours=6, seconds=5), timedelta(hours=-1)],
    ids=["older than 6 hours", "in the future"],
)
def test_a_timestamp_out_of_bounds_rejects_the_whole_batch(
    emulator: Emulator, metering: Any, buyer: dict[str, Any], age: timedelta
) -> None:
    good = record(buyer)
    bad = record(buyer, Dimension="storage", Timestamp=datetime.now(UTC) - age)
    with pytest.raises(metering.exceptions.TimestampOutOfBoundsException):
        metering.batch_meter_usage(UsageRecords=[good, bad])
    assert emulator.billed() == []


def test_just_inside_six_hours_is_accepted(metering: Any, buyer: dict[str, Any]) -> None:
    edge = record(buyer, Timestamp=datetime.now(UTC) - timedelta(hours=5, minutes=59))
    assert metering.batch_meter_usage(UsageRecords=[edge])["Results"][0]["Status"] == "Success"


def test_an_unknown_dimension_is_refused(metering: Any, buyer: dict[str, Any]) -> None:
    with pytest.raises(metering.exceptions.InvalidUsageDimensionException):
        metering.batch_meter_usage(UsageRecords=[record(buyer, Dimension="gigawatts")])


def allocation(quantity: int, *tags: tuple[str, str]) -> dict[str, Any]:
    return {"AllocatedUsageQuantity": quantity, "Tags": [{"Key": key, "Value": value} for key, value in tags]}


def test_valid_allocations_are_billed_with_the_record(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    allocations = [allocation(1, ("team", "red")), allocation(2, ("team", "blue"), ("env", "prod"))]
    result = metering.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=allocations)])
    assert result["Results"][0]["Status"] == "Success"
    assert emulator.billed()[0]["allocations"] == allocations


@pytest.mark.parametrize(
    ("allocations", "error"),
    [
        ([allocation(3)], "InvalidTagException"),
        ([allocation(3, *[(f"k{i}", "v") for i in range(6)])], "InvalidTagException"),
        ([allocation(3, ("bad?key", "v"))], "InvalidTagException"),
        ([allocation(3, ("k", "x" * 257))], "InvalidTagException"),
        ([allocation(1, ("k", "v")), allocation(1, ("k", "w"))], "InvalidUsageAllocationsException"),
    ],
    ids=["no tags", "six tags", "tag pattern", "value too long", "sum differs from quantity"],
)
def test_bad_allocations_are_refused(
    buyer: dict[str, Any], allocations: list[dict[str, Any]], error: str
) -> None:
    # Without botocore's own checks, so the server's are what is tested (other SDKs may not check).
    unchecked = boto3.client("meteringmarketplace", config=Config(parameter_validation=False))
    with pytest.raises(ClientError) as refused:
        unchecked.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=allocations)])
    assert error_code(refused) == error


@pytest.mark.parametrize("event", ["unsubscribe-success", "subscribe-fail"])
def test_customers_not_actively_subscribed_are_not_billed(
    emulator: Emulator, metering: Any, buyer: dict[str, Any], event: str
) -> None:
    emulator.admin(
        "POST",
        "/_emulator/events",
        {"productCode": "PROD", "customerAWSAccountId": buyer["customerAWSAccountId"], "type": event},
    )
    result = metering.batch_meter_usage(UsageRecords=[record(buyer)])
    assert result["Results"][0]["Status"] == "CustomerNotSubscribed"
    assert emulator.billed() == []


def test_a_pending_subscription_is_not_billed_until_it_succeeds(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyer = emulator.subscribe(status="pending")
    assert (
        metering.batch_meter_usage(UsageRecords=[record(buyer)])["Results"][0]["Status"]
        == "CustomerNotSubscribed"
    )
    emulator.admin(
        "POST",
        "/_emulator/events",
        {
            "productCode": "PROD",
            "customerAWSAccountId": buyer["customerAWSAccountId"],
            "type": "subscribe-success",
        },
    )
    assert metering.batch_meter_usage(UsageRecords=[record(buyer)])["Results"][0]["Status"] == "Success"


def test_cancel_pending_customers_can_still_be_billed_their_final_usage(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    emulator.admin(
        "POST",
        "/_emulator/events",
        {
            "productCode": "PROD",
            "customerAWSAccountId": buyer["customerAWSAccountId"],
            "type": "unsubscribe-pending",
        },
    )
    assert metering.batch_meter_usage(UsageRecords=[record(buyer)])["Results"][0]["Status"] == "Success"
