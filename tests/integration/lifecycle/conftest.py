"""The lifecycle function against moto (DynamoDB, SQS, EventBridge) and the Marketplace emulator.

The seller's bus is created as the stack creates it, with a rule that copies every event to a queue, so the
tests read exactly what the seller's product would receive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from local.stack_template import ListingTemplate
from marketplace_saas import wiring
from marketplace_saas.lifecycle import Lifecycle
from marketplace_saas.marketplace import MarketplaceClient
from marketplace_saas.models import BuyerIdentity, Subscriber, license_id
from marketplace_saas.seller_events import SellerEvents
from marketplace_saas.store import Subscribers
from tests.integration.conftest import PRODUCT
from tests.integration.metering.conftest import Harness, _harness


def account_of(customer: str) -> str:
    """A customer is an account id, or `<account>#<n>` for another license of the same account."""
    return customer.split("#", 1)[0]


def iso(moment_ms: int) -> str:
    return datetime.fromtimestamp(moment_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class World:
    """One listing: its tables, its seller bus (read through a queue), the emulator and a clock."""

    harness: Harness
    seller_queue_url: str
    licenses: dict[str, str] = field(default_factory=dict)
    customer_identifiers: dict[str, str] = field(default_factory=dict)
    agreements: dict[str, str] = field(default_factory=dict)
    message_ids: int = 0

    @property
    def now_ms(self) -> int:
        return int(self.harness.now[0] * 1000)

    def lifecycle(self) -> Lifecycle:
        settings = self.harness.settings
        job = self.harness.job()
        return Lifecycle(
            settings,
            self.harness.subscribers_table,
            self.harness.held_events_table,
            MarketplaceClient.from_environment(),
            SellerEvents(boto3.client("events"), settings.seller_bus, settings.seller_event_source),
            flush=lambda customer: job.flush({customer}) and None,
            clock=lambda: self.harness.now[0],
        )

    def held(self) -> list[dict[str, Any]]:
        """What waits in the held-events table."""
        items: list[dict[str, Any]] = self.harness.held_events_table.scan()["Items"]
        return items

    def others_than(self, *accounts: str) -> list[dict[str, Any]]:
        """Items of the subscribers table that belong to none of these accounts."""
        items = self.harness.subscribers_table.scan()["Items"]
        return [i for i in items if i["customerAWSAccountId"] not in accounts]

    def subscribe(self, account: str) -> str:
        """The buyer subscribes in AWS Marketplace (their license exists; no event delivered yet).

        `<account>#<n>` buys another license for an account that has one (concurrent agreements)."""
        extra = {"newAgreement": True} if "#" in account else {}
        minted = self.harness.emulator.subscribe(
            PRODUCT, customerAWSAccountId=account_of(account), status="pending", **extra
        )
        self.licenses[account] = minted["licenseArn"]
        if minted.get("customerIdentifier"):
            self.customer_identifiers[account] = minted["customerIdentifier"]
        self.agreements[account] = (
            minted.get("agreementId") or f"agmt-{license_id(minted['licenseArn'])[2:26]}"
        )
        return str(minted["licenseArn"])

    def marketplace_says(self, account: str, kind: str) -> None:
        """The emulator's own view of the subscription changes (what it bills by), as `kind` says."""
        status, body = self.harness.emulator.admin(
            "POST",
            "/_emulator/events",
            {
                "productCode": PRODUCT,
                "customerAWSAccountId": account_of(account),
                "licenseArn": self.licenses[account],
                "type": kind,
                "endedToDeprovisionedSeconds": 0,
            },
        )
        assert status == 200, body

    def register(
        self,
        account: str,
        company: str = "Acme",
        *,
        agreement: bool = True,
        table: Any = None,
        held: Any = None,
    ) -> Subscriber | None:
        """The buyer fills in the landing page form (what the registration function stores): with the
        agreement id ResolveCustomer gave at fulfillment, unless `agreement` is False (older answers)."""
        legacy = self.harness.settings.legacy_identity
        identity = BuyerIdentity(
            account_of(account),
            PRODUCT,
            self.licenses[account],
            self.customer_identifiers.get(account),
            self.agreements[account] if agreement else None,
        )
        subscriber = Subscriber(
            identity=identity,
            company_name=company,
            contact_person="Jane Doe",
            contact_email="jane@example.com",
            contact_phone="+1 555 010 2030",
            registration_date=datetime.now(UTC).isoformat(),
            status="pending",
            offer_type=None,
        )
        return Subscribers(
            table or self.harness.subscribers_table,
            legacy=legacy,
            held_events=held or self.harness.held_events_table,
        ).register(subscriber)

    def license_event(self, account: str, detail_type: str, at_ms: int) -> str:
        """A `License Updated` / `License Deprovisioned` event as AWS Marketplace sends it."""
        return self._event(
            f"License {detail_type} - Manufacturer",
            account,
            at_ms,
            license={"arn": self.licenses[account], "status": "Active"},
            product={"id": "prod-onboard", "code": PRODUCT},
        )

    def agreement_event(self, account: str, change: str, at_ms: int) -> str:
        return self._event(f"Purchase Agreement {change} - Manufacturer", account, at_ms)

    def _event(self, detail_type: str, account: str, at_ms: int, **extra: Any) -> str:
        detail = {
            "requestId": "r-1",
            "agreement": {"id": self.agreements[account]},
            "acceptor": {"accountId": account_of(account)},
            "proposer": {"accountId": "111111111111"},
            **extra,
        }
        return json.dumps(
            {
                "version": "0",
                "id": f"event-{at_ms}",
                "detail-type": detail_type,
                "source": "aws.agreement-marketplace",
                "account": "111111111111",
                "time": iso(at_ms),
                "region": "us-east-1",
                "resources": [],
                "detail": detail,
            }
        )

    def sqs_event(self, *bodies: str) -> dict[str, Any]:
        """The event Lambda's SQS event source hands the function for these message bodies."""
        records = []
        for body in bodies:
            self.message_ids += 1
            records.append(
                {
                    "messageId": f"m-{self.message_ids}",
                    "receiptHandle": f"h-{self.message_ids}",
                    "body": body,
                    "attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": str(self.now_ms),
                        "SenderId": "AIDAEXAMPLE",
                        "ApproximateFirstReceiveTimestamp": str(self.now_ms),
                    },
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lifecycle",
                    "awsRegion": "us-east-1",
                }
            )
        return {"Records": records}

    def sns_notification(self, account: str, action: str, at_ms: int) -> str:
        """A legacy SNS notification in its SNS envelope, as the queue receives it."""
        message = {
            "action": action,
            "customer-identifier": self.customer_identifiers[account],
            "product-code": PRODUCT,
            "offer-identifier": "offer-1",
            "isFreeTrialTermPresent": "false",
        }
        return json.dumps(
            {
                "Type": "Notification",
                "MessageId": f"n-{at_ms}",
                "Message": json.dumps(message),
                "Timestamp": iso(at_ms),
            }
        )

    def subscriber(self, account: str) -> dict[str, Any]:
        sort_key = PRODUCT if self.harness.settings.legacy_identity else license_id(self.licenses[account])
        key = {"customerAWSAccountId": account_of(account), "subscriptionKey": sort_key}
        item: dict[str, Any] = self.harness.subscribers_table.get_item(Key=key, ConsistentRead=True)["Item"]
        return item

    def seller_events(self) -> list[dict[str, Any]]:
        """Everything published on the seller's bus since the last call."""
        sqs = boto3.client("sqs")
        received = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.seller_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return received
            for message in messages:
                received.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.seller_queue_url, ReceiptHandle=message["ReceiptHandle"])


def _world(harness: Harness) -> World:
    settings = harness.settings
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=settings.seller_bus)
    queue_url = sqs.create_queue(QueueName="seller-product")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="seller-product",
        EventBusName=settings.seller_bus,
        EventPattern=json.dumps({"source": [settings.seller_event_source]}),
    )
    events.put_targets(
        Rule="seller-product", EventBusName=settings.seller_bus, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    return World(harness, queue_url)


@pytest.fixture
def world(templates: dict[str, ListingTemplate], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for harness in _harness(templates["onboard"], monkeypatch):
        yield _world(harness)
        wiring.use(None)


@pytest.fixture
def legacy_world(templates: dict[str, ListingTemplate], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for harness in _harness(templates["onboard"], monkeypatch, legacy=True):
        yield _world(harness)
        wiring.use(None)
