"""Subscription lifecycle: AWS Marketplace's notifications move each subscriber between statuses.

    pending ──▶ active ──▶ cancel-pending ──▶ cancelled          pending ──▶ failed

Two channels bring the notifications, both onto the listing's queue:
- EventBridge, source `aws.agreement-marketplace`, in us-east-1
  (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-eventbridge-integration.html).
  `Purchase Agreement Created` → active; `License Updated` → active unless the license has ended (and fresh
  entitlements for contracts: an entitlement change never changes whether a license is active);
  `License Deprovisioned` → cancel-pending: it opens the final hour, in which Marketplace still takes the
  license's usage, so it is sent at once, and the metering job closes the license (cancelled) when the hour
  is over. `Purchase Agreement Ended` is recorded and ends nothing by itself: it comes first, seconds to
  minutes before Deprovisioned, and also when an agreement is renewed or replaced by a new one while the
  buyer stays. Agreement events name no product: they count for the subscriber whose agreement they name
  (ResolveCustomer gives it at registration, license events name it too), or wait for one. A license that
  ends before it was ever active (a failed payment) → failed.
- SNS, for listings that still use it: `subscribe-success` → active, `subscribe-fail` → failed,
  `unsubscribe-pending` → cancel-pending, `unsubscribe-success` → cancelled, `entitlement-updated` →
  fresh entitlements (https://docs.aws.amazon.com/marketplace/latest/userguide/saas-notification.html).

Events can come twice, late, out of order, or before the buyer registers (MARKETPLACE.md). So an event does
not set the status: it records a fact with the time AWS gives it (`activatedAt`, `cancelRequestedAt`,
`cancelledAt`, `failedAt`: the latest of each kind wins), and the status is a pure function of those facts.
Any order of the same events ends in the same status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from marketplace_saas.marketplace import MarketplaceClient
from marketplace_saas.models import (
    AGREEMENT_ENDED_FACT,
    ALL_FACTS,
    BILLABLE_STATUSES,
    ENDED_STATUSES,
    FACTS,
    HELD_KEY,
    PROVISIONED_FACT,
    STATUS_FACTS,
    UNREGISTERED_PREFIX,
    BuyerIdentity,
    SubscriberStatus,
    former_agreement_key,
    held_agreement_key,
    held_customer_key,
    is_held,
    is_placeholder,
    status_of,
)
from marketplace_saas.seller_events import SellerEvents, subscriber_detail
from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import (
    CONDITION_FAILED,
    HeldFacts,
    StoreUnavailable,
    error_code,
    get_consistent,
    pages,
    query_page,
)

AGREEMENT_SOURCE = "aws.agreement-marketplace"
# After License Deprovisioned / unsubscribe-pending, Marketplace accepts the customer's usage for an hour.
FINAL_USAGE_WINDOW_MS = 3600 * 1000
# An agreement event no license event ever claims (another product's) is forgotten after this long.
UNCLAIMED_AGREEMENT_SECONDS = 30 * 24 * 3600

# The fact each notification records (None: only the entitlements may have changed).
EVENTBRIDGE_FACT: dict[str, str | None] = {
    "License Updated": PROVISIONED_FACT,
    "License Deprovisioned": FACTS["cancel-pending"],
    "Purchase Agreement Created": FACTS["active"],
    "Purchase Agreement Amended": None,
    "Purchase Agreement Ended": AGREEMENT_ENDED_FACT,
}
SNS_FACT: dict[str, str | None] = {
    "subscribe-success": FACTS["active"],
    "subscribe-fail": FACTS["failed"],
    "unsubscribe-pending": FACTS["cancel-pending"],
    "unsubscribe-success": FACTS["cancelled"],
    "entitlement-updated": None,
}
SELLER_EVENTS: dict[SubscriberStatus, str] = {
    "active": "subscriber.activated",
    "cancel-pending": "subscriber.cancel-pending",
    "cancelled": "subscriber.deactivated",
    "failed": "subscriber.failed",
}
ENTITLEMENTS_EVENT = "entitlements.updated"


class UnreadableMessage(ValueError):
    """Not a notification this function understands; after the queue's retries it goes to the DLQ."""


