"""The emulated AWS Marketplace: products, subscriptions, tokens, billed usage, and the rules AWS applies.

Rules (see ../../../shared/MARKETPLACE.md; where pages and botocore's service model disagree, the model of
2026-10-20 in botocore 1.44.x wins):
- ResolveCustomer: https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_ResolveCustomer.html
- BatchMeterUsage: https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_BatchMeterUsage.html
- GetEntitlements: https://docs.aws.amazon.com/marketplaceentitlement/latest/APIReference/API_GetEntitlements.html

A buyer is an AWS account *and a license*: under concurrent agreements one account may hold several
licenses (purchases) of one product at once, each with its own LicenseArn and agreement, and metering is per
license (botocore's BatchMeterUsage documentation: "Amazon Web Services Marketplace is introducing Concurrent
Agreements, enabling buyers to make multiple purchases per Amazon Web Services account").
Requests reach these methods already checked against their shape (shapes.py); the rules here are AWS's own.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from local.marketplace_emulator.window import window_allows

MAX_RECORDS_PER_CALL = 25
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
SELLER_ACCOUNT = "111111111111"
# The channel partner that resells a product set up with `"resold": true` (the seller is then only the
# manufacturer; the partner proposes the agreements).
CHANNEL_PARTNER_ACCOUNT = "222222222222"
ENTITLEMENTS_PAGE_SIZE = 25
# Licenses whose entitlements GetEntitlements returns.
BILLABLE = ("active", "cancel-pending")
SUBSCRIPTION_STATES = ("pending", "active", "cancel-pending", "cancelled", "failed")
# What POST /_emulator/events can make happen to a license (see Marketplace.lifecycle_event).
LIFECYCLE_EVENTS = (
    "subscribe-success",
    "subscribe-fail",
    "unsubscribe-pending",
    "unsubscribe-success",
    "entitlement-updated",
    "renew",
)
# After `License Deprovisioned` / `unsubscribe-pending` Marketplace takes the license's usage for about an
# hour (MARKETPLACE.md "Metering": "the seller has about 1 hour to send final records"; saas-notification:
# "a limited time (about one hour) to get final metering records sent").
FINAL_HOUR_SECONDS = 3600
# `Purchase Agreement Ended` comes first, `License Deprovisioned` "seconds to minutes" later (MARKETPLACE.md).
DEFAULT_ENDED_TO_DEPROVISIONED_SECONDS = 5.0
MAX_ENDED_TO_DEPROVISIONED_SECONDS = 3600.0
# An agreement without an end date (pay-as-you-go): DescribeAgreement returns no endTime, but the
# documented events always carry a date-time string, so the emulator writes one far in the future.
# (An assumption: no page shows a pay-as-you-go agreement's event.)
NO_END_TIME_MS = int(datetime(9999, 1, 1, tzinfo=UTC).timestamp() * 1000)
CONTRACT_DAYS = 365
_ID_ALPHABET = string.ascii_lowercase + string.digits
PRICING_MODELS = ("subscription", "contract", "contract-with-consumption")
# A dimension's types (Catalog API `AddDimensions`, MARKETPLACE.md "Listing management"): only
# ExternallyMetered dimensions are metered; Entitled ones are bought up front (contracts).
DIMENSION_TYPES = ("ExternallyMetered", "Entitled")
DEFAULT_DIMENSION_TYPES = {
    "subscription": ("ExternallyMetered",),
    "contract": ("Entitled",),
    "contract-with-consumption": ("ExternallyMetered", "Entitled"),
}


class ApiError(Exception):
    """An error AWS would return: `code` is the modeled exception name botocore maps to a class; `members`
    the error shape's other members (the Agreement API's `reason` and `fields`), sent beside `message`."""

    def __init__(
        self, code: str, message: str, status: int = 400, members: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.members = members or {}


class AdminError(Exception):
    """Bad input to the admin API (a 4xx with a JSON body)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Product:
    product_code: str
    dimensions: dict[str, tuple[str, ...]]  # name → its types (ExternallyMetered and/or Entitled)
    pricing_model: str
    legacy: bool
    # Sold through a channel partner's private offer: the seller is the manufacturer only, so it receives
    # `- Manufacturer` agreement events; otherwise it is manufacturer and proposer and receives `- Proposer`
    # ones (saas-eventbridge-integration: "only the proposer purchase agreement event is sent when you are
    # both the manufacturer and proposer").
    resold: bool = False

    @property
    def product_id(self) -> str:
        """The product's id (`prod-…`), which license events name beside its code; stable per code."""
        digest = hashlib.sha256(self.product_code.encode()).digest()
        return "prod-" + "".join(_ID_ALPHABET[byte % len(_ID_ALPHABET)] for byte in digest[:13])

    @property
    def has_contract(self) -> bool:
        """Contract pricing: the only pricing models with an entitlement SNS topic (MARKETPLACE.md)."""
        return self.pricing_model != "subscription"

    @property
    def agreement_role(self) -> str:
        return "Manufacturer" if self.resold else "Proposer"

    def view(self) -> dict[str, Any]:
        return {
            "productCode": self.product_code,
            "dimensions": [{"name": name, "types": list(types)} for name, types in self.dimensions.items()],
            "pricingModel": self.pricing_model,
            "legacy": self.legacy,
            "resold": self.resold,
        }


@dataclass(frozen=True)
class Agreement:
    """One purchase agreement as its events show it (a snapshot: a later renewal does not change it)."""

    agreement_id: str
    status: str  # AgreementStatus of the marketplace-agreement model: ACTIVE, CANCELLED, RENEWED, ...
    intent: str  # why it was created: NEW or RENEW
    accepted_at_ms: int
    ends_at_ms: int
    previous_agreement_id: str | None = None


