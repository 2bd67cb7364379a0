"""BatchMeterUsage follows the lifecycle: a cancelled license's usage is taken for one more hour.

MARKETPLACE.md ("Metering"): "after `unsubscribe-pending` (SNS) or `License Deprovisioned` (EventBridge)
the seller has about 1 hour to send final records"; saas-notification: `unsubscribe-success` "signals the
completion of cancellation, after which no further metering records will be accepted". The clock sits
mid-month, so no record is last month's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.emulator.conftest import Emulator

CANCELLED_AT = datetime(2026, 11, 17, 9, 40, tzinfo=UTC)
BEFORE = CANCELLED_AT - timedelta(minutes=40)  # usage of the hour the buyer left in
EARLIER = CANCELLED_AT - timedelta(hours=3)


@pytest.fixture
def buyer(emulator: Emulator) -> dict[str, Any]:
    emulator.set_clock(CANCELLED_AT - timedelta(hours=5))
    emulator.product(dimensions=("users", "storage", "seats", "jobs"))
    minted = emulator.subscribe()
    emulator.set_clock(CANCELLED_AT)
    return minted


def billed(metering: Any, buyer: dict[str, Any], at: datetime, dimension: str = "users") -> str:
    """The status BatchMeterUsage gives one record of the buyer's usage stamped `at`."""
    record = {
        "Timestamp": at,
        "CustomerAWSAccountId": buyer["customerAWSAccountId"],
        "LicenseArn": buyer["licenseArn"],
        "Dimension": dimension,
        "QuantityAsDecimal": "2",
    }
    (result,) = metering.batch_meter_usage(UsageRecords=[record])["Results"]
    return str(result["Status"])


def cancel(emulator: Emulator, buyer: dict[str, Any], kind: str, gap: float = 0) -> dict[str, Any]:
    status, body = emulator.event(kind, licenseArn=buyer["licenseArn"], endedToDeprovisionedSeconds=gap)
    assert status == 200, body
    return body


def test_after_unsubscribe_pending_the_usage_from_before_is_taken_for_an_hour(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    assert cancel(emulator, buyer, "unsubscribe-pending")["status"] == "cancel-pending"
    assert billed(metering, buyer, BEFORE) == "Success"
    emulator.shift_clock(50 * 60)  # well inside the final hour
    assert billed(metering, buyer, EARLIER, "storage") == "Success"
    # Usage stamped after the cancellation is not the leaving buyer's.
    assert billed(metering, buyer, CANCELLED_AT + timedelta(minutes=5), "seats") == "CustomerNotSubscribed"
    emulator.shift_clock(11 * 60)  # the hour is over
    assert billed(metering, buyer, BEFORE, "jobs") == "CustomerNotSubscribed"
    assert sorted(record["dimension"] for record in emulator.billed()) == ["storage", "users"]
    (listed,) = emulator.subscriptions()
    assert listed["status"] == "cancel-pending"
    assert datetime.fromisoformat(listed["finalUsageUntil"]) - CANCELLED_AT < timedelta(hours=1, seconds=5)


def test_the_final_hour_opens_with_license_deprovisioned_not_with_purchase_agreement_ended(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    cancel(emulator, buyer, "unsubscribe-pending", gap=120)
    # Between Ended and Deprovisioned the license is still the buyer's.
    emulator.shift_clock(60)
    assert billed(metering, buyer, CANCELLED_AT + timedelta(seconds=30)) == "Success"
    # The hour counts from Deprovisioned, two minutes after Ended.
    emulator.shift_clock(3600)
    assert billed(metering, buyer, BEFORE, "storage") == "Success"
    emulator.shift_clock(61)
    assert billed(metering, buyer, BEFORE, "seats") == "CustomerNotSubscribed"


def test_unsubscribe_success_without_pending_still_takes_a_final_flush(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    body = cancel(emulator, buyer, "unsubscribe-success")
    assert body["status"] == "cancelled"
    # The whole cancellation is announced: Ended, then Deprovisioned, which opens the final hour.
    assert [n["name"] for n in body["notifications"]] == [
        "Purchase Agreement Ended - Proposer",
        "License Deprovisioned - Manufacturer",
    ]
    emulator.shift_clock(30 * 60)
    assert billed(metering, buyer, BEFORE) == "Success"
    assert billed(metering, buyer, CANCELLED_AT + timedelta(minutes=1), "storage") == "CustomerNotSubscribed"
    emulator.shift_clock(31 * 60)
    assert billed(metering, buyer, EARLIER, "seats") == "CustomerNotSubscribed"


def test_unsubscribe_success_after_pending_closes_the_final_hour(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    cancel(emulator, buyer, "unsubscribe-pending")
    assert billed(metering, buyer, BEFORE) == "Success"
    emulator.shift_clock(10 * 60)
    assert cancel(emulator, buyer, "unsubscribe-success")["notifications"] == []  # EventBridge: nothing more
    assert billed(metering, buyer, EARLIER, "storage") == "CustomerNotSubscribed"


def test_a_license_that_was_never_active_is_never_billed(emulator: Emulator, metering: Any) -> None:
    emulator.set_clock(CANCELLED_AT)
    emulator.product()
    buyer = emulator.subscribe(status="pending")
    assert billed(metering, buyer, BEFORE) == "CustomerNotSubscribed"
    assert cancel(emulator, buyer, "subscribe-fail")["status"] == "failed"
    assert billed(metering, buyer, BEFORE) == "CustomerNotSubscribed"
    assert emulator.billed() == []


def test_a_renewal_keeps_the_license_billed_under_its_new_agreement(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    assert billed(metering, buyer, BEFORE) == "Success"
    renewed = cancel(emulator, buyer, "renew")
    assert (renewed["status"], renewed["licenseArn"]) == ("active", buyer["licenseArn"])
    assert renewed["agreementId"] != buyer["agreementId"]
    emulator.shift_clock(3 * 3600)  # long after: a renewal opens no final hour
    assert billed(metering, buyer, CANCELLED_AT + timedelta(hours=2)) == "Success"
    (listed,) = emulator.subscriptions()
    assert (listed["agreementId"], listed["initialAgreementId"]) == (
        renewed["agreementId"],
        buyer["agreementId"],
    )
    assert listed["finalUsageUntil"] is None
    # A buyer arriving now resolves to the license and its current agreement.
    again = emulator.subscribe(customerAWSAccountId=buyer["customerAWSAccountId"])
    resolved = metering.resolve_customer(RegistrationToken=again["token"])
    assert resolved["LicenseArn"] == buyer["licenseArn"]
    assert resolved["Metadata"] == {"AgreementId": renewed["agreementId"]}


def test_subscribing_again_in_the_final_hour_bills_again(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    cancel(emulator, buyer, "unsubscribe-pending")
    emulator.shift_clock(20 * 60)
    again = emulator.subscribe(customerAWSAccountId=buyer["customerAWSAccountId"])
    assert (again["status"], again["licenseArn"]) == ("active", buyer["licenseArn"])
    # A new purchase: a new agreement, announced as one.
    assert again["agreementId"] != buyer["agreementId"]
    created = emulator.events()[-1]["notifications"][0]["event"]
    assert created["detail-type"] == "Purchase Agreement Created - Proposer"
    assert created["detail"]["agreement"]["id"] == again["agreementId"]
    assert billed(metering, buyer, CANCELLED_AT + timedelta(minutes=10)) == "Success"
    emulator.shift_clock(3 * 3600)
    assert billed(metering, buyer, CANCELLED_AT + timedelta(hours=2), "storage") == "Success"
