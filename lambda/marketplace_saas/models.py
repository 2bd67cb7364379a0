"""What onboarding, the lifecycle and metering store: who a buyer is, a subscriber, its lifecycle facts.

Plain dataclasses on the standard library: every function imports this module, and a cold start pays next
to nothing for it. The registration form's model (pydantic, with e-mail validation) is apart, in
`registration_form`, loaded only where a form is validated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from marketplace_saas.registration_form import RegistrationRequest

SubscriberStatus = Literal["pending", "active", "cancel-pending", "cancelled", "failed"]
# The lifecycle fact each status is derived from (see lifecycle.py): when AWS says it happened, epoch ms.
FACTS: dict[SubscriberStatus, str] = {
    "active": "activatedAt",
    "cancel-pending": "cancelRequestedAt",
    "failed": "failedAt",
    "cancelled": "cancelledAt",
}
# `License Updated`: the license was provisioned, or its entitlements changed. It makes a license active that
# has not ended, and never brings back one that has: an entitlement change does not change whether a license
# is active.
PROVISIONED_FACT = "provisionedAt"
# `Purchase Agreement Ended`: recorded, but it ends nothing by itself. It comes before the license's
# `License Deprovisioned` (which opens the final hour), and also when the agreement is renewed or replaced.
AGREEMENT_ENDED_FACT = "agreementEndedAt"
# Every fact an event records, and those the status is a function of.
ALL_FACTS: tuple[str, ...] = (*FACTS.values(), PROVISIONED_FACT, AGREEMENT_ENDED_FACT)
STATUS_FACTS: tuple[str, ...] = (*FACTS.values(), PROVISIONED_FACT)
_END_FACTS = (FACTS["cancel-pending"], FACTS["cancelled"], FACTS["failed"])
# Usage is sent only for subscriptions AWS Marketplace confirmed (and, for an hour, those ending);
# a subscription that failed or ended is never billed.
BILLABLE_STATUSES: tuple[SubscriberStatus, ...] = ("active", "cancel-pending")
ENDED_STATUSES: frozenset[SubscriberStatus] = frozenset({"failed", "cancelled"})
# Facts of the same instant: the later stage of a subscription's documented sequence wins (subscribe, then
# unsubscribe-pending, then unsubscribe-success) ...
_RANK: dict[SubscriberStatus, int] = {"active": 0, "cancel-pending": 1, "failed": 2, "cancelled": 3}
# Lifecycle facts nobody can tell the owner of yet wait in the held-events table, one item per
# "heldFor" value:
# - legacy SNS notifications name the buyer by CustomerIdentifier only: until that buyer registers (and so
#   tells us their account), their facts wait under "customer-identifier#<CustomerIdentifier>";
# - agreement events name no product or license: one that arrives before the license event that ties its
#   agreement to a subscriber waits under "agreement#<agreement id>" until that license event comes.
HELD_KEY = "heldFor"
UNREGISTERED_PREFIX = "customer-identifier#"
AGREEMENT_PREFIX = "agreement#"
# Earlier versions held them in the subscribers table, under these prefixes as `customerAWSAccountId`
# (and the product code as sort key). Such items are still read, claimed and removed, never listed.
PLACEHOLDER_PREFIXES = (UNREGISTERED_PREFIX, AGREEMENT_PREFIX)
_LICENSE_ID = re.compile(r"(l-[0-9A-Za-z]+)$")


def status_of(item: Mapping[str, Any]) -> SubscriberStatus:
    """The latest lifecycle fact wins. No fact yet: pending.

    - `provisionedAt` (License Updated) counts as an activation only while no end fact is recorded.
    - A subscription that ends without ever having been active failed: it is never provisioned nor metered
      (a failed payment ends the license before Marketplace activates it).
    - Facts of the same instant: the later stage wins, except that an activation and a completed
      cancellation at the same instant (with no cancellation request then) are a resubscription:
      `unsubscribe-success`, then `subscribe-success`; active.
    """
    ended = any(fact in item for fact in _END_FACTS)
    activated = [int(item[FACTS["active"]])] if FACTS["active"] in item else []
    if PROVISIONED_FACT in item and not ended:
        activated.append(int(item[PROVISIONED_FACT]))
    times: dict[SubscriberStatus, int] = {
        status: int(item[fact]) for status, fact in FACTS.items() if status != "active" and fact in item
    }
    if activated:
        times["active"] = max(activated)
    if not times:
        return "pending"
    latest_time = max(times.values())
    tied = {status for status, at in times.items() if at == latest_time}
    if tied >= {"active", "cancelled"} and "cancel-pending" not in tied:
        return "active"
    latest = max(tied, key=_RANK.__getitem__)
    ever_active = FACTS["active"] in item or PROVISIONED_FACT in item
    if latest in ("cancel-pending", "cancelled") and not ever_active:
        return "failed"
    return latest


def license_id(license_arn: str) -> str:
    """`l-…`, the part of a license ARN every source writes the same way.

    ResolveCustomer returns `arn:aws:license-manager::<account>:license:l-…`; the documented EventBridge
    examples print `aws:license-manager:us-east-1:<account>:l-…`. Keyed on the id, both find one subscriber.
    """
    match = _LICENSE_ID.search(license_arn)
    return match.group(1) if match else license_arn


def is_placeholder(account: str) -> bool:
    """Whether a subscribers-table item holds early lifecycle facts an earlier version kept there."""
    return account.startswith(PLACEHOLDER_PREFIXES)


def held_agreement_key(agreement_id: str) -> dict[str, str]:
    return {HELD_KEY: f"{AGREEMENT_PREFIX}{agreement_id}"}


def held_customer_key(customer_identifier: str) -> dict[str, str]:
    return {HELD_KEY: f"{UNREGISTERED_PREFIX}{customer_identifier}"}


def is_held(key: Mapping[str, str]) -> bool:
    """Whether a key names held facts (the held-events table) rather than a subscriber."""
    return HELD_KEY in key


def former_agreement_key(agreement_id: str, product_code: str) -> dict[str, str]:
    """Where an earlier version held an agreement's facts: in the subscribers table."""
    return {"customerAWSAccountId": f"{AGREEMENT_PREFIX}{agreement_id}", "subscriptionKey": product_code}