@dataclass
class Subscription:
    """One license of one product held by one buyer account, bought by its current agreement.

    A renewal replaces the agreement (a new one in the same chain) and keeps the license.
    """

    product_code: str
    customer_aws_account_id: str
    license_arn: str
    agreement_id: str
    customer_identifier: str
    status: str
    offer_type: str | None
    created_at: float
    entitlements: list[dict[str, Any]] = field(default_factory=list)
    offer_id: str = ""
    agreement: Agreement | None = None  # the current agreement (its id is agreement_id)
    initial_agreement_id: str = ""  # the first agreement of the renewal chain
    was_active: bool = False  # Marketplace ever confirmed it (a license never active is never billed)
    # The final hour: from License Deprovisioned (unsubscribe-pending) Marketplace takes usage stamped before
    # `final_hour_from` until `final_hour_until`.
    final_hour_from: float | None = None
    final_hour_until: float | None = None

    def view(self) -> dict[str, Any]:
        return {
            "productCode": self.product_code,
            "customerAWSAccountId": self.customer_aws_account_id,
            "licenseArn": self.license_arn,
            "agreementId": self.agreement_id,
            "initialAgreementId": self.initial_agreement_id,
            "offerId": self.offer_id,
            "customerIdentifier": self.customer_identifier,
            "status": self.status,
            "offerType": self.offer_type,
            "entitlements": self.entitlements,
            "createdAt": datetime.fromtimestamp(self.created_at, UTC).isoformat(),
            "finalUsageUntil": (
                datetime.fromtimestamp(self.final_hour_until, UTC).isoformat()
                if self.final_hour_until is not None
                else None
            ),
        }

    def takes_usage(self, timestamp: float, now: float) -> bool:
        """Whether BatchMeterUsage bills this license's usage stamped `timestamp`, at `now`.

        Active: yes. After License Deprovisioned / unsubscribe-pending: for one more hour, usage from before
        the cancellation (MARKETPLACE.md "Metering": "after `unsubscribe-pending` (SNS) or `License
        Deprovisioned` (EventBridge) the seller has about 1 hour to send final records"). Usage stamped after
        the cancellation is not the buyer's any more. A license that was never active: never.
        """
        if self.status == "active":
            return True
        if not self.was_active or self.final_hour_from is None or self.final_hour_until is None:
            return False
        return timestamp < self.final_hour_from and now < self.final_hour_until


@dataclass
class AgreementRecord:
    """One purchase agreement as AWS Marketplace keeps it: what the Agreement API answers from.

    Unlike `Agreement` (what an event showed at the time) it changes: its status and `last_update_ms` move
    when the buyer cancels, when a renewal replaces it, when its payment fails. A renewal is a new record in
    the same chain (`initial_agreement_id`); a purchase after an agreement ended starts a new chain.
    """

    agreement_id: str
    subscription: Subscription = field(repr=False, compare=False)  # the license it grants
    product_id: str
    proposer_account_id: str
    offer_id: str
    status: str  # AgreementStatus: ACTIVE, CANCELLED, RENEWED, TERMINATED
    acceptance_ms: int  # acceptanceTime = startTime (no future-dated agreements)
    end_ms: int | None  # None: pay-as-you-go, no end date
    last_update_ms: int
    initial_agreement_id: str
    end_time_behavior: str | None  # RENEW for contracts (the emulator renews them); None without an end
    sequence: int  # creation order: ties in a sort keep it


@dataclass(frozen=True)
class AgreementView:
    """An agreement and the state of the license it grants, read at one moment (see agreement_views)."""

    agreement_id: str
    product_code: str
    product_id: str
    acceptor_account_id: str
    proposer_account_id: str
    offer_id: str
    license_arn: str
    status: str
    acceptance_ms: int
    end_ms: int | None
    last_update_ms: int
    initial_agreement_id: str
    end_time_behavior: str | None
    sequence: int
    entitlement_status: str  # AgreementEntitlementStatus
    entitlement_reason: str  # AgreementEntitlementStatusReasonCode


@dataclass(frozen=True)
class Notice:
    """One notification Marketplace sends about a license: on which channel, what, and when.

    `name` is the EventBridge detail-type or the SNS action; `at_ms` the event's time (epoch milliseconds,
    the emulator's clock). A `deferred` one (License Deprovisioned, a gap after Purchase Agreement Ended) is
    delivered when its time comes; the others at once.
    """

    channel: Literal["eventbridge", "sns"]
    name: str
    at_ms: int
    subscription: Subscription
    agreement: Agreement
    deferred: bool = False


@dataclass
class Token:
    subscription: Subscription
    expires_at: float


@dataclass(frozen=True)
class Allocation:
    quantity: Decimal
    tags: tuple[tuple[str, str], ...]  # (key, value) in the order sent

    def view(self) -> dict[str, Any]:
        return {
            "quantity": decimal_text(self.quantity),
            "tags": [{"Key": key, "Value": value} for key, value in self.tags],
        }


@dataclass
class BilledRecord:
    product_code: str
    customer: str  # the identity the record named: account id, or customer identifier for legacy
    identity_type: str  # "CustomerAWSAccountId" or "CustomerIdentifier"
    license_arn: str  # the license billed (named by the record, or the one its identity resolved to)
    dimension: str
    hour: int  # epoch seconds of the usage hour
    quantity: Decimal
    allocations: list[Allocation]
    metering_record_id: str
    status: str
    timestamp: float
    product_code_sent: bool  # the request also named ProductCode (AWS then bills twice; see _identify)

    def same_usage(self, quantity: Decimal, allocations: list[Allocation]) -> bool:
        """Quantities compare by value (17 = 17.0 = 17.00), allocations as a set of buckets."""
        return self.quantity == quantity and _bucket_set(self.allocations) == _bucket_set(allocations)

    def view(self) -> dict[str, Any]:
        return {
            "productCode": self.product_code,
            "identityType": self.identity_type,
            "customer": self.customer,
            "licenseArn": self.license_arn,
            "dimension": self.dimension,
            "hour": datetime.fromtimestamp(self.hour, UTC).isoformat(),
            "quantity": decimal_text(self.quantity),
            "allocations": [allocation.view() for allocation in self.allocations],
            "meteringRecordId": self.metering_record_id,
            "status": self.status,
            "productCodeSent": self.product_code_sent,
        }