@dataclass(frozen=True)
class Notice:
    """One lifecycle notification, whichever channel brought it."""

    fact: str | None  # the fact it records (models.ALL_FACTS); None: only the entitlements changed
    at_ms: int  # when AWS says it happened, epoch milliseconds
    refresh_entitlements: bool
    # "reconciliation": a difference found by comparing with AWS's record of the agreements (reconcile.py)
    channel: Literal["eventbridge", "sns", "reconciliation"]
    name: str  # the detail-type or SNS action, for logs
    product_code: str | None = None
    account: str | None = None
    license_arn: str | None = None
    customer_identifier: str | None = None
    agreement_id: str | None = None
    # A renewal's `Purchase Agreement Created` (intent RENEW) names the agreement it renews.
    previous_agreement_id: str | None = None
    free_trial: bool | None = None
    # A cancellation found after its final hour was over: Marketplace takes none of its usage any more, so
    # nothing is sent (the metering job closes the pending usage as SubscriptionEnded).
    final_hour_over: bool = False


# --- parsing -------------------------------------------------------------------------------------------


def parse(body: str, sent_at_ms: int | None = None) -> Notice | None:
    """The notice in an SQS message body, or None for a kind of event this listing does not act on.

    Bodies are EventBridge events, SNS envelopes (`Type: Notification`) or raw SNS messages.
    """
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        raise UnreadableMessage("the message body is not JSON") from None
    if not isinstance(message, dict):
        raise UnreadableMessage("the message body is not a JSON object")
    if "detail-type" in message:
        return _eventbridge(message)
    if message.get("Type") == "Notification":
        inner = message.get("Message")
        try:
            payload = json.loads(inner) if isinstance(inner, str) else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise UnreadableMessage("the SNS notification's Message is not a JSON object")
        return _sns(payload, _time_ms(message.get("Timestamp"), "Timestamp"))
    if "action" in message:
        if sent_at_ms is None:
            raise UnreadableMessage("a raw SNS message without the queue's SentTimestamp")
        return _sns(message, sent_at_ms)
    raise UnreadableMessage("neither an EventBridge event nor an SNS notification")


def _eventbridge(event: Mapping[str, Any]) -> Notice | None:
    if event.get("source") != AGREEMENT_SOURCE:
        raise UnreadableMessage(f"source: expected {AGREEMENT_SOURCE}, got {event.get('source')!r}")
    detail_type = str(event["detail-type"])
    # "License Updated - Manufacturer", "Purchase Agreement Ended - Proposer": the role does not matter.
    kind = detail_type.rsplit(" - ", 1)[0]
    if kind not in EVENTBRIDGE_FACT:
        return None  # e.g. "Purchase Agreement Ending": nothing changes yet
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise UnreadableMessage(f"{detail_type}: detail is not an object")
    account = _path(detail, "acceptor", "accountId")
    if not account:
        raise UnreadableMessage(f"{detail_type}: detail.acceptor.accountId is missing")
    is_license_event = kind.startswith("License")
    license_arn = _path(detail, "license", "arn")
    product_code = _path(detail, "product", "code")
    if is_license_event and not (license_arn and product_code):
        raise UnreadableMessage(f"{detail_type}: detail.license.arn and detail.product.code are required")
    return Notice(
        fact=EVENTBRIDGE_FACT[kind],
        at_ms=_time_ms(event.get("time"), "time"),
        refresh_entitlements=kind in ("License Updated", "Purchase Agreement Amended"),
        channel="eventbridge",
        name=detail_type,
        product_code=product_code,
        account=account,
        license_arn=license_arn,
        agreement_id=_path(detail, "agreement", "id"),
        previous_agreement_id=_path(detail, "agreement", "previousAgreementId"),
    )


def _sns(message: Mapping[str, Any], at_ms: int) -> Notice:
    action = message.get("action")
    if action not in SNS_FACT:
        raise UnreadableMessage(f"action: {action!r} is not a Marketplace SNS action")
    customer, product = message.get("customer-identifier"), message.get("product-code")
    if not isinstance(customer, str) or not customer or not isinstance(product, str) or not product:
        raise UnreadableMessage(f"{action}: customer-identifier and product-code are required")
    trial = message.get("isFreeTrialTermPresent")
    return Notice(
        fact=SNS_FACT[action],
        at_ms=at_ms,
        refresh_entitlements=action == "entitlement-updated",
        channel="sns",
        name=str(action),
        product_code=product,
        customer_identifier=customer,
        free_trial=str(trial).lower() == "true" if trial is not None else None,
    )


