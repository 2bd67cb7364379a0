"""BatchMeterUsage: the 25-record, one-product, identity, dimension, allocation, subscription and per-hour
de-duplication rules (the window: test_metering_window.py; decimals: test_decimal_quantities.py)."""

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
    assert billed["quantity"] == "3" and billed["dimension"] == "users"
    assert billed["productCodeSent"] is False
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
    # The last complete hour: 30 s into the current one may still be in the future.
    hour_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    metering.batch_meter_usage(UsageRecords=[record(buyer, Timestamp=hour_start)])
    later = metering.batch_meter_usage(
        UsageRecords=[record(buyer, Timestamp=hour_start + timedelta(seconds=30), Quantity=9)]
    )
    assert later["Results"][0]["Status"] == "DuplicateRecord"
    (billed,) = emulator.billed()
    assert billed["quantity"] == "3"  # the first record is what is billed


def test_more_than_25_records_are_refused(metering: Any, buyer: dict[str, Any]) -> None:
    records = [
        record(buyer, Dimension="users", Timestamp=datetime.now(UTC) - timedelta(hours=1, minutes=i))
        for i in range(26)
    ]
    # botocore does not check a list's maximum; the emulator answers as AWS does.
    with pytest.raises(ClientError) as refused:
        metering.batch_meter_usage(UsageRecords=records)
    assert error_code(refused) == "ValidationException"
    assert "UsageRecords" in str(refused.value) and "less than or equal to 25" in str(refused.value)


def test_an_empty_call_is_answered_with_no_results(emulator: Emulator, metering: Any) -> None:
    # The model allows it (UsageRecordList min 0).
    result = metering.batch_meter_usage(UsageRecords=[])
    assert result["Results"] == [] and result["UnprocessedRecords"] == []


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
    assert error_code(refused) == "ValidationException"
    assert "mutually exclusive" in str(refused.value)


def test_product_code_with_a_license_arn_is_accepted_and_marked(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    # AWS accepts it (and bills twice: never send both); the emulator bills once and says it was sent.
    result = metering.batch_meter_usage(UsageRecords=[record(buyer)], ProductCode="PROD")
    assert result["Results"][0]["Status"] == "Success"
    (billed,) = emulator.billed()
    assert billed["productCodeSent"] is True and billed["licenseArn"] == buyer["licenseArn"]


def test_product_code_naming_another_product_than_the_license_is_an_invalid_license(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    emulator.product("OTHER")
    with pytest.raises(metering.exceptions.InvalidLicenseException) as refused:
        metering.batch_meter_usage(UsageRecords=[record(buyer)], ProductCode="OTHER")
    assert "is a license of PROD, not of OTHER" in str(refused.value)


def test_account_and_product_code_without_license_arn_name_the_accounts_only_license(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    # Integrations from before LicenseArn existed: CustomerAWSAccountId + the request's ProductCode.
    older = {key: value for key, value in record(buyer).items() if key != "LicenseArn"}
    assert metering.batch_meter_usage(UsageRecords=[older], ProductCode="PROD")["Results"][0]["Status"] == (
        "Success"
    )
    assert emulator.billed()[0]["licenseArn"] == buyer["licenseArn"]
    with pytest.raises(ClientError) as refused:
        metering.batch_meter_usage(UsageRecords=[older])
    assert error_code(refused) == "ValidationException"


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
    assert billed["licenseArn"] == buyer["licenseArn"]  # the license the identifier stands for
    assert billed["quantity"] == "2"


def test_an_unknown_customer_identifier_is_refused(emulator: Emulator, metering: Any) -> None:
    emulator.product("LEGACY", legacy=True)
    unknown = {"Timestamp": datetime.now(UTC), "CustomerIdentifier": "nobody", "Dimension": "users"}
    with pytest.raises(metering.exceptions.InvalidCustomerIdentifierException):
        metering.batch_meter_usage(UsageRecords=[unknown], ProductCode="LEGACY")


def test_an_unknown_product_code_is_refused(emulator: Emulator, metering: Any) -> None:
    unknown = {"Timestamp": datetime.now(UTC), "CustomerIdentifier": "x", "Dimension": "users"}
    with pytest.raises(metering.exceptions.InvalidProductCodeException):
        metering.batch_meter_usage(UsageRecords=[unknown], ProductCode="NOPE")


def test_an_unknown_dimension_is_refused(metering: Any, buyer: dict[str, Any]) -> None:
    with pytest.raises(metering.exceptions.InvalidUsageDimensionException) as refused:
        metering.batch_meter_usage(UsageRecords=[record(buyer, Dimension="gigawatts")])
    assert "users, storage" in str(refused.value)


def allocation(quantity: Any, *tags: tuple[str, str]) -> dict[str, Any]:
    return {"AllocatedUsageQuantity": quantity, "Tags": [{"Key": key, "Value": value} for key, value in tags]}


def test_valid_allocations_are_billed_with_the_record(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    allocations = [allocation(1, ("team", "red")), allocation(2, ("team", "blue"), ("env", "prod"))]
    result = metering.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=allocations)])
    assert result["Results"][0]["Status"] == "Success"
    assert emulator.billed()[0]["allocations"] == [
        {"quantity": "1", "tags": [{"Key": "team", "Value": "red"}]},
        {"quantity": "2", "tags": [{"Key": "team", "Value": "blue"}, {"Key": "env", "Value": "prod"}]},
    ]


def test_an_allocation_without_tags_is_the_untagged_bucket(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    # API reference, UsageAllocation: "For the bucket of items with no tags, this parameter can be left out."
    allocations = [allocation(1, ("team", "red")), {"AllocatedUsageQuantity": 2}]
    result = metering.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=allocations)])
    assert result["Results"][0]["Status"] == "Success"
    assert emulator.billed()[0]["allocations"][1] == {"quantity": "2", "tags": []}


