"""Concurrent agreements: one AWS account may hold several licenses of one product at once; the buyer is the
account + LicenseArn, and metering, de-duplication and status are per license."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.emulator.conftest import Emulator

ACCOUNT = "123456789012"
# The emulator's clock for these tests: mid-month, so that an hour's usage is never last month's.
MID_MONTH = datetime(2026, 11, 17, 14, 25, tzinfo=UTC)


def usage(buyer: dict[str, Any], quantity: str = "4", **extra: Any) -> dict[str, Any]:
    return {
        "Timestamp": MID_MONTH.replace(minute=0) - timedelta(hours=1),
        "CustomerAWSAccountId": buyer["customerAWSAccountId"],
        "LicenseArn": buyer["licenseArn"],
        "Dimension": "users",
        "QuantityAsDecimal": quantity,
        **extra,
    }


@pytest.fixture
def two_licenses(emulator: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    emulator.set_clock(MID_MONTH)
    emulator.product()
    first = emulator.subscribe(customerAWSAccountId=ACCOUNT)
    second = emulator.subscribe(customerAWSAccountId=ACCOUNT, newAgreement=True)
    return first, second


def test_a_new_agreement_mints_another_license_and_agreement(
    emulator: Emulator, two_licenses: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    first, second = two_licenses
    assert first["customerAWSAccountId"] == second["customerAWSAccountId"] == ACCOUNT
    assert first["licenseArn"] != second["licenseArn"]
    assert first["agreementId"] != second["agreementId"]
    assert all(b["agreementId"].startswith("agmt-") for b in two_licenses)
    listed = emulator.subscriptions()
    assert [s["licenseArn"] for s in listed] == [first["licenseArn"], second["licenseArn"]]
    assert [s["agreementId"] for s in listed] == [first["agreementId"], second["agreementId"]]


def test_without_new_agreement_the_newest_license_of_the_account_is_reused(
    emulator: Emulator, metering: Any, two_licenses: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, second = two_licenses
    again = emulator.subscribe(customerAWSAccountId=ACCOUNT)
    assert (again["licenseArn"], again["agreementId"]) == (second["licenseArn"], second["agreementId"])
    assert again["token"] != second["token"]
    assert len(emulator.subscriptions()) == 2


def test_each_token_resolves_to_its_own_license_and_agreement(
    metering: Any, two_licenses: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    for buyer in two_licenses:
        resolved = metering.resolve_customer(RegistrationToken=buyer["token"])
        assert resolved["CustomerAWSAccountId"] == ACCOUNT
        assert resolved["LicenseArn"] == buyer["licenseArn"]
        assert resolved["Metadata"] == {"AgreementId": buyer["agreementId"]}


def test_two_licenses_of_one_account_are_billed_separately(
    emulator: Emulator, metering: Any, two_licenses: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    first, second = two_licenses
    result = metering.batch_meter_usage(UsageRecords=[usage(first, "4"), usage(second, "7.5")])
    assert [outcome["Status"] for outcome in result["Results"]] == ["Success", "Success"]
    billed = {record["licenseArn"]: record["quantity"] for record in emulator.billed()}
    assert billed == {first["licenseArn"]: "4", second["licenseArn"]: "7.5"}
    # Per license + dimension + hour: another quantity for the first license is a duplicate, the second's
    # identical record is idempotent.
    again = metering.batch_meter_usage(UsageRecords=[usage(first, "5"), usage(second, "7.50")])
    assert [outcome["Status"] for outcome in again["Results"]] == ["DuplicateRecord", "Success"]
    assert again["Results"][1]["MeteringRecordId"] == result["Results"][1]["MeteringRecordId"]
    assert len(emulator.billed()) == 2


def test_a_license_of_another_account_is_an_invalid_license(
    emulator: Emulator, metering: Any, two_licenses: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    someone_else = emulator.subscribe(customerAWSAccountId="999999999999")
    with pytest.raises(metering.exceptions.InvalidLicenseException) as refused:
        metering.batch_meter_usage(
            UsageRecords=[usage(two_licenses[0], LicenseArn=someone_else["licenseArn"])]
        )
    assert "is not a license of CustomerAWSAccountId 123456789012" in str(refused.value)
    with pytest.raises(metering.exceptions.InvalidLicenseException):
        metering.batch_meter_usage(
            UsageRecords=[usage(two_licenses[0], LicenseArn="arn:aws:license-manager::1:license:l-0")]
        )
    assert emulator.billed() == []


def test_an_account_with_several_licenses_must_name_one(
    emulator: Emulator, metering: Any, two_licenses: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    older = {key: value for key, value in usage(two_licenses[0]).items() if key != "LicenseArn"}
    with pytest.raises(metering.exceptions.ClientError) as refused:
        metering.batch_meter_usage(UsageRecords=[older], ProductCode="PROD")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "holds 2 licenses" in str(refused.value)


def test_an_event_names_the_license_when_the_account_holds_several(
    emulator: Emulator, metering: Any, two_licenses: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    first, second = two_licenses
    status, body = emulator.event("unsubscribe-success", customerAWSAccountId=ACCOUNT)
    assert status == 409
    assert first["licenseArn"] in body["message"] and second["licenseArn"] in body["message"]

    status, body = emulator.event("unsubscribe-success", licenseArn=first["licenseArn"])
    assert status == 200, body
    assert (body["status"], body["licenseArn"], body["agreementId"]) == (
        "cancelled",
        first["licenseArn"],
        first["agreementId"],
    )
    statuses = {s["licenseArn"]: s["status"] for s in emulator.subscriptions()}
    assert statuses == {first["licenseArn"]: "cancelled", second["licenseArn"]: "active"}
    emulator.shift_clock(3600 + 10)  # the first license's final hour is over
    outcomes = metering.batch_meter_usage(UsageRecords=[usage(first), usage(second)])["Results"]
    assert [outcome["Status"] for outcome in outcomes] == ["CustomerNotSubscribed", "Success"]

    # Naming the account too is fine when they match; a license of someone else is not found.
    assert emulator.event(
        "entitlement-updated", customerAWSAccountId=ACCOUNT, licenseArn=second["licenseArn"]
    )[0] == (200)
    assert (
        emulator.event(
            "entitlement-updated", customerAWSAccountId="999999999999", licenseArn=second["licenseArn"]
        )[0]
        == 404
    )
    logged = emulator.admin("GET", "/_emulator/events")[1]["events"]
    assert [(e["type"], e["licenseArn"]) for e in logged][-2:] == [
        ("unsubscribe-success", first["licenseArn"]),
        ("entitlement-updated", second["licenseArn"]),
    ]


def test_an_account_with_one_license_needs_no_license_arn_in_events(emulator: Emulator) -> None:
    emulator.product()
    buyer = emulator.subscribe(customerAWSAccountId=ACCOUNT)
    status, body = emulator.event("unsubscribe-pending", customerAWSAccountId=ACCOUNT)
    assert status == 200 and body["licenseArn"] == buyer["licenseArn"] and body["status"] == "cancel-pending"


def test_each_agreement_is_announced_with_its_own_ids(emulator: Emulator) -> None:
    emulator.product()
    first = emulator.subscribe(customerAWSAccountId=ACCOUNT)
    second = emulator.subscribe(customerAWSAccountId=ACCOUNT, newAgreement=True)
    events = [n["event"] for n in emulator.notifications("eventbridge")]
    assert [e["detail-type"] for e in events] == [
        "Purchase Agreement Created - Proposer",
        "License Updated - Manufacturer",
    ] * 2
    assert [e["detail"]["agreement"]["id"] for e in events] == [first["agreementId"]] * 2 + [
        second["agreementId"]
    ] * 2
    assert [e["detail"]["license"]["arn"] for e in events[1::2]] == [
        first["licenseArn"],
        second["licenseArn"],
    ]


def test_legacy_products_cannot_hold_concurrent_agreements(emulator: Emulator) -> None:
    emulator.product("LEGACY", legacy=True)
    emulator.subscribe("LEGACY", customerAWSAccountId=ACCOUNT)
    status, body = emulator.admin(
        "POST",
        "/_emulator/subscriptions",
        {"productCode": "LEGACY", "customerAWSAccountId": ACCOUNT, "newAgreement": True},
    )
    assert status == 409 and "CustomerAWSAccountId + LicenseArn" in body["message"]


def test_a_new_agreement_for_a_new_account_is_simply_its_first(emulator: Emulator) -> None:
    emulator.product()
    buyer = emulator.subscribe(newAgreement=True)
    assert [s["licenseArn"] for s in emulator.subscriptions()] == [buyer["licenseArn"]]
