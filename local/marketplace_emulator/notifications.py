"""Delivers subscription lifecycle notifications where AWS would: EventBridge, and SNS for legacy products.

- EventBridge: default bus, `source: aws.agreement-marketplace`
  (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-eventbridge-integration.html).
- SNS: `aws-mp-subscription-notification-<productCode>` and `aws-mp-entitlement-notification-<productCode>`
  (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-notification.html).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.marketplace_emulator.state import SELLER_ACCOUNT, Product, Subscription

SOURCE = "aws.agreement-marketplace"
DETAIL_TYPES = {
    "subscribe-success": "Purchase Agreement Created - Manufacturer",
    "subscribe-fail": "Purchase Agreement Ended - Manufacturer",
    "unsubscribe-pending": "License Deprovisioned - Manufacturer",
    "unsubscribe-success": "Purchase Agreement Ended - Manufacturer",
    "entitlement-updated": "License Updated - Manufacturer",
}
Callback = Callable[[dict[str, Any]], None]
CLIENT_CONFIG = Config(
    region_name="us-east-1", retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2
)


def eventbridge_event(kind: str, subscription: Subscription, product: Product, now: float) -> dict[str, Any]:
    moment = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    detail = {
        "requestId": f"emulator-{int(now * 1000)}",
        "agreement": {
            "id": f"agmt-{subscription.license_arn.rsplit('l-', 1)[-1][:24]}",
            "status": "ACTIVE" if kind in ("subscribe-success", "entitlement-updated") else "TERMINATED",
            "acceptor": {"accountId": subscription.customer_aws_account_id},
            "proposer": {"accountId": SELLER_ACCOUNT},
            "intent": "NEW" if kind == "subscribe-success" else "AMEND",
        },
        "product": {"code": product.product_code},
        "license": {"arn": subscription.license_arn},
        "customerAWSAccountId": subscription.customer_aws_account_id,
        "isFreeTrialTermPresent": subscription.offer_type == "free-trial",
        "action": kind,
        "eventTime": moment,
    }
    return {"Source": SOURCE, "DetailType": DETAIL_TYPES[kind], "Detail": json.dumps(detail)}


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
        event = eventbridge_event(kind, subscription, product, now)
        for callback in self.callbacks:
            callback(
                {
                    "eventbridge": event,
                    "sns": sns_message(kind, subscription, product) if product.legacy else None,
                }
            )
            deliveries.append({"target": "callback", "ok": True})
        if self.eventbridge_endpoint:
            deliveries.append(self._put_event(event))
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
            client.publish(TopicArn=topic_arn, Message=json.dumps(message))
            return {"target": "sns", "ok": True, "topicArn": topic_arn}
        except (BotoCoreError, ClientError) as error:
            return {"target": "sns", "ok": False, "topicArn": topic_arn, "error": str(error)}
