"""Builds the CDK app from a validated config: one stack per enabled (and selected) listing, checked by
cdk-nag's AwsSolutions and Serverless packs on every synth."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from stacks.config import ConfigError, MarketplaceConfig
from stacks.constructs.subscription_lifecycle import MARKETPLACE_REGION
from stacks.event_forwarder import MarketplaceEventForwarder
from stacks.listing_stack import MarketplaceListingStack


def build_app(
    config: MarketplaceConfig,
    *,
    only_paths: Collection[str] = (),
    account: str | None = None,
    app: App | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[App, list[MarketplaceListingStack]]:
    """Add a stack for every enabled listing (or only those in `only_paths`) to a new or given app.

    `config` is resolved for one environment (`MarketplaceConfig.for_environment`): its stacks, in its
    account and region, named with its prefix."""
    unknown = sorted(set(only_paths) - {listing.path for listing in config.marketplace_listings.values()})
    if unknown:
        raise ConfigError([f"--listing {path}: no listing in the config has this path" for path in unknown])
    disabled = sorted(
        listing.path
        for listing in config.marketplace_listings.values()
        if listing.path in only_paths and not listing.enabled
    )
    if disabled:
        raise ConfigError([f"--listing {path}: this listing is disabled in the config" for path in disabled])

    app = app or App(context=context)
    settings = config.deployment_settings
    env = Environment(account=account, region=settings.region)
    stacks = [
        MarketplaceListingStack(app, listing=listing, settings=settings, env=env)
        for listing in config.enabled_listings
        if not only_paths or listing.path in only_paths
    ]
    if settings.region != MARKETPLACE_REGION:
        for stack in stacks:
            forwarder = MarketplaceEventForwarder(
                app, listing=stack.listing, names=stack.names, settings=settings, account=account
            )
            stack.add_dependency(forwarder, "AWS Marketplace events reach the listing through it")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app, stacks
