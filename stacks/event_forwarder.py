"""For a listing deployed outside us-east-1: AWS Marketplace publishes its events only in us-east-1, so a
small stack there forwards the listing's events to the default bus of the listing's region."""

from __future__ import annotations

from aws_cdk import (
    Aws,
    Environment,
    Stack,
    aws_events as events,
    aws_events_targets as targets,
)
from constructs import Construct

from stacks.config import DeploymentSettings, Listing
from stacks.constructs.dead_letters import dead_letter_queue
from stacks.constructs.subscription_lifecycle import MARKETPLACE_REGION, marketplace_event_patterns
from stacks.naming import ListingNames
from stacks.tagging import tag_listing_resources


class MarketplaceEventForwarder(Stack):
    def __init__(
        self,
        scope: Construct,
        *,
        listing: Listing,
        names: ListingNames,
        settings: DeploymentSettings,
        account: str | None,
    ) -> None:
        region = settings.region
        stack_name = f"{names.stack}-events"
        super().__init__(
            scope,
            stack_name,
            stack_name=stack_name,
            description=f"Forwards AWS Marketplace events of {listing.product_code} to {region}",
            env=Environment(account=account, region=MARKETPLACE_REGION),
        )
        tag_listing_resources(self, stack_name=stack_name, listing=listing, settings=settings)
        destination = events.EventBus.from_event_bus_arn(
            self,
            "ListingRegionBus",
            f"arn:{Aws.PARTITION}:events:{region}:{Aws.ACCOUNT_ID}:event-bus/default",
        )
        # Events EventBridge could not forward (after its retries) wait here for two weeks.
        undelivered = dead_letter_queue(self, "Undelivered", of="the forwarding rules")
        for kind, pattern in zip(
            ("Licenses", "Agreements"), marketplace_event_patterns(listing.product_code), strict=True
        ):
            events.Rule(
                self,
                f"Forward{kind}",
                description=f"AWS Marketplace {kind.lower()} events for {listing.path} → {region}",
                event_pattern=pattern,
                targets=[targets.EventBus(destination, dead_letter_queue=undelivered)],
            )
