"""Data access: pending registrations, subscribers and held lifecycle facts, each in the listing's own table.

Key names are the ones `stacks/constructs/tables.py` gives the tables.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from marketplace_saas.models import (
    ALL_FACTS,
    BuyerIdentity,
    PendingRegistration,
    Subscriber,
    former_customer_key,
    held_customer_key,
    status_of,
)

# 32 random bytes → 43 URL-safe characters: 256 bits, far above the 128 the session id needs.
REGISTRATION_ID_BYTES = 32
_REGISTRATION_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


class StoreUnavailable(Exception):
    """DynamoDB failed after the SDK's retries."""


def pages(call: Callable[..., Mapping[str, Any]], request: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every page of a DynamoDB Query or Scan, `request` first, then following `LastEvaluatedKey`."""
    request = dict(request)
    while True:
        page = call(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _registration_key(registration_id: str) -> str:
    # Only a hash of the id is stored: reading the table does not give anyone a usable session.
    return hashlib.sha256(registration_id.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


CONDITION_FAILED = "ConditionalCheckFailedException"


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call (e.g. ConditionalCheckFailedException), as text."""
    return str(error.response.get("Error", {}).get("Code") or "UnknownError")


def get_consistent(table: Any, key: Mapping[str, str]) -> dict[str, Any] | None:
    """The item at `key`, read after every write before it; None if there is none."""
    try:
        item: dict[str, Any] | None = table.get_item(Key=key, ConsistentRead=True).get("Item")
        return item
    except ClientError as error:
        raise StoreUnavailable(error_code(error)) from None


def query_page(table: Any, **request: Any) -> dict[str, Any]:
    """One page of a Query; a refused or failed call is StoreUnavailable."""
    try:
        page: dict[str, Any] = table.query(**request)
        return page
    except ClientError as error:
        raise StoreUnavailable(error_code(error)) from None


class HeldFacts:
    """Lifecycle facts waiting in one place for the subscriber they belong to (see models.HELD_KEY).

    The place is an item of the held-events table or, for facts an earlier version kept there, of the
    subscribers table: both are read and claimed the same way, so an upgrade loses nothing.
    """

    def __init__(self, table: Any, key: Mapping[str, str]) -> None:
        self._table = table
        self.key = dict(key)

    def read(self) -> dict[str, Any] | None:
        """The facts held (and `freeTrial`, if a notification said so), or None if nothing is held."""
        try:
            item = self._table.get_item(Key=self.key, ConsistentRead=True).get("Item")
        except ClientError as error:
            raise StoreUnavailable(error_code(error)) from None
        if not item:
            return None
        facts = {fact: item[fact] for fact in ALL_FACTS if fact in item}
        if "freeTrial" in item:
            facts["freeTrial"] = item["freeTrial"]
        return facts

    def remove_if_unchanged(self, facts: Mapping[str, Any]) -> bool:
        """Delete the item if it still holds exactly `facts`; False if a notification changed it meanwhile.

        The writer of that notification looks for the subscriber after writing here, so it either finds it
        (and records the fact there itself) or its fact is read again by the caller: never lost.
        """
        names = {f"#f{i}": fact for i, fact in enumerate(ALL_FACTS)}
        values = {f":f{i}": facts[fact] for i, fact in enumerate(ALL_FACTS) if fact in facts}
        unchanged = [
            f"#f{i} = :f{i}" if fact in facts else f"attribute_not_exists(#f{i})"
            for i, fact in enumerate(ALL_FACTS)
        ]
        request: dict[str, Any] = {
            "Key": self.key,
            "ConditionExpression": " AND ".join(unchanged),
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self._table.delete_item(**request)
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise StoreUnavailable(error_code(error)) from None
        return True


class PendingRegistrations:
    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, identity: BuyerIdentity, offer_type: str | None, expires_at: int) -> str:
        registration_id = secrets.token_urlsafe(REGISTRATION_ID_BYTES)
        item: dict[str, Any] = {
            "registrationKey": _registration_key(registration_id),
            "customerAWSAccountId": identity.customer_aws_account_id,
            "productCode": identity.product_code,
            "expiresAt": expires_at,
        }
        if identity.license_arn:
            item["licenseArn"] = identity.license_arn
        if identity.customer_identifier:
            item["customerIdentifier"] = identity.customer_identifier
        if identity.agreement_id:
            item["agreementId"] = identity.agreement_id
        if offer_type:
            item["offerType"] = offer_type
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(registrationKey)")
        except ClientError as error:
            raise StoreUnavailable(error_code(error)) from None
        return registration_id

    def get(self, registration_id: str | None, now: int) -> PendingRegistration | None:
        if not registration_id or not _REGISTRATION_ID.match(registration_id):
            return None
        try:
            item = self._table.get_item(
                Key={"registrationKey": _registration_key(registration_id)}, ConsistentRead=True
            ).get("Item")
        except ClientError as error:
            raise StoreUnavailable(error_code(error)) from None
        # DynamoDB deletes expired items eventually, not at once: the expiry is checked here.
        if item is None or int(item["expiresAt"]) <= now:
            return None
        return PendingRegistration(
            identity=BuyerIdentity(
                customer_aws_account_id=item["customerAWSAccountId"],
                product_code=item["productCode"],
                license_arn=item.get("licenseArn"),
                customer_identifier=item.get("customerIdentifier"),
                agreement_id=item.get("agreementId"),
            ),
            offer_type=item.get("offerType"),
            expires_at=int(item["expiresAt"]),
        )


class Subscribers:
    def __init__(self, table: Any, *, legacy: bool, held_events: Any = None) -> None:
        """`held_events`: the held-events table, which legacy listings need (facts of SNS notifications that
        came before their buyer registered)."""
        if legacy and held_events is None:
            raise ValueError("a legacy listing's subscribers need the held-events table")
        self._table = table
        self._legacy = legacy
        self._held_events = held_events

    def _key(self, identity: BuyerIdentity) -> dict[str, str]:
        return {
            "customerAWSAccountId": identity.customer_aws_account_id,
            "subscriptionKey": identity.subscription_key(self._legacy),
        }

    def get(self, identity: BuyerIdentity) -> Subscriber | None:
        try:
            item = self._table.get_item(Key=self._key(identity), ConsistentRead=True).get("Item")
        except ClientError as error:
            raise StoreUnavailable(error_code(error)) from None
        if item is None or "registrationDate" not in item:
            return None  # no registration yet (a lifecycle event may have recorded a status already)
        return _subscriber(identity, item)

    def register(self, subscriber: Subscriber) -> Subscriber | None:
        """Record the registration unless one exists; returns the stored subscriber, or None if it existed.

        An update rather than a put: a subscription event may have created the item (with its status)
        before the buyer registered, and that status must survive.
        """
        identity = subscriber.identity
        early = self._early_facts(identity)
        values: dict[str, Any] = {
            ":companyName": subscriber.company_name,
            ":contactPerson": subscriber.contact_person,
            ":contactEmail": subscriber.contact_email,
            ":contactPhone": subscriber.contact_phone,
            ":registrationDate": subscriber.registration_date,
            ":productCode": identity.product_code,
            ":pending": subscriber.status,
            ":entitlements": subscriber.entitlements,
            ":freeTrial": subscriber.offer_type == "free-trial",
        }
        assignments = [
            "companyName = :companyName",
            "contactPerson = :contactPerson",
            "contactEmail = :contactEmail",
            "contactPhone = :contactPhone",
            "registrationDate = :registrationDate",
            "productCode = :productCode",
            "#status = if_not_exists(#status, :pending)",
            "entitlements = :entitlements",
            "freeTrial = :freeTrial",
        ]
        if early:
            # Subscription events came before the buyer registered: their facts, and the status they give.
            for name, value in early.items():
                if name == "freeTrial":
                    values[":freeTrial"] = bool(value) or values[":freeTrial"]
                    continue
                values[f":{name}"] = value
                assignments.append(f"{name} = :{name}")
            values[":pending"] = status_of(early)
            assignments[assignments.index("#status = if_not_exists(#status, :pending)")] = (
                "#status = :pending"
            )
        optional = {
            "licenseArn": identity.license_arn,
            "customerIdentifier": identity.customer_identifier,
            "agreementId": identity.agreement_id,
            "offerType": subscriber.offer_type,
        }
        for name, value in optional.items():
            if value:
                values[f":{name}"] = value
                assignments.append(f"{name} = :{name}")
        try:
            result = self._table.update_item(
                Key=self._key(identity),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression="attribute_not_exists(registrationDate)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return None
            raise StoreUnavailable(error_code(error)) from None
        item = result["Attributes"]
        if self._legacy and identity.customer_identifier:
            item = self._settle_early_facts(identity, item)
        return _subscriber(identity, item)

    def _held_places(self, identity: BuyerIdentity) -> tuple[HeldFacts, ...]:
        if not (self._legacy and identity.customer_identifier):
            return ()
        return (
            HeldFacts(self._held_events, held_customer_key(identity.customer_identifier)),
            HeldFacts(self._table, former_customer_key(identity.customer_identifier, identity.product_code)),
        )

    def _settle_early_facts(self, identity: BuyerIdentity, item: dict[str, Any]) -> dict[str, Any]:
        """Fold in what is held for this buyer now, then remove it only if nothing changed meanwhile.

        A notification held after the read above is either seen here (what is held is read again after the
        subscriber was written) or, if it comes later still, finds the registered subscriber itself: the
        lifecycle looks again after holding a fact. Never lost.
        """
        for place in self._held_places(identity):
            for _ in range(5):
                facts = place.read()
                if facts is None:
                    break
                facts.pop("freeTrial", None)
                newer = {f: v for f, v in facts.items() if f not in item or int(item[f]) < int(v)}
                if newer:
                    try:
                        item = self._add_facts(identity, item, newer)
                    except ClientError as error:
                        if error_code(error) != CONDITION_FAILED:
                            raise StoreUnavailable(error_code(error)) from None
                        # A notification changed the subscriber meanwhile: fold again into what it holds now.
                        latest = self._table.get_item(Key=self._key(identity), ConsistentRead=True).get(
                            "Item"
                        )
                        item = latest or item
                        continue
                if place.remove_if_unchanged(facts):
                    break
            # Still changing after five tries: it stays (with its expiry) and the lifecycle's own look-up
            # applies what comes next.
        return item

    def _add_facts(
        self, identity: BuyerIdentity, item: dict[str, Any], newer: dict[str, Any]
    ) -> dict[str, Any]:
        merged = {**item, **newer}
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": status_of(merged)}
        assignments, conditions = ["#status = :status"], []
        for index, (fact, value) in enumerate(newer.items()):
            names[f"#n{index}"] = fact
            values[f":n{index}"] = value
            assignments.append(f"#n{index} = :n{index}")
            conditions.append(f"(attribute_not_exists(#n{index}) OR #n{index} < :n{index})")
        updated: dict[str, Any] = self._table.update_item(
            Key=self._key(identity),
            UpdateExpression="SET " + ", ".join(assignments),
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return updated

    def _early_facts(self, identity: BuyerIdentity) -> dict[str, Any]:
        """Lifecycle facts that legacy SNS notifications recorded before this buyer registered."""
        early: dict[str, Any] = {}
        for place in self._held_places(identity):
            for name, value in (place.read() or {}).items():
                if name == "freeTrial":
                    early[name] = bool(value) or bool(early.get(name))
                elif name not in early or int(early[name]) < int(value):
                    early[name] = value
        return early


def _subscriber(identity: BuyerIdentity, item: dict[str, Any]) -> Subscriber:
    return Subscriber(
        identity=identity,
        company_name=item["companyName"],
        contact_person=item["contactPerson"],
        contact_email=item["contactEmail"],
        contact_phone=item["contactPhone"],
        registration_date=item["registrationDate"],
        status=item.get("status", "pending"),
        offer_type=item.get("offerType"),
        entitlements=_plain(item.get("entitlements", [])),
    )
