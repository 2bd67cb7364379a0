"""Telling the seller's product: `subscriber.*` and `entitlements.updated` events on the listing's own bus.

Every event's detail names the subscriber the same way (identity, status, contact details once the buyer has
registered) and carries an `eventId` that is the same for a repeat of the same change, so a consumer can
drop repeats. Kept apart from the lifecycle so that the registration function, which announces new
registrations, loads only this.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from marketplace_saas.models import Subscriber
from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import StoreUnavailable

REGISTERED_EVENT = "subscriber.registered"
CONTACT_FIELDS = ("companyName", "contactPerson", "contactEmail", "contactPhone", "registrationDate")


class SellerEvents:
    """Publishes events on the listing's own EventBridge bus."""

    def __init__(self, events_client: Any, bus_name: str, source: str) -> None:
        self._events = events_client
        self._bus = bus_name
        self._source = source

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        entry = {
            "EventBusName": self._bus,
            "Source": self._source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, default=str),
        }
        try:
            result = self._events.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as error:
            raise StoreUnavailable(f"PutEvents failed: {type(error).__name__}") from None
        if result.get("FailedEntryCount"):
            code = result.get("Entries", [{}])[0].get("ErrorCode", "unknown")
            raise StoreUnavailable(f"PutEvents failed: {code}")


def subscriber_detail(
    settings: ListingSettings, item: Mapping[str, Any], *, status: str, change: str
) -> dict[str, Any]:
    """The detail every event carries, from a subscribers-table item; `change` names this change."""
    identity = f"{item['customerAWSAccountId']}|{item['subscriptionKey']}|{change}"
    detail: dict[str, Any] = {
        "eventId": hashlib.sha256(identity.encode()).hexdigest()[:32],
        "listing": settings.listing_path,
        "productCode": settings.product_code,
        "customerAWSAccountId": item["customerAWSAccountId"],
        "licenseArn": item.get("licenseArn"),
        "customerIdentifier": item.get("customerIdentifier"),
        "status": status,
        "freeTrial": bool(item.get("freeTrial", False)),
        "registered": "registrationDate" in item,
    }
    for name in CONTACT_FIELDS:
        if name in item:
            detail[name] = item[name]
    return detail


def registered_detail(settings: ListingSettings, subscriber: Subscriber) -> dict[str, Any]:
    """`subscriber.registered`: the buyer filled in the form; their contact details and current status.

    Marketplace usually activates a subscription before the buyer registers, so this is often the first
    event that names who the buyer is.
    """
    identity = subscriber.identity
    item = {
        "customerAWSAccountId": identity.customer_aws_account_id,
        "subscriptionKey": identity.subscription_key(settings.legacy_identity),
        "licenseArn": identity.license_arn,
        "customerIdentifier": identity.customer_identifier,
        "freeTrial": subscriber.offer_type == "free-trial",
        "companyName": subscriber.company_name,
        "contactPerson": subscriber.contact_person,
        "contactEmail": subscriber.contact_email,
        "contactPhone": subscriber.contact_phone,
        "registrationDate": subscriber.registration_date,
    }
    detail = subscriber_detail(settings, item, status=subscriber.status, change="registered")
    detail["entitlements"] = subscriber.entitlements
    return detail
