"""Renders and delivers subscription lifecycle notifications where AWS would: EventBridge, and SNS for legacy
products. Which notifications a change sends, in which order, is state.py's (`Marketplace.lifecycle_event`).

The shapes are the documented examples, field by field (copied into tests/fixtures/marketplace_events/,
whose README names each page), and the emulator's tests compare every event it sends with them:

- EventBridge: default bus, us-east-1, `source: aws.agreement-marketplace`; the examples of "Amazon
  EventBridge events" (https://docs.aws.amazon.com/marketplace/latest/userguide/notifications-eventbridge.html,
  "Events for agreements", "Events for licenses"), which "Managing SaaS subscription events with Amazon
  EventBridge" (saas-eventbridge-integration.html) refers to for the schemas.
- SNS: `aws-mp-subscription-notification-<productCode>` and, for contract pricing only,
  `aws-mp-entitlement-notification-<productCode>`
  (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-notification.html).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.marketplace_emulator.state import (
    CHANNEL_PARTNER_ACCOUNT,
    SELLER_ACCOUNT,
    Agreement,
    Notice,
    Product,
)

SOURCE = "aws.agreement-marketplace"
REGION = "us-east-1"
CATALOG = "AWSMarketplace"
# AWS Marketplace's own account, which owns every product's SNS topics (as the stacks subscribe to them).
MARKETPLACE_SNS_ACCOUNT = "287250355862"
# The seller's name on the events that carry one (the renewal example's `proposer.name`).
SELLER_NAME = "Emulated Seller"
CLIENT_CONFIG = Config(region_name=REGION, retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2)


def iso_ms(epoch_ms: int) -> str:
    """`2026-11-15T10:00:00.123Z`: the documented form (ISO 8601, UTC, `Z`), to the millisecond."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def agreement_arn(agreement_id: str) -> str:
    """The events' `resources` entry, as every example writes it."""
    return f"arn:aws:aws-marketplace::aws:agreement:{agreement_id}"


def render(notice: Notice, product: Product) -> dict[str, Any]:
    """The notification as it goes out: `{channel: eventbridge, event}` or `{channel: sns, topicArn,
    message}`."""
    if notice.channel == "eventbridge":
        return {"channel": "eventbridge", "event": eventbridge_event(notice, product)}
    topic_arn, message = sns_message(notice, product)
    return {"channel": "sns", "topicArn": topic_arn, "message": message}


def eventbridge_event(notice: Notice, product: Product) -> dict[str, Any]:
    """The event as EventBridge delivers it to a rule's target (the seller's account receives it)."""
    subscription, agreement = notice.subscription, notice.agreement
    proposer = CHANNEL_PARTNER_ACCOUNT if product.resold else SELLER_ACCOUNT
    # "Resale Authorization Id in case of Channel Partner Private Offer (CPPO) will be populated, and in case
    # of Marketplace direct offer (MPPO), this value would be null."
    resale = {"id": f"resaleauthz-{product.product_id.removeprefix('prod-')}" if product.resold else None}
    acceptor = {"accountId": subscription.customer_aws_account_id}
    offer = {"id": subscription.offer_id}
    detail: dict[str, Any] = {"requestId": str(uuid.uuid4()), "catalog": CATALOG}
    if notice.name.startswith("License "):
        # License Updated / License Deprovisioned - Manufacturer: the only events that name the product and
        # the license. The example prints the license ARN as `aws:license-manager:us-east-1:<account>:l-…`;
        # the emulator names the license as ResolveCustomer returned it (its id `l-…` is the same either way).
        detail |= {
            "agreement": {"id": agreement.agreement_id},
            "product": {"code": product.product_code, "id": product.product_id},
            "license": {"arn": subscription.license_arn},
            "acceptor": acceptor,
            "proposer": {"accountId": proposer},
            "offer": offer,
        }
    elif notice.name.startswith("Purchase Agreement Ended"):
        detail |= {
            "agreement": {"id": agreement.agreement_id, "status": agreement.status},
            "resaleAuthorization": resale,
            "acceptor": acceptor,
            "proposer": {"accountId": proposer},
            "offer": offer,
        }
    elif agreement.intent == "RENEW" and not product.resold:
        # The example "when a renewal creates a new agreement (intent=RENEW)" (Proposer): it names the
        # previous agreement and the product, the proposer by name too, and has no resaleAuthorization. (For
        # a resold product no renewal example is documented: the Manufacturer event keeps the shape of its
        # Created example, with intent RENEW.)
        detail |= {
            "agreement": _agreement_terms(agreement)
            | {"previousAgreementId": agreement.previous_agreement_id},
            "product": {"id": product.product_id, "title": product.product_code},
            "acceptor": acceptor,
            "proposer": {"name": SELLER_NAME, "accountId": proposer},
            "offer": offer,
        }
    else:  # Purchase Agreement Created
        detail |= {
            "agreement": _agreement_terms(agreement),
            "resaleAuthorization": resale,
            "acceptor": acceptor,
            "proposer": {"accountId": proposer},
            "offer": offer,
        }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": notice.name,
        "source": SOURCE,
        # Manufacturer events go to the manufacturer (the seller); Proposer events to the proposer, which for
        # a product that is not resold is the seller too.
        "account": SELLER_ACCOUNT,
        "time": iso_ms(notice.at_ms),
        "region": REGION,
        "resources": [agreement_arn(agreement.agreement_id)],
        "detail": detail,
    }


