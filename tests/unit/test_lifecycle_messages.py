"""Parsing the lifecycle queue's messages: EventBridge events and SNS notifications as AWS documents them.

Samples follow the AWS Marketplace seller guide ("Managing SaaS subscription events with Amazon EventBridge"
and "Amazon SNS notifications for SaaS products"); identifiers are made up.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from marketplace_saas.lifecycle import UnreadableMessage, parse
from marketplace_saas.models import BuyerIdentity, license_id, status_of

ACCOUNT = "123456789012"
LICENSE = "arn:aws:license-manager::123456789012:license:l-1234567890abcdef1234567890abcdef"


def eventbridge(detail_type: str, detail: dict[str, Any], time: str = "2026-11-23T10:15:30Z") -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "01234567-0123-0123-0123-0123456789ab",
            "detail-type": detail_type,
            "source": "aws.agreement-marketplace",
            "account": "111111111111",
            "time": time,
            "region": "us-east-1",
            "resources": ["arn:aws:aws-marketplace:us-east-1:111111111111:AWSMarketplace/Agreement/agmt-1"],
            "detail": detail,
        }
    )


def license_detail(arn: str = LICENSE) -> dict[str, Any]:
    return {
        "requestId": "a1b2c3",
        "agreement": {"id": "agmt-1111111111111111111111111"},
        "license": {"arn": arn, "status": "Active"},
        "product": {"id": "prod-abc123", "code": "PROD_CODE"},
        "acceptor": {"accountId": ACCOUNT},
        "proposer": {"accountId": "111111111111"},
    }


def agreement_detail() -> dict[str, Any]:
    return {
        "requestId": "a1b2c3",
        "agreement": {"id": "agmt-1111111111111111111111111", "status": "ACTIVE", "intent": "NEW"},
        "acceptor": {"accountId": ACCOUNT},
        "proposer": {"accountId": "111111111111"},
    }


def sns_envelope(message: dict[str, Any], timestamp: str = "2026-11-23T10:15:30.123Z") -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-PROD_CODE",
            "Message": json.dumps(message),
            "Timestamp": timestamp,
            "SignatureVersion": "1",
        }
    )


SUBSCRIBE_SUCCESS = {
    "action": "subscribe-success",
    "customer-identifier": "X01EXAMPLEX",
    "product-code": "PROD_CODE",
    "offer-identifier": "offer-abcexample123",
    "isFreeTrialTermPresent": "true",
}
MS_AT_10_15_30 = int(datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("detail_type", "fact"),
    [
        ("License Updated - Manufacturer", "provisionedAt"),
        ("License Deprovisioned - Manufacturer", "cancelRequestedAt"),  # opens the final hour
    ],
)
def test_license_events_name_the_buyer_license_and_product(detail_type: str, fact: str) -> None:
    notice = parse(eventbridge(detail_type, license_detail()))
    assert notice is not None
    assert notice.fact == fact
    assert (notice.account, notice.license_arn, notice.product_code) == (ACCOUNT, LICENSE, "PROD_CODE")
    assert notice.agreement_id == "agmt-1111111111111111111111111"
    assert notice.at_ms == MS_AT_10_15_30  # the event's own time, not its arrival
    assert notice.channel == "eventbridge"
    assert notice.refresh_entitlements == (detail_type.startswith("License Updated"))


@pytest.mark.parametrize(
    ("detail_type", "fact"),
    [
        ("Purchase Agreement Created - Manufacturer", "activatedAt"),
        ("Purchase Agreement Created - Proposer", "activatedAt"),
        ("Purchase Agreement Amended - Manufacturer", None),  # terms changed: entitlements, not status
        ("Purchase Agreement Ended - Proposer", "agreementEndedAt"),  # recorded; ends nothing by itself
    ],
)
def test_agreement_events_name_the_agreement_and_buyer_only(detail_type: str, fact: str | None) -> None:
    notice = parse(eventbridge(detail_type, agreement_detail()))
    assert notice is not None
    assert notice.fact == fact
    assert notice.account == ACCOUNT and notice.agreement_id == "agmt-1111111111111111111111111"
    assert notice.product_code is None and notice.license_arn is None


def test_an_agreement_about_to_end_changes_nothing_yet() -> None:
    assert parse(eventbridge("Purchase Agreement Ending - Manufacturer", agreement_detail())) is None


def test_a_license_arn_written_without_its_prefix_finds_the_same_subscriber() -> None:
    """The documented examples print license ARNs as `aws:license-manager:us-east-1:<account>:l-…`."""
    documented = "aws:license-manager:us-east-1:123456789012:l-1234567890abcdef1234567890abcdef"
    notice = parse(eventbridge("License Updated - Manufacturer", license_detail(documented)))
    assert notice is not None and notice.license_arn is not None
    resolved = BuyerIdentity(ACCOUNT, "PROD_CODE", LICENSE, None)
    from_event = BuyerIdentity(ACCOUNT, "PROD_CODE", notice.license_arn, None)
    assert from_event.subscription_key(legacy=False) == resolved.subscription_key(legacy=False)
    assert license_id(documented) == "l-1234567890abcdef1234567890abcdef"


def test_an_sns_notification_in_its_envelope_carries_the_envelope_time_and_free_trial_flag() -> None:
    notice = parse(sns_envelope(SUBSCRIBE_SUCCESS, "2026-11-23T10:15:30Z"))
    assert notice is not None
    assert (notice.fact, notice.channel, notice.customer_identifier) == ("activatedAt", "sns", "X01EXAMPLEX")
    assert notice.product_code == "PROD_CODE" and notice.account is None
    assert notice.free_trial is True
    assert notice.at_ms == MS_AT_10_15_30


@pytest.mark.parametrize(
    ("action", "fact", "refresh"),
    [
        ("subscribe-success", "activatedAt", False),
        ("subscribe-fail", "failedAt", False),
        ("unsubscribe-pending", "cancelRequestedAt", False),
        ("unsubscribe-success", "cancelledAt", False),
        ("entitlement-updated", None, True),
    ],
)
def test_raw_sns_messages_use_the_queue_sent_time(action: str, fact: str | None, refresh: bool) -> None:
    message = {**SUBSCRIBE_SUCCESS, "action": action}
    notice = parse(json.dumps(message), sent_at_ms=1_800_000_000_000)
    assert notice is not None
    assert (notice.fact, notice.refresh_entitlements, notice.at_ms) == (fact, refresh, 1_800_000_000_000)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"hello": "world"}', "neither an EventBridge event nor an SNS notification"),
        (
            json.dumps({"detail-type": "License Updated - Manufacturer", "source": "aws.s3", "detail": {}}),
            "source",
        ),
        (eventbridge("License Updated - Manufacturer", {"acceptor": {"accountId": ACCOUNT}}), "license.arn"),
        (eventbridge("License Updated - Manufacturer", {**license_detail(), "acceptor": {}}), "accountId"),
        (eventbridge("License Updated - Manufacturer", license_detail(), time="yesterday"), "time"),
        (json.dumps({"Type": "Notification", "Message": "{not json"}), "Message"),
        (sns_envelope({**SUBSCRIBE_SUCCESS, "action": "subscribe-maybe"}), "action"),
        (sns_envelope({"action": "subscribe-success", "product-code": "PROD_CODE"}), "customer-identifier"),
    ],
)
def test_an_unreadable_message_says_what_is_wrong(body: str, says: str) -> None:
    with pytest.raises(UnreadableMessage, match=says):
        parse(body, sent_at_ms=1)


def test_a_raw_sns_message_without_a_sent_time_is_unreadable() -> None:
    with pytest.raises(UnreadableMessage, match="SentTimestamp"):
        parse(json.dumps(SUBSCRIBE_SUCCESS))


# --- the status is a function of the facts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({}, "pending"),
        ({"provisionedAt": 1}, "active"),
        ({"activatedAt": 1, "agreementEndedAt": 2}, "active"),  # Ended alone ends nothing
        ({"provisionedAt": 1, "agreementEndedAt": 2, "cancelRequestedAt": 3}, "cancel-pending"),
        ({"provisionedAt": 1, "cancelRequestedAt": 2, "agreementEndedAt": 3}, "cancel-pending"),
        # An entitlement change after the license was deprovisioned or cancelled does not reactivate it.
        ({"provisionedAt": 5, "cancelRequestedAt": 2}, "cancel-pending"),
        ({"activatedAt": 1, "provisionedAt": 9, "cancelRequestedAt": 2, "cancelledAt": 3}, "cancelled"),
        # A resubscription: unsubscribe-success and subscribe-success stamped at the same instant.
        ({"activatedAt": 7, "cancelRequestedAt": 3, "cancelledAt": 7}, "active"),
        # ... but a cancellation requested at the instant of activation is a cancellation.
        ({"activatedAt": 7, "cancelRequestedAt": 7}, "cancel-pending"),
        ({"activatedAt": 7, "cancelRequestedAt": 7, "cancelledAt": 7}, "cancelled"),
        # Ending before ever being active is a failure (a failed payment).
        ({"cancelRequestedAt": 2}, "failed"),
        ({"failedAt": 2}, "failed"),
        ({"activatedAt": 9, "cancelledAt": 3}, "active"),  # SNS: subscribed again later
    ],
)
def test_the_status_of_a_set_of_facts(facts: dict[str, int], status: str) -> None:
    assert status_of(facts) == status
