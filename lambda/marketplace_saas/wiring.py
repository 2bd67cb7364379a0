"""Builds the services the handlers use from the function's environment, once per execution environment.

Clients are created on first use rather than at import, so a cold start pays only for what it needs.
Tests replace the whole service with `use(...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

from marketplace_saas.deadline import BudgetedClient, BudgetedTable, Clients
from marketplace_saas.marketplace import CLIENT_CONFIG, MarketplaceClient
from marketplace_saas.onboarding import Onboarding
from marketplace_saas.seller_events import SellerEvents
from marketplace_saas.settings import listing_settings
from marketplace_saas.store import PendingRegistrations, Subscribers

if TYPE_CHECKING:  # imported where they are built: each function loads only the services it uses
    from marketplace_saas.lifecycle import Lifecycle
    from marketplace_saas.metering import MeteringJob
    from marketplace_saas.reconcile import Reconciler
    from marketplace_saas.usage import UsageRecorder  # the usage and metering functions only

_onboarding: Onboarding | None = None
_usage_recorder: UsageRecorder | None = None
_lifecycle: Lifecycle | None = None
_metering_job: MeteringJob | None = None
_seller_events: SellerEvents | None = None
_reconciler: Reconciler | None = None
# The request handlers' clients: timeouts from what is left of each invocation (see deadline.py).
_clients = Clients()


def onboarding() -> Onboarding:
    global _onboarding
    if _onboarding is None:
        settings = listing_settings()
        _onboarding = Onboarding(
            settings,
            MarketplaceClient(
                BudgetedClient(_clients, "meteringmarketplace"),
                BudgetedClient(_clients, "marketplace-entitlement"),
            ),
            PendingRegistrations(BudgetedTable(_clients, settings.registrations_table)),
            Subscribers(
                BudgetedTable(_clients, settings.subscribers_table),
                legacy=settings.legacy_identity,
                held_events=BudgetedTable(_clients, settings.held_events_table),
            ),
        )
    return _onboarding


def usage_recorder() -> UsageRecorder:
    global _usage_recorder
    from marketplace_saas.usage import UsageRecorder

    if _usage_recorder is None:
        settings = listing_settings()
        _usage_recorder = UsageRecorder(
            settings,
            BudgetedTable(_clients, settings.subscribers_table),
            BudgetedTable(_clients, settings.metering_table),
        )
    return _usage_recorder


def metering_job() -> MeteringJob:
    global _metering_job
    from marketplace_saas.metering import MeteringJob

    if _metering_job is None:
        settings = listing_settings()
        dynamodb = boto3.resource("dynamodb")
        _metering_job = MeteringJob(
            settings,
            dynamodb.Table(settings.metering_table),
            dynamodb.Table(settings.subscribers_table),
            boto3.client("meteringmarketplace", config=CLIENT_CONFIG),
        )
    return _metering_job


def seller_events() -> SellerEvents:
    global _seller_events
    if _seller_events is None:
        settings = listing_settings()
        _seller_events = SellerEvents(
            BudgetedClient(_clients, "events"), settings.seller_bus, settings.seller_event_source
        )
    return _seller_events


def lifecycle() -> Lifecycle:
    global _lifecycle
    from marketplace_saas.lifecycle import Lifecycle

    if _lifecycle is None:
        settings = listing_settings()
        job = metering_job()

        def flush(customer: tuple[str, str]) -> None:
            job.flush({customer})

        dynamodb = boto3.resource("dynamodb")
        _lifecycle = Lifecycle(
            settings,
            dynamodb.Table(settings.subscribers_table),
            dynamodb.Table(settings.held_events_table),
            MarketplaceClient.from_environment(),
            seller_events(),
            flush=flush,
        )
    return _lifecycle


def reconciler() -> Reconciler:
    global _reconciler
    from marketplace_saas.reconcile import Reconciler, RunState

    if _reconciler is None:
        settings = listing_settings()
        dynamodb = boto3.resource("dynamodb")
        _reconciler = Reconciler(
            settings,
            lifecycle(),
            dynamodb.Table(settings.subscribers_table),
            # The Agreement and Catalog APIs are called in us-east-1, as the other Marketplace APIs.
            boto3.client("marketplace-agreement", config=CLIENT_CONFIG),
            boto3.client("marketplace-catalog", config=CLIENT_CONFIG),
            RunState(boto3.client("ssm"), settings.reconcile_state_parameter),
        )
    return _reconciler


def use(service: Onboarding | None) -> None:
    """Replace (or with None, reset) the services the handlers use; the next request rebuilds the rest."""
    global _onboarding, _usage_recorder, _lifecycle, _seller_events, _metering_job, _clients, _reconciler
    _onboarding = service
    _clients = Clients()  # the environment (endpoints, credentials) may have changed
    _usage_recorder = None
    _lifecycle = None
    _metering_job = None
    _seller_events = None
    _reconciler = None
