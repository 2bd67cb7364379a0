"""One AWS Marketplace listing's whole stack. It composes one construct per concern and owns the
cross-cutting parts: names, tags and outputs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack, aws_events as events
from constructs import Construct

from stacks.bundling import lambda_code
from stacks.config import DeploymentSettings, Listing
from stacks.constructs.landing_site import LandingSite
from stacks.constructs.listing_api import ListingApi
from stacks.constructs.listing_function import ListingFunction
from stacks.constructs.metering_schedule import MeteringSchedule
from stacks.constructs.monitoring import ListingMonitoring, Signals
from stacks.constructs.reconciliation import Reconciliation
from stacks.constructs.seller_notifications import SellerNotifications
from stacks.constructs.subscription_lifecycle import SubscriptionLifecycle
from stacks.constructs.tables import FORMER_HELD_EVENTS_ONLY, ListingTables
from stacks.naming import ListingNames
from stacks.page_config import brand_stylesheet, page_config
from stacks.tagging import tag_listing_resources

FULFILLMENT_PATH = "/marketplace/fulfillment"
API_PATH = "/api/"


class ListingContents(Construct):
    """What a listing's stack holds, built into the stack itself (so the logical ids are the stack's own
    children's): `MarketplaceListingStack` for a listing of the config, and the Service Catalog product's
    template (stacks/service_catalog.py), whose listing fields are the template's parameters."""

    def _build_listing(self, listing: Listing, settings: DeploymentSettings, names: ListingNames) -> None:
        self.listing = listing
        self.names = names
        retain = settings.retain_resources

        self.tables = ListingTables(self, "Tables", names=names, retain=retain)
        email = listing.notification_email or settings.notification_email
        self.notifications = SellerNotifications(
            self, "Notifications", names=names, email=str(email) if email else None
        )
        # The seller's product learns of subscriber changes here (see SubscriptionLifecycle).
        self.seller_bus = events.EventBus(self, "SellerEvents", event_bus_name=names.seller_event_bus)
        code = lambda_code()  # one asset per stack, shared by its functions
        environment = {
            "LISTING_PATH": listing.path,
            "PRODUCT_CODE": listing.product_code,
            "PRICING_MODEL": listing.pricing_model.value,
            "LEGACY_IDENTITY": "true" if listing.legacy else "false",
            "SUBSCRIBERS_TABLE": self.tables.subscribers.table_name,
            "METERING_TABLE": self.tables.usage_records.table_name,
            "REGISTRATIONS_TABLE": self.tables.pending_registrations.table_name,
            "HELD_EVENTS_TABLE": self.tables.held_events.table_name,
            "DIMENSIONS": ",".join(dimension.name for dimension in listing.dimensions),
            "SELLER_EVENT_BUS": names.seller_event_bus,
            "SELLER_EVENT_SOURCE": names.stack,
        }

        def function(construct_id: str, role_name: str, module: str, description: str) -> ListingFunction:
            """A function the API invokes: with SnapStart on, a buyer's cold start resumes from a snapshot."""
            return ListingFunction(
                self,
                construct_id,
                names=names,
                role_name=role_name,
                code=code,
                handler=f"handlers.{module}.handler",
                description=description,
                environment=environment,
                retain=retain,
                snap_start=settings.snap_start,
            )

        self.fulfillment = function(
            "Fulfillment",
            "FulfillmentHandler",
            "fulfillment",
            f"Receives buyers from AWS Marketplace for {listing.path}",
        )
        self.registration = function(
            "Registration", "RegistrationHandler", "registration", f"Registers buyers of {listing.path}"
        )
        # The buyer-facing pages show the listing's name and support contact (see marketplace_saas/pages.py).
        brand = {"LISTING_NAME": listing.name, "SUPPORT_EMAIL": str(listing.branding.support_email or "")}
        for buyer_facing in (self.fulfillment, self.registration):
            for key, value in brand.items():
                buyer_facing.function.add_environment(key, value)
        self._grant_onboarding()
        self.usage = function(
            "Usage",
            "UsageHandler",
            "usage",
            f"Records usage of {listing.path} reported by the seller's product",
        )
        self.metering = MeteringSchedule(
            self,
            "Metering",
            names=names,
            code=code,
            environment=environment,
            tables=self.tables,
            schedule=settings.metering_schedule,
            retain=retain,
            concurrency=settings.metering_concurrency,
        )
        self._grant_usage_recording()
        self.lifecycle = SubscriptionLifecycle(
            self,
            "Lifecycle",
            names=names,
            listing=listing,
            code=code,
            environment=environment,
            tables=self.tables,
            seller_bus=self.seller_bus,
            # Subscriber changes are e-mailed only to an address the config names.
            notifications=self.notifications.topic if self.notifications.email else None,
            retain=retain,
        )
        self._grant_closing_subscriptions()
        self.reconciliation = Reconciliation(
            self,
            "Reconciliation",
            names=names,
            code=code,
            environment=environment,
            tables=self.tables,
            seller_bus=self.seller_bus,
            schedule=settings.reconcile_schedule,
            entity_id=listing.entity_id,
            retain=retain,
        )

        self.api = ListingApi(
            self,
            "Api",
            names=names,
            fulfillment=self.fulfillment.invoke_target,
            registration=self.registration.invoke_target,
            usage=self.usage.invoke_target,
            retain=retain,
        )
        self.site = LandingSite(
            self,
            "Site",
            names=names,
            api=self.api.rest_api,
            origin_headers=self.api.origin_headers,
            page_config=page_config(listing),
            brand_stylesheet=brand_stylesheet(listing.branding.accent_color),
            custom_domain=listing.custom_domain,
            retain=retain,
        )
        # The pages that may post a registration: the listing's own site (see handlers/registration.py).
        self.registration.function.add_environment("SITE_ORIGINS", ",".join(self._site_origins()))
        self.monitoring = ListingMonitoring(
            self,
            "Monitoring",
            names=names,
            signals=Signals(
                functions={
                    "fulfillment": self.fulfillment.function,
                    "registration": self.registration.function,
                    "usage": self.usage.function,
                    "metering": self.metering.job.function,
                    "lifecycle": self.lifecycle.function.function,
                    "reconciliation": self.reconciliation.function.function,
                },
                api=self.api.rest_api,
                dead_letter_queues={
                    "lifecycle": self.lifecycle.dead_letters,
                    "metering": self.metering.dead_letters,
                    "metering-job": self.metering.failed_runs,
                    "reconciliation": self.reconciliation.dead_letters,
                    "reconciliation-job": self.reconciliation.failed_runs,
                },
                final_failures_alarm=self.metering.final_failures_alarm,
                dimensions=[dimension.name for dimension in listing.dimensions],
            ),
            topic=self.notifications.topic,
        )
        self._tag(settings)
        self._outputs()

    def _grant_onboarding(self) -> None:
        tables = self.tables
        # ResolveCustomer and GetEntitlements support no resource-level permissions.
        self.fulfillment.allow(["aws-marketplace:ResolveCustomer"], ["*"])
        self.fulfillment.allow(["dynamodb:PutItem"], [tables.pending_registrations.table_arn])
        self.registration.allow(["dynamodb:GetItem"], [tables.pending_registrations.table_arn])
        self.registration.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [tables.subscribers.table_arn])
        if self.listing.legacy:
            # Folding in the SNS events that came before the buyer registered (see store.Subscribers),
            # also from where earlier versions held them, and deleting nothing else.
            held = tables.held_events.table_arn
            self.registration.allow(["dynamodb:GetItem", "dynamodb:DeleteItem"], [held])
            self.registration.allow(
                ["dynamodb:DeleteItem"], [tables.subscribers.table_arn], FORMER_HELD_EVENTS_ONLY
            )
        if self.listing.pricing_model.has_entitlements:
            self.registration.allow(["aws-marketplace:GetEntitlements"], ["*"])
        # subscriber.registered: who the buyer is, for the seller's product.
        self.seller_bus.grant_put_events_to(self.registration.role)

    def _grant_closing_subscriptions(self) -> None:
        """The metering job turns cancel-pending subscribers into cancelled once their last hour is sent."""
        subscribers = self.tables.subscribers
        job = self.metering.job
        job.allow(["dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem"], [subscribers.table_arn])
        self.seller_bus.grant_put_events_to(job.role)

    def _grant_usage_recording(self) -> None:
        tables = self.tables
        self.usage.allow(["dynamodb:Query"], [tables.subscribers.table_arn])
        self.usage.allow(["dynamodb:UpdateItem", "dynamodb:GetItem"], [tables.usage_records.table_arn])

    def _tag(self, settings: DeploymentSettings) -> None:
        tag_listing_resources(self, stack_name=self.names.stack, listing=self.listing, settings=settings)

    def _site_origins(self) -> list[str]:
        origins = [f"https://{self.site.distribution.distribution_domain_name}"]
        if self.listing.custom_domain:
            origins.append(f"https://{self.listing.custom_domain.domain_name}")
        return origins

    @property
    def website_url(self) -> str:
        domain = (
            self.listing.custom_domain.domain_name
            if self.listing.custom_domain
            else self.site.distribution.distribution_domain_name
        )
        return f"https://{domain}"

    def _outputs(self) -> None:
        outputs = {
            "WebsiteUrl": (f"{self.website_url}/", "The listing's landing page"),
            "FulfillmentUrl": (
                f"{self.website_url}{FULFILLMENT_PATH}",
                "Enter this as the fulfillment URL of the listing in the AWS Marketplace Management Portal",
            ),
            "ApiUrl": (f"{self.website_url}{API_PATH}", "The registration API, on the page's own domain"),
            "UsageApiUrl": (
                f"{self.api.url}api/usage",
                "Where the seller's product POSTs usage, signed with SigV4 (IAM); not through CloudFront",
            ),
            "UsageApiArn": (
                self.api.usage_method_arn,
                "Grant execute-api:Invoke on this ARN to the role of the seller's product that records usage",
            ),
            "SubscribersTableName": (self.tables.subscribers.table_name, "Registered buyers"),
            "MeteringTableName": (self.tables.usage_records.table_name, "Usage records and their metering"),
            "SellerEventBusName": (
                self.seller_bus.event_bus_name,
                "Subscriber changes for the seller's product: subscriber.activated, .cancel-pending, "
                ".deactivated, .failed and entitlements.updated",
            ),
            "LifecycleQueueUrl": (self.lifecycle.queue.queue_url, "AWS Marketplace events for this listing"),
            "DashboardName": (self.monitoring.dashboard.dashboard_name, "The listing's CloudWatch dashboard"),
            "AlarmTopicArn": (
                self.notifications.topic.topic_arn,
                "Every alarm of the listing, when it fires and when it recovers: subscribe anything to it",
            ),
            "RegistrationsTableName": (
                self.tables.pending_registrations.table_name,
                "Buyers between the fulfillment redirect and the registration form (expire after an hour)",
            ),
            "HeldEventsTableName": (
                self.tables.held_events.table_name,
                "Subscription events waiting for the subscriber they belong to (expire after 30 days)",
            ),
        }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)


class MarketplaceListingStack(ListingContents, Stack):
    """One listing of the config."""

    def __init__(
        self,
        scope: Construct,
        *,
        listing: Listing,
        settings: DeploymentSettings,
        env: Environment | None = None,
    ) -> None:
        names = ListingNames(prefix=settings.name_prefix, path=listing.path)
        super().__init__(
            scope,
            names.stack,
            stack_name=names.stack,
            description=f"AWS Marketplace listing {listing.name!r} ({listing.product_code})",
            env=env,
            termination_protection=settings.retain_resources,
        )
        self._build_listing(listing, settings, names)