def _agreement_terms(agreement: Agreement) -> dict[str, Any]:
    return {
        "id": agreement.agreement_id,
        "intent": agreement.intent,
        "status": agreement.status,
        "acceptanceTime": iso_ms(agreement.accepted_at_ms),
        "startTime": iso_ms(agreement.accepted_at_ms),
        "endTime": iso_ms(agreement.ends_at_ms),
    }


def sns_message(notice: Notice, product: Product) -> tuple[str, dict[str, str]]:
    """The topic and the message (the SNS notification's `Message`) of a legacy product's notification.

    Only documented members: `offer-identifier` "only when the action is `subscribe-success` or
    `subscribe-fail`"; the entitlement topic's messages carry `action`, `customer-identifier` and
    `product-code` only.
    """
    action, subscription = notice.name, notice.subscription
    topic = "entitlement" if action == "entitlement-updated" else "subscription"
    topic_arn = (
        f"arn:aws:sns:{REGION}:{MARKETPLACE_SNS_ACCOUNT}:aws-mp-{topic}-notification-{product.product_code}"
    )
    message = {
        "action": action,
        "customer-identifier": subscription.customer_identifier,
        "product-code": product.product_code,
    }
    if topic == "subscription":
        if action in ("subscribe-success", "subscribe-fail"):
            message["offer-identifier"] = subscription.offer_id
        # "The JSON value of this property is not a boolean datatype. Instead, the value is ... a string".
        message["isFreeTrialTermPresent"] = "true" if subscription.offer_type == "free-trial" else "false"
    return topic_arn, message


class Notifier:
    """Delivers rendered notifications; a failed delivery is reported, never raised."""

    def __init__(self, eventbridge_endpoint: str | None = None, sns_endpoint: str | None = None) -> None:
        self.eventbridge_endpoint = eventbridge_endpoint
        self.sns_endpoint = sns_endpoint

    def deliver(self, notification: dict[str, Any]) -> list[dict[str, Any]]:
        if notification["channel"] == "eventbridge":
            return [self._put_event(notification["event"])] if self.eventbridge_endpoint else []
        if self.sns_endpoint:
            return [self._publish(notification["topicArn"], notification["message"])]
        return []

    def _put_event(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            client = boto3.client("events", endpoint_url=self.eventbridge_endpoint, config=CLIENT_CONFIG)
            # EventBridge itself adds version, id, account and region; the rest is the emulator's.
            entry = {
                "EventBusName": "default",
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
                "Resources": event["resources"],
                "Time": datetime.fromisoformat(event["time"].replace("Z", "+00:00")),
            }
            result = client.put_events(Entries=[entry])  # type: ignore[list-item]
            failed = result.get("FailedEntryCount", 0)
            return {"target": "eventbridge", "ok": failed == 0, "detailType": event["detail-type"]}
        except (BotoCoreError, ClientError) as error:
            return {
                "target": "eventbridge",
                "ok": False,
                "detailType": event["detail-type"],
                "error": str(error),
            }

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
            return {"target": "sns", "ok": True, "topicArn": topic_arn, "action": message["action"]}
        except (BotoCoreError, ClientError) as error:
            return {"target": "sns", "ok": False, "topicArn": topic_arn, "error": str(error)}