@dataclass
class Faults:
    throttle_calls: set[int] = field(default_factory=set)  # 1-based call numbers to throttle
    throttle_every: int = 0  # throttle every Nth call (0: never)
    unprocessed_share: float = 0.0
    latency_ms: int = 0
    operations: set[str] = field(default_factory=set)  # empty: every operation

    def applies_to(self, operation: str) -> bool:
        return not self.operations or operation in self.operations


class Marketplace:
    """Thread-safe state; every public method takes the lock."""

    def __init__(
        self,
        *,
        token_lifetime_seconds: float = DEFAULT_TOKEN_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.RLock()
        self._base_clock = clock
        self.clock_offset = 0.0
        self.token_lifetime_seconds = token_lifetime_seconds
        self.reset()

    def now(self) -> float:
        return self._base_clock() + self.clock_offset

    def reset(self) -> None:
        with self._lock:
            self.products: dict[str, Product] = {}
            # Every license, in the order they were created (the newest last); found by LicenseArn by
            # looking, not by a key, so a test may give a subscription another LicenseArn.
            self.subscriptions: list[Subscription] = []
            self.tokens: dict[str, Token] = {}
            self.billed: dict[tuple[str, str, str, str, str, int], BilledRecord] = {}
            self.faults = Faults()
            self.calls = 0
            self.events: list[dict[str, Any]] = []
            self.clock_offset = 0.0
            self._last_event_ms: dict[str, int] = {}  # per license
            # Every purchase agreement ever made, by id, in the order they were made.
            self.agreements: dict[str, AgreementRecord] = {}
            # Signs the Agreement API's page tokens (opaque to callers, checked when they come back).
            self.page_token_key = secrets.token_bytes(32)

    # --- admin -------------------------------------------------------------------------------------

    def put_product(self, data: dict[str, Any]) -> Product:
        code = _text(data, "productCode")
        pricing = data.get("pricingModel", "subscription")
        if pricing not in PRICING_MODELS:
            raise AdminError(f"pricingModel: one of {', '.join(PRICING_MODELS)}")
        dimensions = data.get("dimensions", [])
        if not isinstance(dimensions, list):
            raise AdminError("dimensions: a list of names or of {name, types?} (it may be empty)")
        declared: dict[str, tuple[str, ...]] = {}
        for item in dimensions:
            name, types = _dimension(item, DEFAULT_DIMENSION_TYPES[pricing])
            if name in declared:
                raise AdminError(f"dimensions: {name!r} is declared twice")
            declared[name] = types
        legacy, resold = data.get("legacy", False), data.get("resold", False)
        if not isinstance(legacy, bool):
            raise AdminError("legacy: true or false")
        if not isinstance(resold, bool):
            raise AdminError(
                "resold: true (sold through a channel partner: - Manufacturer agreement events) or false"
            )
        product = Product(code, declared, pricing, legacy, resold)
        with self._lock:
            self.products[code] = product
        return product

    def subscribe(self, data: dict[str, Any]) -> tuple[Subscription, str]:
        """Find (or create) the buyer's license and mint a new registration token for it.

        Without `newAgreement` the account's existing license is reused (a buyer who unsubscribes and
        subscribes again keeps the same identity); if it holds several, the newest. With `newAgreement: true`
        the account gets another license and agreement (concurrent agreements).
        """
        code = _text(data, "productCode")
        account = data.get("customerAWSAccountId") or f"{secrets.randbelow(10**12):012d}"
        if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
            raise AdminError("customerAWSAccountId: 12 digits")
        status = data.get("status", "active")
        if status not in ("active", "pending"):
            raise AdminError("status: active or pending")
        new_agreement = data.get("newAgreement", False)
        if not isinstance(new_agreement, bool):
            raise AdminError("newAgreement: true or false")
        entitlements = data.get("entitlements", [])
        if not isinstance(entitlements, list) or not all(
            isinstance(item, dict) and isinstance(item.get("dimension"), str) for item in entitlements
        ):
            raise AdminError("entitlements: a list of {dimension, value, expirationDate?}")
        with self._lock:
            product = self.products.get(code)
            if product is None:
                raise AdminError(
                    f"productCode: no product {code!r}; create it with POST /_emulator/products", 404
                )
            held = self.licenses(code, account)
            if held and not new_agreement:
                subscription = held[-1]
                if subscription.status in ("cancelled", "failed", "cancel-pending"):
                    # Subscribing again. During the final hour too: "If a buyer unsubscribes and then
                    # immediately successfully re-subscribes before the final unsubscribe-success message is
                    # sent, ... a subscribe-success message will be sent instead" (saas-notification).
                    subscription.status = status
                    subscription.final_hour_from = subscription.final_hour_until = None
                if "entitlements" in data:
                    subscription.entitlements = entitlements
                if "offerType" in data:
                    subscription.offer_type = data["offerType"]
            else:
                if held and product.legacy:
                    # Concurrent agreements need the new identity (BatchMeterUsage documentation: new SaaS
                    # products "must use CustomerAWSAccountId ..., LicenseArn ... to support this feature");
                    # a CustomerIdentifier could not tell two licenses of one account apart.
                    raise AdminError(
                        f"newAgreement: {code} is a legacy product (CustomerIdentifier + ProductCode); "
                        "concurrent agreements need products metered by CustomerAWSAccountId + LicenseArn",
                        409,
                    )
                license_id = secrets.token_hex(16)
                agreement = self._new_agreement(product, f"agmt-{license_id[:24]}", "NEW")
                subscription = Subscription(
                    product_code=code,
                    customer_aws_account_id=account,
                    license_arn=f"arn:aws:license-manager::{SELLER_ACCOUNT}:license:l-{license_id}",
                    agreement_id=agreement.agreement_id,
                    customer_identifier=secrets.token_urlsafe(8),
                    status=status,
                    offer_type=data.get("offerType"),
                    created_at=self.now(),
                    entitlements=entitlements,
                    offer_id="offer-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(13)),
                    agreement=agreement,
                    initial_agreement_id=agreement.agreement_id,
                )
                self.subscriptions.append(subscription)
                self._record_agreement(subscription, agreement)
            if subscription.status == "active":
                subscription.was_active = True
            token = secrets.token_urlsafe(48)
            self.tokens[token] = Token(subscription, self.now() + self.token_lifetime_seconds)
            return subscription, token

    def licenses(self, product_code: str, account: str) -> list[Subscription]:
        """The account's licenses of the product, oldest first."""
        with self._lock:
            return [
                s
                for s in self.subscriptions
                if s.product_code == product_code and s.customer_aws_account_id == account
            ]

    def license(self, license_arn: str) -> Subscription | None:
        with self._lock:
            return next((s for s in self.subscriptions if s.license_arn == license_arn), None)

    def find_subscription(
        self, product_code: str, account: str | None, license_arn: str | None
    ) -> Subscription:
        """The license an admin request means: named by `license_arn`, or the account's only one."""
        with self._lock:
            if license_arn is not None:
                subscription = self.license(license_arn)
                if subscription is None or subscription.product_code != product_code:
                    raise AdminError(f"no license {license_arn} of {product_code}", 404)
                if account is not None and subscription.customer_aws_account_id != account:
                    raise AdminError(f"license {license_arn} is not held by {account}", 404)
                return subscription
            if account is None:
                raise AdminError("customerAWSAccountId or licenseArn is required")
            held = self.licenses(product_code, account)
            if not held:
                raise AdminError(f"no subscription of {account} to {product_code}", 404)
            if len(held) > 1:
                raise AdminError(
                    f"{account} holds {len(held)} licenses of {product_code}; name one with licenseArn: "
                    + ", ".join(s.license_arn for s in held),
                    409,
                )
            return held[0]

    # --- the subscription lifecycle ----------------------------------------------------------------

    def lifecycle_event(
        self,
        subscription: Subscription,
        kind: str,
        ended_to_deprovisioned_seconds: float = DEFAULT_ENDED_TO_DEPROVISIONED_SECONDS,
    ) -> list[Notice]:
        """Make `kind` happen to the license; the notifications Marketplace sends about it, in order.

        EventBridge (every product) as the seller guide documents it (tests/fixtures/marketplace_events):
        agreement events `- Proposer` for a seller who is also the proposer, `- Manufacturer` for a resold
        product; license events `- Manufacturer`. SNS only for legacy products.

        - subscribe-success: `Purchase Agreement Created` (intent NEW), then `License Updated`. Again for an
          active license (Marketplace repeats it, e.g. for an accepted agreement-based offer); after the
          agreement ended, for a new agreement of the same license.
        - subscribe-fail (a pending license: a failed payment): no EventBridge event is documented for a
          failed subscription. No agreement was announced (a pending license has had no `Purchase Agreement
          Created`), so no agreement can end; what remains is the license, which is withdrawn:
          `License Deprovisioned` alone (a license deprovisioned without ever being active is a failure).
        - unsubscribe-pending: `Purchase Agreement Ended` (status CANCELLED) at once, then
          `License Deprovisioned`, which opens the final hour, `ended_to_deprovisioned_seconds` later
          (MARKETPLACE.md: Ended "arrives first (seconds to minutes before Deprovisioned)").
        - unsubscribe-success: from cancel-pending, nothing more on EventBridge (the final hour's end has no
          event) and the final hour closes now (saas-notification: "signals the completion of cancellation,
          after which no further metering records will be accepted"). Directly from active, the whole
          cancellation: Ended, then Deprovisioned as for unsubscribe-pending, and the final hour follows
          Deprovisioned as there (an assumption: AWS always announces the cancellation before completing it,
          and MARKETPLACE.md gives every cancellation its final hour, so a final flush is still billed).
        - entitlement-updated: `License Updated`; SNS `entitlement-updated` on the entitlement topic, which
          only contract pricing has.
        - renew: a new agreement in the same chain for the same license: `Purchase Agreement Created`
          (intent RENEW, previousAgreementId) for the new one, then `Purchase Agreement Ended` (status
          RENEWED) for the old one; the license stays active and billed. SNS: `entitlement-updated` for
          contract pricing ("regardless of the action (new, upgrade, renewal, or expired), the message is the
          same", saas-notification).

        Event times are milliseconds and strictly increasing, so events of one second keep their order.
        """
        if kind not in LIFECYCLE_EVENTS:
            raise AdminError(f"type: one of {', '.join(LIFECYCLE_EVENTS)}")
        with self._lock:
            product = self.products[subscription.product_code]
            role = product.agreement_role
            status = subscription.status
            notices: list[Notice] = []
            gap_ms = round(ended_to_deprovisioned_seconds * 1000)

            def send(channel: Literal["eventbridge", "sns"], name: str, agreement: Agreement) -> int:
                at_ms = self._next_event_ms(subscription.license_arn)
                notices.append(Notice(channel, name, at_ms, subscription, agreement))
                return at_ms

            def sns(action: str) -> None:
                if product.legacy:
                    send("sns", action, current)

            def deprovision_later(ended_ms: int) -> int:
                """License Deprovisioned, the gap after Ended (delivered when its time comes)."""
                if gap_ms <= 0:
                    return send("eventbridge", "License Deprovisioned - Manufacturer", current)
                at_ms = ended_ms + gap_ms
                notices.append(
                    Notice(
                        "eventbridge",
                        "License Deprovisioned - Manufacturer",
                        at_ms,
                        subscription,
                        current,
                        deferred=True,
                    )
                )
                return at_ms

            def refuse(what: str) -> AdminError:
                return AdminError(f"{kind}: the license {subscription.license_arn} is {status}; {what}", 409)

            current = subscription.agreement or self._new_agreement(product, subscription.agreement_id, "NEW")
            if kind == "subscribe-success":
                if current.status != "ACTIVE":
                    # Subscribing again after the agreement ended: a new purchase, a new agreement (an ended
                    # agreement stays ended); the license, and so the buyer's identity, stays.
                    current = self._new_agreement(product, f"agmt-{secrets.token_hex(12)}", "NEW")
                    subscription.agreement_id = subscription.initial_agreement_id = current.agreement_id
                    self._record_agreement(subscription, current)
                subscription.status, subscription.was_active, subscription.agreement = "active", True, current
                subscription.final_hour_from = subscription.final_hour_until = None
                send("eventbridge", f"Purchase Agreement Created - {role}", current)
                send("eventbridge", "License Updated - Manufacturer", current)
                sns("subscribe-success")
            elif kind == "subscribe-fail":
                if status not in ("pending", "failed"):
                    raise refuse("subscribe-fail is for a subscription that never started (a failed payment)")
                subscription.status = "failed"
                failed_ms = send("eventbridge", "License Deprovisioned - Manufacturer", current)
                sns("subscribe-fail")
                # The purchase is withdrawn: its agreement ends "because of an AWS termination (for example, a
                # payment failure)" (the model's DescribeAgreement status). One already ended stays as it is.
                self._agreement_changed(current.agreement_id, "TERMINATED", failed_ms, only_from="ACTIVE")
            elif kind == "unsubscribe-pending" or (kind == "unsubscribe-success" and status == "active"):
                if status != "active":
                    raise refuse("only an active license can be cancelled")
                ended = replace(current, status="CANCELLED")
                subscription.agreement = ended
                ended_ms = send("eventbridge", f"Purchase Agreement Ended - {role}", ended)
                self._agreement_changed(current.agreement_id, "CANCELLED", ended_ms)
                sns(kind)
                deprovisioned_ms = deprovision_later(ended_ms)
                subscription.status = "cancel-pending" if kind == "unsubscribe-pending" else "cancelled"
                subscription.final_hour_from = deprovisioned_ms / 1000
                subscription.final_hour_until = subscription.final_hour_from + FINAL_HOUR_SECONDS
            elif kind == "unsubscribe-success":
                if status != "cancel-pending":
                    raise refuse("only an active or cancel-pending license can be cancelled")
                subscription.status = "cancelled"
                if subscription.final_hour_until is not None:
                    subscription.final_hour_until = min(subscription.final_hour_until, self.now())
                sns("unsubscribe-success")
            elif kind == "entitlement-updated":
                if status in ("pending", "failed"):
                    raise refuse("Marketplace announces entitlements of a license that was confirmed")
                send("eventbridge", "License Updated - Manufacturer", current)
                if product.has_contract:
                    sns("entitlement-updated")
            else:  # renew
                if status != "active":
                    raise refuse("only an active license renews")
                renewed = self._new_agreement(
                    product, f"agmt-{secrets.token_hex(12)}", "RENEW", previous=current.agreement_id
                )
                subscription.agreement, subscription.agreement_id = renewed, renewed.agreement_id
                self._record_agreement(subscription, renewed)
                send("eventbridge", f"Purchase Agreement Created - {role}", renewed)
                ended_ms = send(
                    "eventbridge", f"Purchase Agreement Ended - {role}", replace(current, status="RENEWED")
                )
                self._agreement_changed(current.agreement_id, "RENEWED", ended_ms)
                current = renewed
                if product.has_contract:
                    sns("entitlement-updated")
            return notices

    def _new_agreement(
        self, product: Product, agreement_id: str, intent: str, previous: str | None = None
    ) -> Agreement:
        accepted_ms = int(self.now() * 1000)
        ends_ms = accepted_ms + CONTRACT_DAYS * 86_400_000 if product.has_contract else NO_END_TIME_MS
        return Agreement(agreement_id, "ACTIVE", intent, accepted_ms, ends_ms, previous)

    def _record_agreement(self, subscription: Subscription, agreement: Agreement) -> None:
        """Keep a new agreement of the license (the first of its chain unless it is a renewal)."""
        product = self.products[subscription.product_code]
        self.agreements[agreement.agreement_id] = AgreementRecord(
            agreement_id=agreement.agreement_id,
            subscription=subscription,
            product_id=product.product_id,
            proposer_account_id=CHANNEL_PARTNER_ACCOUNT if product.resold else SELLER_ACCOUNT,
            offer_id=subscription.offer_id,
            status=agreement.status,
            acceptance_ms=agreement.accepted_at_ms,
            end_ms=agreement.ends_at_ms if product.has_contract else None,
            last_update_ms=agreement.accepted_at_ms,
            initial_agreement_id=subscription.initial_agreement_id,
            end_time_behavior="RENEW" if product.has_contract else None,
            sequence=len(self.agreements),
        )

    def _agreement_changed(
        self, agreement_id: str, status: str, at_ms: int, only_from: str | None = None
    ) -> None:
        """The agreement's new status; its lastUpdateTime moves (always forward, so a change is seen)."""
        record = self.agreements.get(agreement_id)
        if (
            record is None
            or record.status == status
            or (only_from is not None and record.status != only_from)
        ):
            return
        record.status = status
        record.last_update_ms = max(at_ms, record.last_update_ms + 1)

    def agreement_views(self) -> list[AgreementView]:
        """Every agreement, oldest first, with the state of the license it grants now."""
        with self._lock:
            now = self.now()
            views = []
            for record in self.agreements.values():
                subscription = record.subscription
                status, reason = _entitlement_status(record, now)
                views.append(
                    AgreementView(
                        agreement_id=record.agreement_id,
                        product_code=subscription.product_code,
                        product_id=record.product_id,
                        acceptor_account_id=subscription.customer_aws_account_id,
                        proposer_account_id=record.proposer_account_id,
                        offer_id=record.offer_id,
                        license_arn=subscription.license_arn,
                        status=record.status,
                        acceptance_ms=record.acceptance_ms,
                        end_ms=record.end_ms,
                        last_update_ms=record.last_update_ms,
                        initial_agreement_id=record.initial_agreement_id,
                        end_time_behavior=record.end_time_behavior,
                        sequence=record.sequence,
                        entitlement_status=status,
                        entitlement_reason=reason,
                    )
                )
            return views

    def _next_event_ms(self, license_arn: str) -> int:
        """Now, in epoch milliseconds, and always after the previous event's time for the same license (so a
        license's events keep their order; another license's, played with the clock moved back, need not)."""
        at_ms = max(int(self.now() * 1000), self._last_event_ms.get(license_arn, 0) + 1)
        self._last_event_ms[license_arn] = at_ms
        return at_ms

    def set_faults(self, data: dict[str, Any]) -> Faults:
        share = float(data.get("unprocessedShare", 0))
        if not 0 <= share <= 1:
            raise AdminError("unprocessedShare: between 0 and 1")
        faults = Faults(
            throttle_calls={int(n) for n in data.get("throttleCalls", [])},
            throttle_every=int(data.get("throttleEvery", 0)),
            unprocessed_share=share,
            latency_ms=int(data.get("latencyMs", 0)),
            operations=set(data.get("operations", [])),
        )
        with self._lock:
            self.faults = faults
            self.calls = 0
        return faults

    def billed_records(self, product_code: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                record.view()
                for record in self.billed.values()
                if product_code is None or record.product_code == product_code
            ]

    # --- the APIs ----------------------------------------------------------------------------------

    def before_call(self, operation: str) -> float:
        """Count the call, apply injected throttling; returns the latency to add, in seconds."""
        with self._lock:
            faults = self.faults
            if not faults.applies_to(operation):
                return 0.0
            self.calls += 1
            throttled = self.calls in faults.throttle_calls or (
                faults.throttle_every > 0 and self.calls % faults.throttle_every == 0
            )
        if throttled:
            raise ApiError("ThrottlingException", "Rate exceeded (injected by the emulator)")
        return faults.latency_ms / 1000

    def resolve_customer(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request["RegistrationToken"]
        with self._lock:
            found = self.tokens.get(token)
            if found is None:
                raise ApiError("InvalidTokenException", "The registration token is invalid")
            if self.now() >= found.expires_at:
                raise ApiError("ExpiredTokenException", "The registration token has expired")
            subscription = found.subscription
            product = self.products[subscription.product_code]
        result: dict[str, Any] = {
            "CustomerAWSAccountId": subscription.customer_aws_account_id,
            "ProductCode": subscription.product_code,
            "LicenseArn": subscription.license_arn,
            # ResolveCustomerResult.Metadata (the model): the agreement EventBridge agreement events name.
            "Metadata": {"AgreementId": subscription.agreement_id},
        }
        if product.legacy:
            # "For new SaaS product integrations, the CustomerIdentifier field is not populated."
            result["CustomerIdentifier"] = subscription.customer_identifier
        return result

    def batch_meter_usage(self, request: dict[str, Any]) -> dict[str, Any]:
        records: list[dict[str, Any]] = request["UsageRecords"]
        if len(records) > MAX_RECORDS_PER_CALL:  # also in the shape; kept for callers that skip it
            raise ApiError(
                "ValidationException",
                f"UsageRecords: at most {MAX_RECORDS_PER_CALL} records per call, got {len(records)}",
            )
        if not records:
            # The model allows an empty list (UsageRecordList min 0): nothing to bill.
            return {"Results": [], "UnprocessedRecords": []}
        with self._lock:
            now = self.now()
            product_code = request.get("ProductCode")
            resolved = [self._identify(record, product_code) for record in records]
            products = {product.product_code for product, _ in resolved}
            if len(products) > 1:
                raise ApiError(
                    "ValidationException",
                    "All usage records of one call must be for one product, got "
                    + ", ".join(sorted(products)),
                )
            moment = datetime.fromtimestamp(now, UTC)
            for record in records:
                if not window_allows(_timestamp(record["Timestamp"]), moment):
                    raise ApiError(
                        "TimestampOutOfBoundsException",
                        f"Timestamp {_timestamp(record['Timestamp']).isoformat()} is outside the metering "
                        "window: it must not be in the future, must be less than 24 hours old, and the "
                        "previous month's usage is accepted only until 06:00 UTC on the 1st",
                    )
            product = resolved[0][0]
            usage = [_usage(record, product) for record in records]
            share = self.faults.unprocessed_share if self.faults.applies_to("BatchMeterUsage") else 0.0
            unprocessed_count = math.floor(share * len(records))
            processed = len(records) - unprocessed_count
            results = [
                self._bill(
                    record, product, subscription, quantity, allocations, product_code is not None, now
                )
                for record, (_, subscription), (quantity, allocations) in zip(
                    records[:processed], resolved, usage, strict=False
                )
            ]
            return {"Results": results, "UnprocessedRecords": records[processed:]}

    def _identify(
        self, record: dict[str, Any], product_code: str | None
    ) -> tuple[Product, Subscription | None]:
        """The product and license a record is for (None: no license, so CustomerNotSubscribed)."""
        has_account = "CustomerAWSAccountId" in record
        has_identifier = "CustomerIdentifier" in record
        if has_account and has_identifier:
            raise ApiError(
                "ValidationException",
                "CustomerIdentifier and CustomerAWSAccountId are mutually exclusive in a usage record",
            )
        if not has_account and not has_identifier:
            raise ApiError(
                "ValidationException",
                "Each usage record names its customer by CustomerAWSAccountId (with LicenseArn) or, for "
                "existing integrations, by CustomerIdentifier (with the request's ProductCode)",
            )
        if has_identifier:
            if "LicenseArn" in record:
                raise ApiError(
                    "ValidationException",
                    "CustomerIdentifier records identify the product by ProductCode, not LicenseArn",
                )
            if product_code is None:
                raise ApiError("ValidationException", "ProductCode is required with CustomerIdentifier")
            product = self._product(product_code)
            subscription = next(
                (
                    s
                    for s in self.subscriptions
                    if s.product_code == product_code
                    and s.customer_identifier == record["CustomerIdentifier"]
                ),
                None,
            )
            if subscription is None:
                raise ApiError("InvalidCustomerIdentifierException", "Unknown CustomerIdentifier")
            return product, subscription
        account = record["CustomerAWSAccountId"]
        license_arn = record.get("LicenseArn")
        if license_arn is None:
            # Integrations from before LicenseArn existed send CustomerAWSAccountId + ProductCode. That names
            # a license only while the account holds one.
            if product_code is None:
                raise ApiError("ValidationException", "LicenseArn (or the request's ProductCode) is required")
            product = self._product(product_code)
            held = self.licenses(product_code, account)
            if len(held) > 1:
                raise ApiError(
                    "ValidationException",
                    f"CustomerAWSAccountId {account} holds {len(held)} licenses of {product_code}: name one "
                    "with LicenseArn",
                )
            return product, held[0] if held else None
        subscription = self.license(license_arn)
        if subscription is None:
            raise ApiError("InvalidLicenseException", f"LicenseArn {license_arn} is not a known license")
        if subscription.customer_aws_account_id != account:
            raise ApiError(
                "InvalidLicenseException",
                f"LicenseArn {license_arn} is not a license of CustomerAWSAccountId {account}",
            )
        if product_code is not None:
            # AWS accepts ProductCode together with LicenseArn, although "it will result in duplicate
            # billing" (MARKETPLACE.md); the project never sends both. The emulator bills once and marks the
            # billed record (productCodeSent) so a test can catch a caller that does.
            product = self._product(product_code)
            if subscription.product_code != product_code:
                raise ApiError(
                    "InvalidLicenseException",
                    f"LicenseArn {license_arn} is a license of {subscription.product_code}, "
                    f"not of {product_code}",
                )
        return self._product(subscription.product_code), subscription

    def _product(self, product_code: str) -> Product:
        product = self.products.get(product_code)
        if product is None:
            raise ApiError("InvalidProductCodeException", f"Unknown product code {product_code}")
        return product

    def _bill(
        self,
        record: dict[str, Any],
        product: Product,
        subscription: Subscription | None,
        quantity: Decimal,
        allocations: list[Allocation],
        product_code_sent: bool,
        now: float,
    ) -> dict[str, Any]:
        timestamp = _timestamp(record["Timestamp"]).timestamp()
        hour = int(timestamp // 3600 * 3600)
        if subscription is None or not subscription.takes_usage(timestamp, now):
            return {"UsageRecord": record, "Status": "CustomerNotSubscribed"}
        identity_type = "CustomerAWSAccountId" if "CustomerAWSAccountId" in record else "CustomerIdentifier"
        customer = record[identity_type]
        # Per license: two licenses of one account are two buyers ("PER LICENSE, not per account").
        key = (
            product.product_code,
            identity_type,
            customer,
            subscription.license_arn,
            record["Dimension"],
            hour,
        )
        existing = self.billed.get(key)
        if existing is not None:
            if existing.same_usage(quantity, allocations):
                # An identical request is idempotent: same result, billed once.
                return {
                    "UsageRecord": record,
                    "MeteringRecordId": existing.metering_record_id,
                    "Status": "Success",
                }
            return {"UsageRecord": record, "Status": "DuplicateRecord"}
        billed = BilledRecord(
            product_code=product.product_code,
            customer=customer,
            identity_type=identity_type,
            license_arn=subscription.license_arn,
            dimension=record["Dimension"],
            hour=hour,
            quantity=quantity,
            allocations=allocations,
            metering_record_id=str(uuid.uuid4()),
            status="Success",
            timestamp=timestamp,
            product_code_sent=product_code_sent,
        )
        self.billed[key] = billed
        return {"UsageRecord": record, "MeteringRecordId": billed.metering_record_id, "Status": "Success"}

    def get_entitlements(self, request: dict[str, Any]) -> dict[str, Any]:
        code = request["ProductCode"]
        filters: dict[str, list[str]] = request.get("Filter", {})
        max_results = request.get("MaxResults", ENTITLEMENTS_PAGE_SIZE)
        start = 0
        if "NextToken" in request:
            try:
                start = int(request["NextToken"].removeprefix("page-"))
            except ValueError:
                raise ApiError("InvalidParameterException", "NextToken is not valid") from None
        with self._lock:
            if code not in self.products:
                # InvalidParameterException is the only client error GetEntitlements declares.
                raise ApiError("InvalidParameterException", f"Unknown ProductCode {code}")
            found = []
            for subscription in self.subscriptions:
                if subscription.product_code != code or subscription.status not in BILLABLE:
                    continue
                if not _passes(filters, "CUSTOMER_AWS_ACCOUNT_ID", subscription.customer_aws_account_id):
                    continue
                if not _passes(filters, "CUSTOMER_IDENTIFIER", subscription.customer_identifier):
                    continue
                if not _passes(filters, "LICENSE_ARN", subscription.license_arn):
                    continue
                for item in subscription.entitlements:
                    if _passes(filters, "DIMENSION", item["dimension"]):
                        found.append(_entitlement(subscription, item))
        page = found[start : start + max_results]
        result: dict[str, Any] = {"Entitlements": page}
        if start + max_results < len(found):
            result["NextToken"] = f"page-{start + max_results}"
        return result


def _entitlement_status(record: AgreementRecord, now: float) -> tuple[str, str]:
    """What GetAgreementEntitlements says of the agreement's license, and why (the model's enums).

    - PENDING (PROVISIONING_IN_PROGRESS): the agreement is active, its license not confirmed yet (pending).
    - PROVISIONED (AGREEMENT_ACTIVE): the agreement is the license's current one, active, the license active.
    - PROVISIONED (AGREEMENT_INACTIVE): cancelled, but the license is in its final hour (its usage is still
      taken: Subscription.takes_usage).
    - FAILED (INVALID_PAYMENT_INSTRUMENT): the purchase failed (subscribe-fail: a failed payment).
    - DEPROVISIONED (AGREEMENT_INACTIVE): anything else: it ended, or a renewal or a new purchase took over.
    """
    subscription = record.subscription
    current = subscription.agreement_id == record.agreement_id
    if record.status == "TERMINATED":
        return "FAILED", "INVALID_PAYMENT_INSTRUMENT"
    if current and record.status == "ACTIVE":
        if subscription.status == "pending":
            return "PENDING", "PROVISIONING_IN_PROGRESS"
        if subscription.status == "active":
            return "PROVISIONED", "AGREEMENT_ACTIVE"
    in_final_hour = (
        subscription.was_active
        and subscription.status in ("cancel-pending", "cancelled")
        and subscription.final_hour_until is not None
        and now < subscription.final_hour_until
    )
    if current and in_final_hour:
        return "PROVISIONED", "AGREEMENT_INACTIVE"
    return "DEPROVISIONED", "AGREEMENT_INACTIVE"


def decimal_text(value: Decimal) -> str:
    """A quantity as a normalized decimal string: "17.42", "17" for 17.00, "0" for zero."""
    return format(value.normalize(), "f")


def _bucket_set(allocations: list[Allocation]) -> list[tuple[tuple[tuple[str, str], ...], Decimal]]:
    return sorted((tuple(sorted(allocation.tags)), allocation.quantity) for allocation in allocations)


def _passes(filters: dict[str, list[str]], name: str, value: str) -> bool:
    return name not in filters or value in filters[name]


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(f"{name}: a non-empty string is required")
    return value


def _dimension(item: Any, default_types: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """A dimension of POST /_emulator/products: a name, or {name, types?} (types default by pricing model)."""
    name: Any
    types = default_types
    if isinstance(item, str):
        name = item
    elif isinstance(item, dict):
        name, given = item.get("name"), item.get("types", list(default_types))
        if not isinstance(given, list) or not given or not all(t in DIMENSION_TYPES for t in given):
            raise AdminError(f"dimensions: types is a non-empty list of {' and/or '.join(DIMENSION_TYPES)}")
        types = tuple(t for t in DIMENSION_TYPES if t in given)
    else:
        raise AdminError("dimensions: each is a name or {name, types?}")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise AdminError("dimensions: each name must be a string of 1-255 characters")
    return name, types


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def _usage(record: dict[str, Any], product: Product) -> tuple[Decimal, list[Allocation]]:
    """The record's quantity and allocations, by value; AWS's rules for dimensions and allocations."""
    dimension = record["Dimension"]
    types = product.dimensions.get(dimension)
    if types is None:
        declared = ", ".join(product.dimensions) or "none"
        raise ApiError(
            "InvalidUsageDimensionException",
            f"Dimension {dimension!r} is not defined for product {product.product_code} (its dimensions: "
            f"{declared})",
        )
    if "ExternallyMetered" not in types:
        raise ApiError(
            "InvalidUsageDimensionException",
            f"Dimension {dimension!r} of {product.product_code} is not metered: its types are "
            f"{', '.join(types)}, not ExternallyMetered",
        )
    if "Quantity" in record and "QuantityAsDecimal" in record:
        # The model: "You can't specify both Quantity and QuantityAsDecimal in a usage record ... If any usage
        # record fails these checks, the entire BatchMeterUsage request fails". It names no error for it, and
        # none of BatchMeterUsage's modeled errors is about a record's quantity, so this is AWS's generic
        # ValidationException (a request that fails a documented constraint); the metering runtime treats it
        # as a final rejection, as it does every modeled record error.
        raise ApiError(
            "ValidationException", "A usage record may carry Quantity or QuantityAsDecimal, not both"
        )
    kind: str | None = None
    quantity = Decimal(0)  # "Defaults to 0 if neither Quantity nor QuantityAsDecimal is specified"
    if "Quantity" in record:
        kind, quantity = "Quantity", Decimal(record["Quantity"])
    elif "QuantityAsDecimal" in record:
        kind, quantity = "QuantityAsDecimal", Decimal(record["QuantityAsDecimal"])
    if "UsageAllocations" not in record:
        return quantity, []
    allocations = []
    allocation_kinds = set()
    for index, item in enumerate(record["UsageAllocations"]):
        # "Allocations must use the same type of quantity as the usage record: AllocatedUsageQuantity with
        # Quantity, or AllocatedUsageQuantityAsDecimal with QuantityAsDecimal" (the model's UsageAllocations).
        given = [
            name for name in ("AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal") if name in item
        ]
        if len(given) != 1:
            raise ApiError(
                "InvalidUsageAllocationsException",
                f"UsageAllocations[{index}] needs exactly one of AllocatedUsageQuantity and "
                "AllocatedUsageQuantityAsDecimal",
            )
        allocation_kinds.add(given[0])
        value = Decimal(item[given[0]])
        if value < 0:  # also refused by the shape (min 0, or the decimal pattern)
            raise ApiError("InvalidUsageAllocationsException", f"UsageAllocations[{index}] is negative")
        tags = tuple((tag["Key"], tag["Value"]) for tag in item.get("Tags", []))
        # No Tags: "For the bucket of items with no tags, this parameter can be left out" (API reference,
        # UsageAllocation); given, Tags has 1-5 tags (the shape).
        allocations.append(Allocation(value, tags))
    if len(allocation_kinds) > 1:
        raise ApiError(
            "InvalidUsageAllocationsException",
            "A record's allocations use one kind of quantity, not both AllocatedUsageQuantity and "
            "AllocatedUsageQuantityAsDecimal",
        )
    wanted = {"Quantity": "AllocatedUsageQuantity", "QuantityAsDecimal": "AllocatedUsageQuantityAsDecimal"}
    if kind is not None and allocation_kinds != {wanted[kind]}:
        raise ApiError(
            "InvalidUsageAllocationsException",
            f"A record with {kind} allocates with {wanted[kind]}, not {allocation_kinds.pop()}",
        )
    total = sum((allocation.quantity for allocation in allocations), Decimal(0))
    if total != quantity:
        raise ApiError(
            "InvalidUsageAllocationsException",
            f"Allocated quantities sum to {decimal_text(total)}, not to the record's quantity "
            f"{decimal_text(quantity)}",
        )
    return quantity, allocations


def _entitlement(subscription: Subscription, item: dict[str, Any]) -> dict[str, Any]:
    value = item.get("value")
    typed: dict[str, Any]
    if isinstance(value, bool):
        typed = {"BooleanValue": value}
    elif isinstance(value, int):
        typed = {"IntegerValue": value}
    elif isinstance(value, float):
        typed = {"DoubleValue": value}
    else:
        typed = {"StringValue": str(value)}
    entitlement: dict[str, Any] = {
        "ProductCode": subscription.product_code,
        "Dimension": item["dimension"],
        "CustomerAWSAccountId": subscription.customer_aws_account_id,
        "CustomerIdentifier": subscription.customer_identifier,
        "LicenseArn": subscription.license_arn,
        "Value": typed,
    }
    if item.get("expirationDate"):
        expires = datetime.fromisoformat(str(item["expirationDate"]))
        entitlement["ExpirationDate"] = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    return entitlement
