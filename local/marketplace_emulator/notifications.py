"""Delivers subscription lifecycle notifications where AWS would: EventBridge, and SNS for legacy products.

- EventBridge: default bus, `source: aws.agreement-marketplace`
  (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-eventbridge-integration.html).
- SNS: `aws-mp-subscription-notification-<productCode>` and `aws-mp-entitlement-notification-<productCode>`
  (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-notification.html).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.marketplace_emulator.state import SELLER_ACCOUNT, Product, Subscription

SOURCE = "aws.agreement-marketplace"
REGION = "us-east-1"
# What AWS Marketplace sends on EventBridge for each lifecycle change (the SNS action names the change).
DETAIL_TYPES = {
    "subscribe-success": ["Purchase Agreement Created - Manufacturer", "License Updated - Manufacturer"],
    # A failed payment: the license ends before it was ever active.
    "subscribe-fail": ["License Deprovisioned - Manufacturer", "Purchase Agreement Ended - Manufacturer"],
    "unsubscribe-pending": ["License Deprovisioned - Manufacturer"],
    "unsubscribe-success": ["Purchase Agreement Ended - Manufacturer"],
    "entitlement-updated": ["License Updated - Manufacturer"],
}
Callback = Callable[[dict[str, Any]], None]
CLIENT_CONFIG = Config(region_name=REGION, retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2)


def agreement_id(subscription: Subscription) -> str:
    """Each license is bought by its own agreement (concurrent agreements: one per purchase)."""
    return subscription.agreement_id


def eventbridge_events(
    kind: str, subscription: Subscription, product: Product, now: float
) -> list[dict[str, Any]]:
    """PutEvents entries shaped as the AWS Marketplace documentation shows them.

    License events name the product, the license and the buyer; agreement events name the agreement and
    the buyer only (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-eventbridge-integration.html).
    """
    moment = datetime.fromtimestamp(now, UTC)
    agreement = agreement_id(subscription)
    entries = []
    for detail_type in DETAIL_TYPES[kind]:
        detail: dict[str, Any] = {
            "requestId": str(uuid.uuid4()),
            "agreement": {"id": agreement},
            "acceptor": {"accountId": subscription.customer_aws_account_id},
            "proposer": {"accountId": SELLER_ACCOUNT},
        }
        if detail_type.startswith("License"):
            detail["product"] = {
                "id": f"prod-{product.product_code.lower()[:12]}",
                "code": product.product_code,
            }
            detail["license"] = {
                "arn": subscription.license_arn,
                "status": "Deprovisioned" if "Deprovisioned" in detail_type else "Active",
            }
        else:
            detail["agreement"]["status"] = "ACTIVE" if "Created" in detail_type else "TERMINATED"
            detail["agreement"]["intent"] = "NEW" if "Created" in detail_type else "CANCEL"
        entries.append(
            {
                "Source": SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "Resources": [
                    f"arn:aws:aws-marketplace:{REGION}:{SELLER_ACCOUNT}:AWSMarketplace/Agreement/{agreement}"
                ],
                "Time": moment,
            }
        )
    return entries


def sns_message(kind: str, subscription: Subscription, product: Product) -> tuple[str, dict[str, str]]:
    topic = "entitlement" if kind == "entitlement-updated" else "subscription"
    topic_arn = f"arn:aws:sns:us-east-1:{SELLER_ACCOUNT}:aws-mp-{topic}-notification-{product.product_code}"
    message = {
        "action": kind,
        "customer-identifier": subscription.customer_identifier,
        "product-code": product.product_code,
        "offer-identifier": f"offer-{product.product_code.lower()}",
        "isFreeTrialTermPresent": "true" if subscription.offer_type == "free-trial" else "false",
    }
    return topic_arn, message


class Notifier:
    def __init__(self, eventbridge_endpoint: str | None = None, sns_endpoint: str | None = None) -> None:
        self.eventbridge_endpoint = eventbridge_endpoint
        self.sns_endpoint = sns_endpoint
        self.callbacks: list[Callback] = []

    def deliver(
        self, kind: str, subscription: Subscription, product: Product, now: float
    ) -> list[dict[str, Any]]:
        """Send the notification to every target; a failed delivery is reported, never raised."""
        deliveries: list[dict[str, Any]] = []
        events = eventbridge_events(kind, subscription, product, now)
        for callback in self.callbacks:
            callback(
                {
                    "eventbridge": events,
                    "sns": sns_message(kind, subscription, product) if product.legacy else None,
                }
            )
            deliveries.append({"target": "callback", "ok": True})
        if self.eventbridge_endpoint:
            deliveries += [self._put_event(event) for event in events]
        if product.legacy and self.sns_endpoint:
            topic_arn, message = sns_message(kind, subscription, product)
            deliveries.append(self._publish(topic_arn, message))
        return deliveries

    def _put_event(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            client = boto3.client("events", endpoint_url=self.eventbridge_endpoint, config=CLIENT_CONFIG)
            entry = {**event, "EventBusName": "default"}
            result = client.put_events(Entries=[entry])  # type: ignore[list-item]
            failed = result.get("FailedEntryCount", 0)
            return {"target": "eventbridge", "ok": failed == 0, "detailType": event["DetailType"]}
        except (BotoCoreError, ClientError) as error:
            return {"target": "eventbridge", "ok": False, "error": str(error)}

    def _publish(self, topic_arn: str, message: dict[str, str]) -> dict[str, Any]:
        try:
            client = boto3.client("sns", endpoint_url=self.sns_endpoint, config=CLIENT_CONFIG)
            # The local topic has the same name in whatever account the local SNS uses.
            name = topic_arn.rsplit(":", 1)[1]
            topics = [
                topic["TopicArn"]
                for page in client.get_paginator("list_topics").paginate()
                for topic in page["Topics"]
                if topic["TopicArn"].rsplit(":", 1)[1] == name
            ]
            if not topics:
                return {"target": "sns", "ok": False, "topicArn": topic_arn, "error": "no such topic"}
            client.publish(TopicArn=topics[0], Message=json.dumps(message))
            return {"target": "sns", "ok": True, "topicArn": topic_arn}
        except (BotoCoreError, ClientError) as error:
            return {"target": "sns", "ok": False, "topicArn": topic_arn, "error": str(error)}
