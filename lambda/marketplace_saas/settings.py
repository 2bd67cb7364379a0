"""The listing a function serves, read once from the environment its stack gives it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

# The Marketplace Metering and Entitlement APIs for SaaS are called in us-east-1, whatever region the
# listing's stack is in (MARKETPLACE.md, "Identity of a buyer").
MARKETPLACE_REGION = "us-east-1"


@dataclass(frozen=True)
class ListingSettings:
    listing_path: str
    product_code: str
    pricing_model: str
    legacy_identity: bool
    subscribers_table: str
    registrations_table: str
    metering_table: str = ""
    # Lifecycle facts that wait for the subscriber they belong to (see lifecycle.HeldEvents).
    held_events_table: str = ""
    dimensions: frozenset[str] = frozenset()
    # Where state changes are published for the seller's product (the listing's own EventBridge bus).
    seller_bus: str = ""
    seller_event_source: str = ""
    # BatchMeterUsage calls the metering job makes at once (deploymentSettings.meteringConcurrency); 0: the
    # job's default.
    metering_concurrency: int = 0
    # The origins (`https://host`) of the listing's own site: the only pages that may post the registration.
    site_origins: frozenset[str] = frozenset()
    # What the buyer-facing pages show of the listing's brand (its name and branding.supportEmail); the
    # accent colour reaches them through the site's /brand.css, as the CSP allows no inline style.
    listing_name: str = ""
    support_email: str = ""
    # Reconciliation (reconcile.py): the product's id (`prod-…`, the config's entityId; empty: found by its
    # product code) and the SSM parameter holding the last run.
    product_id: str = ""
    reconcile_state_parameter: str = ""

    @property
    def has_entitlements(self) -> bool:
        return self.pricing_model in ("contract", "contract-with-consumption")

    @property
    def is_metered(self) -> bool:
        """Whether usage is sent at all: not for a pure contract (its dimensions are only `Entitled`),
        nor for a listing that declares no dimensions."""
        return self.pricing_model != "contract" and bool(self.dimensions)

    @property
    def sends_zero_records(self) -> bool:
        """AWS asks for a record every hour for every active metered customer, 0 when quiet; a contract with
        consumption meters only what goes beyond the contract, which the seller's product reports."""
        return self.is_metered and self.pricing_model == "subscription"


class MissingSetting(RuntimeError):
    pass


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise MissingSetting(f"environment variable {name} is not set; the function's stack sets it")
    return value


@cache
def listing_settings() -> ListingSettings:
    return ListingSettings(
        listing_path=_required("LISTING_PATH"),
        product_code=_required("PRODUCT_CODE"),
        pricing_model=_required("PRICING_MODEL"),
        legacy_identity=_required("LEGACY_IDENTITY") == "true",
        subscribers_table=_required("SUBSCRIBERS_TABLE"),
        registrations_table=_required("REGISTRATIONS_TABLE"),
        metering_table=_required("METERING_TABLE"),
        held_events_table=_required("HELD_EVENTS_TABLE"),
        # Empty for a listing that declares no dimensions (the seed's config as written).
        dimensions=frozenset(name for name in os.environ.get("DIMENSIONS", "").split(",") if name),
        seller_bus=os.environ.get("SELLER_EVENT_BUS", ""),
        seller_event_source=os.environ.get("SELLER_EVENT_SOURCE", ""),
        metering_concurrency=int(os.environ.get("METERING_CONCURRENCY") or 0),
        # Set on the registration function only (its stack, or local mode's gateway for its loopback site).
        site_origins=frozenset(
            origin.strip().rstrip("/").lower()
            for origin in os.environ.get("SITE_ORIGINS", "").split(",")
            if origin.strip()
        ),
        listing_name=os.environ.get("LISTING_NAME", ""),
        support_email=os.environ.get("SUPPORT_EMAIL", ""),
        product_id=os.environ.get("PRODUCT_ID", ""),
        reconcile_state_parameter=os.environ.get("RECONCILE_STATE_PARAMETER", ""),
    )