def test_up_to_2500_allocations_are_accepted(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    allocations = [allocation(1, ("n", str(n))) for n in range(2500)]
    result = metering.batch_meter_usage(
        UsageRecords=[record(buyer, Quantity=2500, UsageAllocations=allocations)]
    )
    assert result["Results"][0]["Status"] == "Success"
    assert len(emulator.billed()[0]["allocations"]) == 2500


def test_an_identical_record_with_its_allocations_in_another_order_is_the_same_record(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    buckets = [allocation(1, ("team", "red")), allocation(2, ("team", "blue"))]
    first = metering.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=buckets)])["Results"][0]
    again = metering.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=buckets[::-1])])
    assert again["Results"][0]["MeteringRecordId"] == first["MeteringRecordId"]
    other = [allocation(2, ("team", "red")), allocation(1, ("team", "blue"))]
    assert metering.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=other)])["Results"][0][
        "Status"
    ] == ("DuplicateRecord")


@pytest.mark.parametrize(
    ("allocations", "error"),
    [
        ([allocation(3)], "InvalidTagException"),
        ([allocation(3, *[(f"k{i}", "v") for i in range(6)])], "InvalidTagException"),
        ([allocation(3, ("bad?key", "v"))], "InvalidTagException"),
        ([allocation(3, ("k", "x" * 257))], "InvalidTagException"),
        ([{"AllocatedUsageQuantity": 3, "Tags": [{"Key": "k"}]}], "InvalidTagException"),
        ([allocation(1, ("k", "v")), allocation(1, ("k", "w"))], "InvalidUsageAllocationsException"),
        ([allocation(-5, ("k", "v"))], "InvalidUsageAllocationsException"),
        ([allocation(5, ("k", "v")), allocation(-2, ("k", "w"))], "InvalidUsageAllocationsException"),
        ([allocation(1, ("k", str(n))) for n in range(2501)], "InvalidUsageAllocationsException"),
        ([{"Tags": [{"Key": "k", "Value": "v"}]}], "InvalidUsageAllocationsException"),
        ([], "InvalidUsageAllocationsException"),
    ],
    ids=[
        "empty tag list",
        "six tags",
        "tag pattern",
        "value too long",
        "tag without value",
        "sum differs from quantity",
        "a negative allocation",
        "adds up only across signs",
        "2501 allocations",
        "an allocation without a quantity",
        "no allocations in the list",
    ],
)
def test_bad_allocations_are_refused(
    buyer: dict[str, Any], allocations: list[dict[str, Any]], error: str
) -> None:
    # Without botocore's own checks, so the server's are what is tested (other SDKs may not check).
    unchecked = boto3.client("meteringmarketplace", config=Config(parameter_validation=False))
    with pytest.raises(ClientError) as refused:
        unchecked.batch_meter_usage(UsageRecords=[record(buyer, UsageAllocations=allocations)])
    assert error_code(refused) == error


def test_a_failed_subscription_is_not_billed(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyer = emulator.subscribe(status="pending")
    assert emulator.event("subscribe-fail", customerAWSAccountId=buyer["customerAWSAccountId"])[0] == 200
    result = metering.batch_meter_usage(UsageRecords=[record(buyer)])
    assert result["Results"][0]["Status"] == "CustomerNotSubscribed"
    assert emulator.billed() == []
    # (A cancelled license's final hour: test_final_hour.py.)


def test_a_pending_subscription_is_not_billed_until_it_succeeds(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyer = emulator.subscribe(status="pending")
    assert (
        metering.batch_meter_usage(UsageRecords=[record(buyer)])["Results"][0]["Status"]
        == "CustomerNotSubscribed"
    )
    emulator.event("subscribe-success", customerAWSAccountId=buyer["customerAWSAccountId"])
    assert metering.batch_meter_usage(UsageRecords=[record(buyer)])["Results"][0]["Status"] == "Success"


def test_cancel_pending_customers_can_still_be_billed_their_final_usage(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    emulator.event("unsubscribe-pending", customerAWSAccountId=buyer["customerAWSAccountId"])
    assert metering.batch_meter_usage(UsageRecords=[record(buyer)])["Results"][0]["Status"] == "Success"
