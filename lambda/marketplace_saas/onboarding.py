"""Buyer onboarding: from AWS Marketplace's redirect to one registered subscriber.

fulfillment POST (token) → ResolveCustomer → product check → pending registration (random id) → cookie
page → register (contact details) → one subscriber per customer account + license, whatever the retries
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from marketplace_saas.marketplace import MarketplaceClient
from marketplace_saas.models import PendingRegistration, Subscriber
from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import PendingRegistrations, Subscribers

if TYPE_CHECKING:  # the registration handler validates the form; the fulfillment function never loads it
    from marketplace_saas.registration_form import RegistrationRequest

# How long a buyer has between arriving from AWS Marketplace and submitting the form.
PENDING_REGISTRATION_SECONDS = 3600
OFFER_TYPES = frozenset({"free-trial"})
# The registration token's documented format is opaque; anything this long is not one.
MAX_TOKEN_LENGTH = 4096


class ForeignProduct(Exception):
    """The token belongs to another product: this listing refuses the buyer."""


class NoPendingRegistration(Exception):
    """No (or an expired) pending registration: the buyer must come from AWS Marketplace again."""


class RegisteredWithOtherDetails(Exception):
    """This buyer is registered already, with different contact details."""

    def __init__(self, subscriber: Subscriber) -> None:
        super().__init__("already registered")
        self.subscriber = subscriber


class BadToken(Exception):
    """The fulfillment request carries no usable token (before asking AWS)."""


@dataclass(frozen=True)
class RegistrationState:
    state: Literal["unregistered", "registered"]
    pending: PendingRegistration
    subscriber: Subscriber | None


class Onboarding:
    def __init__(
        self,
        settings: ListingSettings,
        marketplace: MarketplaceClient,
        pending: PendingRegistrations,
        subscribers: Subscribers,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._marketplace = marketplace
        self._pending = pending
        self._subscribers = subscribers
        self._clock = clock

    def accept_buyer(self, token: str | None, offer_type: str | None) -> str:
        """Resolve the token at once and return the new pending registration's id (for the cookie)."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token != token.strip():
            raise BadToken
        identity = self._marketplace.resolve_customer(token)
        # Trust only what AWS just returned, and only for this listing's product.
        if identity.product_code != self._settings.product_code:
            raise ForeignProduct
        expires_at = int(self._clock()) + PENDING_REGISTRATION_SECONDS
        offer = offer_type if offer_type in OFFER_TYPES else None
        return self._pending.create(identity, offer, expires_at)

    def pending(self, registration_id: str | None) -> PendingRegistration:
        found = self._pending.get(registration_id, int(self._clock()))
        if found is None:
            raise NoPendingRegistration
        return found

    def state(self, registration_id: str | None) -> RegistrationState:
        pending = self.pending(registration_id)
        subscriber = self._subscribers.get(pending.identity)
        return RegistrationState("registered" if subscriber else "unregistered", pending, subscriber)

    @property
    def settings(self) -> ListingSettings:
        return self._settings

    def register(self, registration_id: str | None, request: RegistrationRequest) -> tuple[bool, Subscriber]:
        """Register the buyer; `(True, s)` the first time, `(False, s)` for a repeat of the same details."""
        pending = self.pending(registration_id)
        existing = self._subscribers.get(pending.identity)
        if existing is not None:
            return False, self._same_or_conflict(existing, request)
        entitlements = (
            self._marketplace.entitlements(pending.identity, legacy=self._settings.legacy_identity)
            if self._settings.has_entitlements
            else []
        )
        candidate = Subscriber(
            identity=pending.identity,
            company_name=request.company_name,
            contact_person=request.contact_person,
            contact_email=str(request.contact_email),
            contact_phone=request.contact_phone,
            registration_date=datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="seconds"),
            status="pending",
            offer_type=pending.offer_type,
            entitlements=entitlements,
        )
        stored = self._subscribers.register(candidate)
        if stored is not None:
            return True, stored
        # Another request registered this buyer between our read and our write.
        winner = self._subscribers.get(pending.identity)
        if winner is None:  # pragma: no cover - the condition failed, so the registration exists
            raise RuntimeError("registration vanished after a conditional write failed")
        return False, self._same_or_conflict(winner, request)

    @staticmethod
    def _same_or_conflict(existing: Subscriber, request: RegistrationRequest) -> Subscriber:
        if existing.same_contact_details(request):
            return existing
        raise RegisteredWithOtherDetails(existing)
