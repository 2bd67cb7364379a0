"""Onboarding handlers against moto's DynamoDB, with tables built from the synthesized template.

AWS Marketplace is played by `FakeMarketplace` here (the emulator-backed journey lives in the local-mode
tests); everything else is the real code path: handler → logic → stores → DynamoDB.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.stack_template import ListingTemplate
from marketplace_saas import wiring
from marketplace_saas.marketplace import MarketplaceUnavailable, TokenRejected
from marketplace_saas.models import BuyerIdentity
from marketplace_saas.onboarding import Onboarding
from marketplace_saas.settings import listing_settings
from marketplace_saas.store import PendingRegistrations, Subscribers
from tests.integration.conftest import PRODUCT

LICENSE = "arn:aws:license-manager::123456789012:license:l-0123456789abcdef0123456789abcdef"


@dataclass
class FakeMarketplace:
    """Plays ResolveCustomer and GetEntitlements: tokens map to an identity or to the error AWS returns."""

    tokens: dict[str, BuyerIdentity | Exception] = field(default_factory=dict)
    entitlement_pages: list[list[dict[str, Any]]] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    entitlement_calls: int = 0

    def resolve_customer(self, token: str) -> BuyerIdentity:
        self.resolved.append(token)
        outcome = self.tokens.get(token, TokenRejected("invalid"))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def entitlements(self, identity: BuyerIdentity, *, legacy: bool) -> list[dict[str, Any]]:
        self.entitlement_calls += 1
        return [item for page in self.entitlement_pages for item in page]

    def buyer(self, token: str, account: str = "111122223333", product: str = PRODUCT) -> BuyerIdentity:
        identity = BuyerIdentity(account, product, LICENSE.replace("0123", account[:4]), None)
        self.tokens[token] = identity
        return identity

    def fail(self, token: str, error: Exception) -> None:
        self.tokens[token] = error


@dataclass
class Listing:
    template: ListingTemplate
    marketplace: FakeMarketplace
    clock: list[float]

    def table(self, output_key: str) -> Any:
        return boto3.resource("dynamodb").Table(self.template.table_name(output_key))

    def items(self, output_key: str) -> list[dict[str, Any]]:
        return list(self.table(output_key).scan()["Items"])

    @property
    def subscribers(self) -> list[dict[str, Any]]:
        return self.items("SubscribersTableName")

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self.items("RegistrationsTableName")


def _listing(template: ListingTemplate, monkeypatch: pytest.MonkeyPatch) -> Iterator[Listing]:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # Every function's environment, as local mode's gateway merges them (the brand is the buyer-facing ones').
    for function in template.functions.values():
        for key, value in function.environment.items():
            monkeypatch.setenv(key, value)
    listing_settings.cache_clear()
    with mock_aws():
        client = boto3.client("dynamodb")
        for table in template.tables:
            client.create_table(**table.create_request)
        settings = listing_settings()
        marketplace = FakeMarketplace()
        clock = [1_800_000_000.0]
        dynamodb = boto3.resource("dynamodb")
        wiring.use(
            Onboarding(
                settings,
                marketplace,  # type: ignore[arg-type]
                PendingRegistrations(dynamodb.Table(settings.registrations_table)),
                Subscribers(
                    dynamodb.Table(settings.subscribers_table),
                    legacy=settings.legacy_identity,
                    held_events=dynamodb.Table(settings.held_events_table),
                ),
                clock=lambda: clock[0],
            )
        )
        try:
            yield Listing(template, marketplace, clock)
        finally:
            wiring.use(None)
            listing_settings.cache_clear()


@pytest.fixture
def onboard(templates: dict[str, ListingTemplate], monkeypatch: pytest.MonkeyPatch) -> Iterator[Listing]:
    yield from _listing(templates["onboard"], monkeypatch)


@pytest.fixture
def contract(templates: dict[str, ListingTemplate], monkeypatch: pytest.MonkeyPatch) -> Iterator[Listing]:
    yield from _listing(templates["contract"], monkeypatch)


__all__ = ["FakeMarketplace", "Listing", "MarketplaceUnavailable", "TokenRejected"]
