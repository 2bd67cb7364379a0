"""Builds the services the handlers use from the function's environment, once per execution environment.

Clients are created on first use rather than at import, so a cold start pays only for what it needs.
Tests replace the whole service with `use(...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

from marketplace_saas.marketplace import CLIENT_CONFIG, MarketplaceClient
from marketplace_saas.onboarding import Onboarding
from marketplace_saas.seller_events import SellerEvents
from marketplace_saas.settings import listing_settings
from marketplace_saas.store import PendingRegistrations, Subscribers

if TYPE_CHECKING:  # imported where they are built: each function loads only the services it uses
    from marketplace_saas.lifecycle import Lifecycle
    from marketplace_saas.metering import MeteringJob
    from marketplace_saas.usage import UsageRecorder  # pydantic: the usage and metering functions only

_onboarding: Onboarding | None = None
_usage_recorder: UsageRecorder | None = None
_lifecycle: Lifecycle | None = None
_metering_job: MeteringJob | None = None
_seller_events: SellerEvents | None = None


def onboarding() -> Onboarding:
    global _onboarding
    if _onboarding is None:
        settings = listing_settings()
        dynamodb = boto3.resource("dynamodb")
        _onboarding = Onboarding(
            settings,
            MarketplaceClient.from_environment(),
            PendingRegistrations(dynamodb.Table(settings.registrations_table)),
            Subscribers(dynamodb.Table(settings.subscribers_table), legacy=settings.legacy_identity),
        )
    return _onboarding


def usage_recorder() -> UsageRecorder:
    global _usage_recorder
    from marketplace_saas.usage import UsageRecorder

    if _usage_recorder is None:
        settings = listing_settings()
        dynamodb = boto3.resource("dynamodb")
        _usage_recorder = UsageRecorder(
            settings, dynamodb.Table(settings.subscribers_table), dynamodb.Table(settings.metering_table)
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
            boto3.client("events"), settings.seller_bus, settings.seller_event_source
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

        _lifecycle = Lifecycle(
            settings,
            boto3.resource("dynamodb").Table(settings.subscribers_table),
            MarketplaceClient.from_environment(),
            seller_events(),
            flush=flush,
        )
    return _lifecycle


def use(service: Onboarding | None) -> None:
    """Replace (or with None, reset) the services the handlers use; the next request rebuilds the rest."""
    global _onboarding, _usage_recorder, _lifecycle, _seller_events, _metering_job
    _onboarding = service
    _usage_recorder = None
    _lifecycle = None
    _metering_job = None
    _seller_events = None