def former_customer_key(customer_identifier: str, product_code: str) -> dict[str, str]:
    """Where an earlier version held a CustomerIdentifier's facts: in the subscribers table."""
    return {
        "customerAWSAccountId": f"{UNREGISTERED_PREFIX}{customer_identifier}",
        "subscriptionKey": product_code,
    }


@dataclass(frozen=True)
class BuyerIdentity:
    """Who AWS Marketplace says the buyer is: only identifiers ResolveCustomer just returned."""

    customer_aws_account_id: str
    product_code: str
    license_arn: str | None
    customer_identifier: str | None
    # ResolveCustomer's Metadata.AgreementId: the agreement that EventBridge agreement events name, so they
    # find this subscriber directly (model of 2026-10-20; absent from older answers).
    agreement_id: str | None = None

    def subscription_key(self, legacy: bool) -> str:
        """The subscriber's sort key: the license id, or the product code for legacy listings."""
        if legacy or not self.license_arn:
            return self.product_code
        return license_id(self.license_arn)


@dataclass(frozen=True)
class PendingRegistration:
    """A buyer who arrived through the fulfillment URL and has not (yet) registered."""

    identity: BuyerIdentity
    offer_type: str | None
    expires_at: int


@dataclass(frozen=True)
class Subscriber:
    identity: BuyerIdentity
    company_name: str
    contact_person: str
    contact_email: str
    contact_phone: str
    registration_date: str
    status: SubscriberStatus
    offer_type: str | None
    entitlements: list[dict[str, Any]] = field(default_factory=list)

    def same_contact_details(self, request: RegistrationRequest) -> bool:
        return (
            self.company_name == request.company_name
            and self.contact_person == request.contact_person
            and self.contact_email == str(request.contact_email)
            and self.contact_phone == request.contact_phone
        )

    def public_view(self) -> dict[str, Any]:
        """What the landing page may show the buyer about their own registration."""
        return {
            "companyName": self.company_name,
            "contactPerson": self.contact_person,
            "contactEmail": self.contact_email,
            "status": self.status,
            "registrationDate": self.registration_date,
        }