def _path(data: Mapping[str, Any], *keys: str) -> str | None:
    value: Any = data
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None


def _time_ms(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise UnreadableMessage(f"{name}: an ISO 8601 time is required")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnreadableMessage(f"{name}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# --- applying a notice -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one notice did, for the log line and the tests."""

    action: Literal["applied", "ignored"]
    reason: str = ""
    status: SubscriberStatus | None = None
    previous: SubscriberStatus | None = None
    published: list[str] = field(default_factory=list)
    flushed: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "status": self.status,
            "previousStatus": self.previous,
            "published": self.published,
            "flushed": self.flushed,
        }


class Lifecycle:
    def __init__(
        self,
        settings: ListingSettings,
        subscribers_table: Any,
        held_events_table: Any,
        marketplace: MarketplaceClient,
        seller_events: SellerEvents,
        flush: Callable[[tuple[str, str]], None],  # one license: (account, subscriptionKey)
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._table = subscribers_table
        self._held = held_events_table
        self._marketplace = marketplace
        self._seller = seller_events
        self._flush = flush
        self._clock = clock

    def handle(self, notice: Notice) -> Outcome:
        if notice.product_code and notice.product_code != self._settings.product_code:
            return Outcome("ignored", f"product {notice.product_code} is another listing's")
        key = self._key(notice) or self._renewed(notice) or self._hold_agreement(notice)
        if key is None:
            return Outcome("ignored", "held until a license event names this agreement")
        outcome = Outcome("applied")
        item = self._record(key, notice)
        if is_held(key) and key[HELD_KEY].startswith(UNREGISTERED_PREFIX):
            # Held first, then looked for again: a buyer who registered meanwhile has either folded this
            # fact in, or is found now and gets the fact directly (see Subscribers.register).
            registered_key = self._registered_by_customer_identifier(notice)
            if registered_key is not None:
                key, item = registered_key, self._record(registered_key, notice)
        if notice.license_arn and notice.agreement_id:
            item = self._claim_agreement(key, notice.agreement_id) or item
            if not is_held(key) and item.get("agreementId") != notice.agreement_id:
                item = self._follow_agreement(key, notice) or item  # renewed, replaced, bought again
        outcome.previous = item.get("status")
        registered = not is_held(key)
        ending = status_of(item) in ENDED_STATUSES and item.get("status") in BILLABLE_STATUSES
        if registered and ending and not notice.final_hour_over:
            # A billable subscription is ending: send its usage while the stored status still allows it
            # (once `cancelled`, nothing more is metered). A retry after a crash sends it again, idempotently.
            self._flush((key["customerAWSAccountId"], key["subscriptionKey"]))
            outcome.flushed = True
        item = self._converge(key, item, notice, outcome)
        outcome.status = item.get("status")
        if registered and outcome.status == "cancel-pending" and notice.fact == FACTS["cancel-pending"]:
            # The notice that opens the final hour, every time it comes, not only on the change: a retry
            # after a crash must still send the usage. (Other notices in the final hour send nothing early:
            # the license's current hour keeps taking usage until the metering job's next run sends it.)
            self._flush((key["customerAWSAccountId"], key["subscriptionKey"]))
            outcome.flushed = True
        if notice.refresh_entitlements and self._settings.has_entitlements:
            self._refresh_entitlements(key, item, notice, outcome)
        return outcome

    def close_ended(self) -> list[str]:
        """Cancel-pending subscriptions whose final hour is over become cancelled (run by the metering job).

        The EventBridge channel sends nothing when the final hour ends; SNS's `unsubscribe-success` may come
        first, and then this finds nothing to do.
        """
        closed = []
        now_ms = int(self._clock() * 1000)
        request = {
            "IndexName": "byStatus",
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": "cancel-pending"},
        }
        keys = [
            {"customerAWSAccountId": i["customerAWSAccountId"], "subscriptionKey": i["subscriptionKey"]}
            for page in pages(self._query, request)
            for i in page["Items"]
        ]
        for key in keys:
            item = self._get(key)
            if item is None or status_of(item) != "cancel-pending":
                continue
            ends_ms = int(item["cancelRequestedAt"]) + FINAL_USAGE_WINDOW_MS
            if ends_ms > now_ms:
                continue
            notice = Notice(FACTS["cancelled"], ends_ms, False, "eventbridge", "final usage window closed")
            outcome = Outcome("applied", previous=item.get("status"))
            self._converge(key, self._record(key, notice), notice, outcome)
            closed.append(key["customerAWSAccountId"])
        return closed

    def link_agreement(self, key: dict[str, str], notice: Notice) -> Outcome:
        """The license's current agreement is `notice.agreement_id` (a renewal or replacement no license event
        named): record it, then apply what that agreement's events left waiting."""
        item = self._follow_agreement(key, notice)
        if item is None:
            return Outcome("ignored", "this agreement, or a later one, is already the license's")
        outcome = Outcome("applied", previous=item.get("status"))
        item = self._converge(key, item, notice, outcome)
        outcome.status = item.get("status")
        return outcome

    def _follow_agreement(self, key: dict[str, str], notice: Notice) -> dict[str, Any] | None:
        """Move the subscriber on to the agreement a notice names, if AWS's time says it is newer than the
        one recorded (a late event never moves it back); then claim that agreement's held facts. The former
        agreement is kept (`formerAgreementIds`), so its late events (a renewal's `Purchase Agreement
        Ended`, status RENEWED) still find the subscriber. The item after, or None if nothing changed."""
        assert notice.agreement_id is not None
        current = self._get(key)
        former = current.get("agreementId") if current else None
        if current is None or former == notice.agreement_id:
            return None
        values: dict[str, Any] = {":agreement": notice.agreement_id, ":at": notice.at_ms}
        update = "SET agreementId = :agreement, agreementLinkedAt = :at"
        condition = "attribute_not_exists(agreementId)"
        if former:
            values[":former"], values[":formers"] = former, {former}
            update += " ADD formerAgreementIds :formers"
            condition = "agreementId = :former"
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression=update,
                ConditionExpression=(
                    f"{condition} AND (attribute_not_exists(agreementLinkedAt) OR agreementLinkedAt < :at)"
                ),
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise StoreUnavailable(error_code(error)) from None
            return None  # a later agreement is linked, or another notice moved it meanwhile
        return self._claim_agreement(key, notice.agreement_id) or self._get(key)

    # --- agreement events that come before their license event --------------------------------------

    def _hold_agreement(self, notice: Notice) -> dict[str, str] | None:
        """Keep an agreement event no subscriber claims yet; the license event naming its agreement will.

        Written first, then looked for again: a license event that tied the agreement meanwhile has
        either seen this placeholder or is seen now, so the event is never lost between the two. Returns
        the subscriber's key if one claims the agreement now.
        """
        assert notice.agreement_id is not None and notice.account is not None
        self._record(held_agreement_key(notice.agreement_id), notice)
        return self._agreement_subscriber(notice.account, notice.agreement_id)

    def _renewed(self, notice: Notice) -> dict[str, str] | None:
        """A renewal's new agreement: the subscriber of the agreement it renews moves on to it (no license
        event may ever name the new one). The subscriber's key, or None if no subscriber has the old one."""
        if not (notice.previous_agreement_id and notice.account and notice.agreement_id):
            return None
        key = self._agreement_subscriber(notice.account, notice.previous_agreement_id)
        if key is not None:
            self._follow_agreement(key, notice)
        return key

    def _claim_agreement(self, key: dict[str, str], agreement_id: str) -> dict[str, Any] | None:
        """Apply the facts of agreement events that came before this license event, then remove them from
        where they were held; the subscriber's item after, or None if nothing was held."""
        item = None
        places = (
            HeldFacts(self._held, held_agreement_key(agreement_id)),
            HeldFacts(self._table, former_agreement_key(agreement_id, self._settings.product_code)),
        )
        for place in places:
            for _ in range(5):
                held = place.read()
                if held is None:
                    break
                for fact in ALL_FACTS:
                    if fact in held:
                        early = Notice(fact, int(held[fact]), False, "eventbridge", "held agreement event")
                        item = self._record(key, early)
                if place.remove_if_unchanged(held):
                    break
            # Still changing after five tries: it stays until it expires. Whoever changed it looks for the
            # subscriber after holding the fact, finds this one (its agreement is recorded) and records there.
        return item

    # --- finding the subscriber --------------------------------------------------------------------

    def _key(self, notice: Notice) -> dict[str, str] | None:
        legacy = self._settings.legacy_identity
        if notice.account and notice.license_arn:
            identity = BuyerIdentity(notice.account, self._settings.product_code, notice.license_arn, None)
            return {
                "customerAWSAccountId": notice.account,
                "subscriptionKey": identity.subscription_key(legacy),
            }
        if notice.account and notice.agreement_id:
            return self._agreement_subscriber(notice.account, notice.agreement_id)
        if notice.customer_identifier:
            found = self._registered_by_customer_identifier(notice)
            return found or held_customer_key(notice.customer_identifier)
        raise UnreadableMessage(f"{notice.name}: no customer named")

    def _registered_by_customer_identifier(self, notice: Notice) -> dict[str, str] | None:
        found = self._query(
            IndexName="byCustomerIdentifier",
            KeyConditionExpression="customerIdentifier = :c",
            ExpressionAttributeValues={":c": notice.customer_identifier},
        )["Items"]
        # Facts an earlier version held in this table carry a CustomerIdentifier too: they are no subscriber.
        registered = [i for i in found if not is_placeholder(i["customerAWSAccountId"])]
        if not registered:
            return None
        return {
            "customerAWSAccountId": registered[0]["customerAWSAccountId"],
            "subscriptionKey": registered[0]["subscriptionKey"],
        }

    def _agreement_subscriber(self, account: str, agreement_id: str) -> dict[str, str] | None:
        for item in self._items_of(account):
            if item.get("agreementId") == agreement_id or agreement_id in item.get("formerAgreementIds", ()):
                return {
                    "customerAWSAccountId": item["customerAWSAccountId"],
                    "subscriptionKey": item["subscriptionKey"],
                }
        return None

    def _items_of(self, account: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._query(
            KeyConditionExpression="customerAWSAccountId = :a",
            ExpressionAttributeValues={":a": account},
            ConsistentRead=True,
        )["Items"]
        return items

    # --- recording the fact, then the status -----------------------------------------------------------

    def _record(self, key: dict[str, str], notice: Notice) -> dict[str, Any]:
        """Store the notice's fact unless a later one of its kind is stored; returns the item after."""
        values: dict[str, Any] = {":product": self._settings.product_code}
        assignments = ["productCode = if_not_exists(productCode, :product)"]
        names: dict[str, str] = {}
        condition = None
        if notice.fact is not None:
            names["#fact"] = notice.fact
            values[":at"] = notice.at_ms
            assignments.append("#fact = :at")
            condition = "attribute_not_exists(#fact) OR #fact < :at"
        optional = {
            "licenseArn": notice.license_arn,
            "customerIdentifier": notice.customer_identifier,
            "agreementId": notice.agreement_id,
        }
        for name, value in optional.items():
            if value:
                values[f":{name}"] = value
                assignments.append(f"{name} = if_not_exists({name}, :{name})")
        if notice.agreement_id and not is_held(key):
            # When the agreement recorded first was named: a later license event naming another one (a
            # renewal) moves the subscriber on to it only if AWS's time says it is newer (_follow_agreement).
            values[":linkedAt"] = notice.at_ms
            assignments.append("agreementLinkedAt = if_not_exists(agreementLinkedAt, :linkedAt)")
        if notice.free_trial is not None:
            values[":freeTrial"] = notice.free_trial
            assignments.append("freeTrial = :freeTrial")
        if is_held(key):
            # Facts nobody claims (another product's agreement, a buyer who never registers) expire.
            values[":expires"] = int(self._clock()) + UNCLAIMED_AGREEMENT_SECONDS
            assignments.append("expiresAt = :expires")
        request: dict[str, Any] = {
            "Key": key,
            "UpdateExpression": "SET " + ", ".join(assignments),
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if condition:
            request["ConditionExpression"] = condition
        try:
            attributes: dict[str, Any] = self._table_of(key).update_item(**request)["Attributes"]
            return attributes
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise StoreUnavailable(error_code(error)) from None
        # A later (or the same) event of this kind is already recorded: only the status may need catching up.
        item = self._get(key)
        if item is None:
            raise StoreUnavailable("the subscriber disappeared while its event was recorded")
        return item

    def _converge(
        self, key: dict[str, str], item: dict[str, Any], notice: Notice, outcome: Outcome
    ) -> dict[str, Any]:
        """Bring the stored status in line with the facts; tell the seller's product about each change."""
        if is_held(key):
            return item  # facts only: the status is set when the buyer registers or the license is named
        for _ in range(5):
            wanted = status_of(item)
            current = item.get("status")
            if current == wanted:
                return item
            # Publish first: a crash before the write publishes again on retry (at least once, same id).
            detail = self._event_detail(item, wanted, current)
            if notice.channel == "reconciliation":
                detail["foundBy"] = "reconciliation"  # no event told us: comparing with AWS's record did
            self._seller.publish(SELLER_EVENTS[wanted], detail)
            outcome.published.append(SELLER_EVENTS[wanted])
            try:
                item = self._write_status(key, item, wanted)
                return item
            except _FactsChanged:
                latest = self._get(key)
                if latest is None:
                    raise StoreUnavailable(
                        "the subscriber disappeared while its status was written"
                    ) from None
                item = latest
        raise StoreUnavailable("the subscriber's events kept changing; the message will be retried")

    def _write_status(self, key: dict[str, str], item: dict[str, Any], wanted: str) -> dict[str, Any]:
        names = {"#status": "status"}
        values: dict[str, Any] = {":wanted": wanted, ":now": int(self._clock() * 1000)}
        conditions = []
        for index, fact in enumerate(STATUS_FACTS):
            names[f"#f{index}"] = fact
            if fact in item:
                values[f":f{index}"] = item[fact]
                conditions.append(f"#f{index} = :f{index}")
            else:
                conditions.append(f"attribute_not_exists(#f{index})")
        if "status" in item:
            values[":current"] = item["status"]
            conditions.append("#status = :current")
        else:
            conditions.append("attribute_not_exists(#status)")
        try:
            attributes: dict[str, Any] = self._table.update_item(
                Key=key,
                UpdateExpression="SET #status = :wanted, statusChangedAt = :now",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
            return attributes
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                raise _FactsChanged from None
            raise StoreUnavailable(error_code(error)) from None

    # --- entitlements ------------------------------------------------------------------------------

    def _refresh_entitlements(
        self, key: dict[str, str], item: dict[str, Any], notice: Notice, outcome: Outcome
    ) -> None:
        if is_held(key):
            return  # fetched when the buyer registers
        account = key["customerAWSAccountId"]
        identity = BuyerIdentity(
            account, self._settings.product_code, item.get("licenseArn"), item.get("customerIdentifier")
        )
        entitlements = self._marketplace.entitlements(identity, legacy=self._settings.legacy_identity)
        try:
            updated = self._table.update_item(
                Key=key,
                UpdateExpression="SET entitlements = :e, entitlementsAt = :at",
                ConditionExpression="attribute_not_exists(entitlementsAt) OR entitlementsAt <= :at",
                ExpressionAttributeValues={":e": entitlements, ":at": notice.at_ms},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return  # a later notice already stored what is current
            raise StoreUnavailable(error_code(error)) from None
        detail = self._event_detail(updated, updated.get("status", "pending"), updated.get("status"))
        detail["entitlements"] = entitlements
        self._seller.publish(ENTITLEMENTS_EVENT, detail)
        outcome.published.append(ENTITLEMENTS_EVENT)

    # --- helpers -------------------------------------------------------------------------------------

    def _event_detail(self, item: Mapping[str, Any], status: str, previous: Any) -> dict[str, Any]:
        fact_time = item.get(FACTS.get(status, ""), 0)  # type: ignore[call-overload]
        detail = subscriber_detail(self._settings, item, status=status, change=f"{status}|{fact_time}")
        detail["previousStatus"] = previous or "pending"
        if fact_time:
            detail["effectiveAt"] = datetime.fromtimestamp(int(fact_time) / 1000, UTC).isoformat()
        return detail

    def _table_of(self, key: Mapping[str, str]) -> Any:
        return self._held if is_held(key) else self._table

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        return get_consistent(self._table_of(key), key)

    def _query(self, **request: Any) -> dict[str, Any]:
        return query_page(self._table, **request)


class _FactsChanged(Exception):
    """Another event changed the subscriber between reading it and writing its status."""
