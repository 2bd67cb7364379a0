"""Subscription lifecycle intake: AWS Marketplace's events → one queue → the lifecycle function → the
listing's own event bus, where the seller's product (and, optionally, an e-mail) learns of each change."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import (
    Duration,
    aws_events as events,
    aws_events_targets as targets,
    aws_lambda,
    aws_lambda_event_sources as event_sources,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
    aws_sqs as sqs,
)
from constructs import Construct

from stacks.config import Listing
from stacks.constructs.dead_letters import dead_letter_queue
from stacks.constructs.listing_function import ListingFunction
from stacks.constructs.metering_schedule import allow_metering
from stacks.constructs.tables import (
    FORMER_HELD_EVENTS_ONLY,
    SUBSCRIBER_BY_CUSTOMER_IDENTIFIER_INDEX,
    ListingTables,
)
from stacks.nag import acknowledge
from stacks.naming import ListingNames

# https://docs.aws.amazon.com/marketplace/latest/userguide/saas-eventbridge-integration.html
AGREEMENT_SOURCE = "aws.agreement-marketplace"
LICENSE_EVENTS = ["License Updated - Manufacturer", "License Deprovisioned - Manufacturer"]
# Agreement events name no product: every listing receives them, and each acts only on agreements its
# license events already tied to one of its subscribers.
AGREEMENT_EVENTS = [
    f"Purchase Agreement {change} - {role}"
    for change in ("Created", "Amended", "Ended")
    for role in ("Manufacturer", "Proposer")
]
MARKETPLACE_REGION = "us-east-1"
# AWS Marketplace's own account, which owns every listing's legacy SNS topics
# (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-notification.html).
MARKETPLACE_SNS_ACCOUNT = "287250355862"
FUNCTION_TIMEOUT_SECONDS = 60
MAX_RECEIVES = 5  # then the message waits in the dead-letter queue, where an alarm sees it
SELLER_EVENT_TYPES = [
    "subscriber.activated",
    "subscriber.cancel-pending",
    "subscriber.deactivated",
    "subscriber.failed",
    "entitlements.updated",
]


def marketplace_event_patterns(product_code: str) -> list[events.EventPattern]:
    """What the listing's rules match: its product's license events, and every agreement event."""
    return [
        events.EventPattern(
            source=[AGREEMENT_SOURCE],
            detail_type=LICENSE_EVENTS,
            detail={"product": {"code": [product_code]}},
        ),
        events.EventPattern(source=[AGREEMENT_SOURCE], detail_type=AGREEMENT_EVENTS),
    ]


def legacy_topic_arns(listing: Listing) -> list[str]:
    """The SNS topics to subscribe to: those the config names, or AWS Marketplace's for a legacy listing."""
    topics = listing.legacy_topics
    named = [arn for arn in (topics.subscription_topic_arn, topics.entitlement_topic_arn) if arn]
    if named or not listing.legacy:
        return named
    # The entitlement topic exists only for pricing models with a contract: subscribing to it for a
    # subscription listing fails the deploy (SNS:Subscribe AuthorizationError; MARKETPLACE.md).
    kinds = ("subscription", "entitlement") if listing.pricing_model.has_entitlements else ("subscription",)
    return [
        f"arn:aws:sns:{MARKETPLACE_REGION}:{MARKETPLACE_SNS_ACCOUNT}:aws-mp-{kind}-notification-"
        f"{listing.product_code}"
        for kind in kinds
    ]


class SubscriptionLifecycle(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ListingNames,
        listing: Listing,
        code: aws_lambda.Code,
        environment: Mapping[str, str],
        tables: ListingTables,
        seller_bus: events.EventBus,
        notifications: sns.ITopic | None,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.seller_bus = seller_bus
        self.dead_letters = dead_letter_queue(self, "DeadLetters", of="the subscription events queue")
        self.queue = sqs.Queue(
            self,
            "Events",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            # AWS's guidance for Lambda event sources: at least six times the function's timeout.
            visibility_timeout=Duration.seconds(6 * FUNCTION_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=MAX_RECEIVES),
        )
        self.function = self._build_function(names, code, environment, tables, retain)
        self.function.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=10,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        acknowledge(
            self.function.function,
            {
                "Serverless-LambdaEventSourceMappingDestination": (
                    "An SQS event source takes no on-failure destination: a message that keeps failing "
                    "goes to the queue's own dead-letter queue after its retries."
                )
            },
        )
        self.rules = [
            events.Rule(
                self,
                f"Marketplace{kind}",
                description=f"AWS Marketplace {kind.lower()} events for {listing.path} → its lifecycle queue",
                event_pattern=pattern,
                targets=[targets.SqsQueue(self.queue, dead_letter_queue=self.dead_letters)],
            )
            for kind, pattern in zip(
                ("Licenses", "Agreements"), marketplace_event_patterns(listing.product_code), strict=True
            )
        ]
        for index, topic_arn in enumerate(legacy_topic_arns(listing)):
            topic = sns.Topic.from_topic_arn(self, f"LegacyTopic{index}", topic_arn)
            topic.add_subscription(
                subscriptions.SqsSubscription(self.queue, dead_letter_queue=self.dead_letters)
            )
        if notifications is not None:
            self._email_changes(listing, notifications)

    def _build_function(
        self,
        names: ListingNames,
        code: aws_lambda.Code,
        environment: Mapping[str, str],
        tables: ListingTables,
        retain: bool,
    ) -> ListingFunction:
        function = ListingFunction(
            self,
            "Function",
            names=names,
            role_name="Lifecycle",
            code=code,
            handler="handlers.lifecycle.handler",
            description=f"Follows AWS Marketplace subscription events for {names.path}",
            environment=environment,
            retain=retain,
            timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
        )
        subscribers = tables.subscribers
        function.allow(["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"], [subscribers.table_arn])
        # A held fact is removed once claimed, also where earlier versions held it, and nothing else.
        function.allow(["dynamodb:DeleteItem"], [subscribers.table_arn], FORMER_HELD_EVENTS_ONLY)
        function.allow(
            ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"], [tables.held_events.table_arn]
        )
        function.allow(
            ["dynamodb:Query"],
            [f"{subscribers.table_arn}/index/{SUBSCRIBER_BY_CUSTOMER_IDENTIFIER_INDEX}"],
        )
        # Sending a leaving customer's usage at once, as the metering job does.
        allow_metering(function, tables)
        function.allow(["aws-marketplace:GetEntitlements"], ["*"])
        self.seller_bus.grant_put_events_to(function.role)
        return function

    def _email_changes(self, listing: Listing, topic: sns.ITopic) -> None:
        detail = events.EventField.from_path
        events.Rule(
            self,
            "EmailSubscriberChanges",
            description=f"E-mails the seller each subscriber change of {listing.path}",
            event_bus=self.seller_bus,
            event_pattern=events.EventPattern(detail_type=SELLER_EVENT_TYPES),
            targets=[
                targets.SnsTopic(
                    topic,
                    message=events.RuleTargetInput.from_text(
                        f"{listing.name}: {events.EventField.detail_type} for AWS account "
                        f"{detail('$.detail.customerAWSAccountId')} ({detail('$.detail.companyName')}), "
                        f"now {detail('$.detail.status')}, was {detail('$.detail.previousStatus')}."
                    ),
                    dead_letter_queue=self.dead_letters,
                )
            ],
        )
