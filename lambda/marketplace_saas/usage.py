"""Recording usage: one validation path for the API, the Python function and the CLI.

Usage is aggregated atomically per license + dimension + usage hour, because AWS Marketplace bills only the
first record it receives for a customer's license, dimension and hour, and one AWS account may hold several
licenses of a listing at once (concurrent agreements); see
https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_BatchMeterUsage.html and
../shared/MARKETPLACE.md, "Identity of a buyer". Once the metering job has sealed an hour for sending, it no
longer changes: more usage for it is refused.

Quantities are decimals (`QuantityAsDecimal`, model of 2026-10-20): `Decimal` from the request to DynamoDB's
Number to the decimal string sent, never a float. Whatever AWS would refuse at sending time (too many
allocations, an item too large to send, a timestamp outside the window) is refused here, when the seller's
product can still do something about it, rather than lost later.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from marketplace_saas.models import BILLABLE_STATUSES, license_id
from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import CONDITION_FAILED, StoreUnavailable, error_code
from marketplace_saas.usage_request import (  # the request's rules (the names are re-exported)
    LICENSE_ARN as LICENSE_ARN,
    MAX_ALLOCATIONS_PER_REQUEST as MAX_ALLOCATIONS_PER_REQUEST,
    InvalidUsage as InvalidUsage,
    UsageAllocation as UsageAllocation,
    UsageRecord as UsageRecord,
    decimal_text as decimal_text,
)

HOUR = 3600
# BatchMeterUsage accepts a record up to 24 hours old, never in the future; and the previous billing month's
# usage only until 06:00 UTC on the 1st (UsageRecord.Timestamp, meteringmarketplace model of 2026-10-20).
MARKETPLACE_WINDOW_SECONDS = 24 * HOUR
MONTH_END_GRACE_SECONDS = 6 * HOUR
CLOCK_SKEW_SECONDS = 300
PENDING = "pending"
# The pending-usage index's partition key values: `pending#<n>` by a hash of the license, so that no one
# value takes every pending record's writes (a partition key value takes about 1,000 writes a second).
# Items written before the spread carry the single value `pending`: the job still reads it. The count is
# fixed: the job reads exactly these values, so changing it would hide the records of the values dropped.
PENDING_SHARDS = 16
PENDING_PARTITIONS = (PENDING, *(f"{PENDING}#{shard}" for shard in range(PENDING_SHARDS)))
# UsageRecord.UsageAllocations: 1-2,500 per record.
MAX_ALLOCATIONS_PER_RECORD = 2500
# An hour's item is sent as one UsageRecord: it must fit DynamoDB's 400 KB item and, with up to 24 others,
# BatchMeterUsage's 1 MB request. What the recorder lets an item grow to (its estimated DynamoDB size):
MAX_ITEM_BYTES = 300_000
_NUMBER_BYTES = 21  # DynamoDB stores a number in at most 21 bytes
ALLOCATION_PREFIX = "allocation:"
RECORDABLE_STATUSES = frozenset({"pending", "active", "cancel-pending"})


class UsageRejected(Exception):
    """The usage cannot be recorded; `status` is the HTTP status the API answers with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RecordedUsage:
    customer_aws_account_id: str
    license_arn: str | None
    dimension: str
    usage_hour: str
    hour_total: Decimal

    def view(self) -> dict[str, Any]:
        return {
            "customerAWSAccountId": self.customer_aws_account_id,
            "licenseArn": self.license_arn,
            "dimension": self.dimension,
            "usageHour": self.usage_hour,
            "hourTotal": decimal_text(self.hour_total),
        }


def hour_of(moment: float) -> int:
    return int(moment // HOUR * HOUR)


def iso_hour(hour: int) -> str:
    return datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def earliest_accepted(now: float) -> float:
    """The oldest usage timestamp AWS Marketplace accepts at `now` (epoch seconds).

    24 hours back, except that the previous billing month closes at 06:00 UTC on the 1st: from then on
    nothing before the 1st is accepted, however recent (UsageRecord.Timestamp, meteringmarketplace model).
    """
    moment = datetime.fromtimestamp(now, UTC)
    month_start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    earliest = now - MARKETPLACE_WINDOW_SECONDS
    if now >= month_start + MONTH_END_GRACE_SECONDS:
        earliest = max(earliest, month_start)
    return earliest


def marketplace_accepts(timestamp: float, now: float) -> bool:
    """Whether BatchMeterUsage would accept a record with this timestamp at `now`."""
    return earliest_accepted(now) <= timestamp <= now


def pending_partition(account: str, subscription_key: str) -> str:
    """The pending index's partition value for a license's records (stable: the same license, the same)."""
    return f"{PENDING}#{zlib.crc32(f'{account}/{subscription_key}'.encode()) % PENDING_SHARDS}"


def usage_key(hour: int, dimension: str, subscription_key: str | None = None) -> str:
    """`<hour>#<dimension>#<license id>` (`<hour>#<dimension>` for legacy listings and older items)."""
    base = f"{iso_hour(hour)}#{dimension}"
    return f"{base}#{subscription_key}" if subscription_key else base


class UsageRecorder:
    def __init__(
        self,
        settings: ListingSettings,
        subscribers_table: Any,
        usage_table: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._subscribers = subscribers_table
        self._usage = usage_table
        self._clock = clock

    def record(self, usage: UsageRecord) -> RecordedUsage:
        settings = self._settings
        if not settings.dimensions:
            raise UsageRejected(
                422, "no_dimensions",
                f"dimension: the listing {settings.listing_path} declares no dimensions, so it has no usage "
                "to record; add its dimensions (as defined on the listing in the AWS Marketplace Management "
                "Portal) to marketplaceListings.<key>.dimensions in marketplace-config.json and deploy again",
            )  # fmt: skip
        if not settings.is_metered:
            raise UsageRejected(
                422, "not_metered",
                f"dimension: the listing {settings.listing_path} is sold as a contract: buyers pay for "
                "entitlements up front and AWS Marketplace takes no usage for it (use "
                "pricingModel contract-with-consumption to bill usage beyond the contract)",
            )  # fmt: skip
        if usage.dimension not in settings.dimensions:
            raise UsageRejected(
                422, "unknown_dimension",
                f"dimension: {usage.dimension!r} is not a dimension of this listing "
                f"(its dimensions: {', '.join(sorted(settings.dimensions))})",
            )  # fmt: skip
        now = self._clock()
        moment = usage.time.timestamp() if usage.time else now
        if moment > now + CLOCK_SKEW_SECONDS:
            raise UsageRejected(422, "time_in_future", "time: usage cannot be recorded for the future")
        hour = hour_of(moment)
        if not marketplace_accepts(hour, max(now, hour)):
            raise UsageRejected(
                422, "time_too_old",
                f"time: AWS Marketplace no longer accepts usage for the hour {iso_hour(hour)}: usage is "
                "accepted for 24 hours after its hour, and last month's only until 06:00 UTC on the 1st",
            )  # fmt: skip
        subscriber = self._subscriber(usage.customer_aws_account_id, usage.license_arn)
        return self._add(usage, subscriber, hour)

    def _subscriber(self, account: str, license_arn: str | None) -> dict[str, Any]:
        """The subscription the usage belongs to: the license named, or the account's only one."""
        try:
            items = self._subscribers.query(
                KeyConditionExpression="customerAWSAccountId = :a",
                ExpressionAttributeValues={":a": account},
                ConsistentRead=True,
            )["Items"]
        except ClientError as error:
            raise StoreUnavailable(error_code(error)) from None
        registered = [item for item in items if "registrationDate" in item]
        if not registered:
            raise UsageRejected(
                404, "unknown_customer",
                f"customerAWSAccountId: {account} is not a registered subscriber of this listing",
            )  # fmt: skip
        if license_arn is not None:
            wanted = license_id(license_arn)
            named = [item for item in registered if license_id(str(item.get("licenseArn", ""))) == wanted]
            if not named:
                raise UsageRejected(
                    404, "unknown_license",
                    f"licenseArn: {license_arn} is not a license of customer {account} on this listing "
                    f"(its licenses: {_licenses(registered)})",
                )  # fmt: skip
            return _recordable(named[0], account)
        billable = [item for item in registered if item.get("status") in BILLABLE_STATUSES]
        candidates = billable or [
            item for item in registered if item.get("status", "pending") in RECORDABLE_STATUSES
        ]
        if len(candidates) > 1:
            raise UsageRejected(
                409, "license_required",
                f"licenseArn: customer {account} holds {len(candidates)} licenses of this listing "
                f"({_licenses(candidates)}); say which one the usage belongs to with licenseArn",
            )  # fmt: skip
        return _recordable(candidates[0] if candidates else registered[0], account)

    def _add(self, usage: UsageRecord, subscriber: dict[str, Any], hour: int) -> RecordedUsage:
        legacy = self._settings.legacy_identity
        key = {
            "customerAWSAccountId": usage.customer_aws_account_id,
            "usageKey": usage_key(
                hour, usage.dimension, None if legacy else str(subscriber["subscriptionKey"])
            ),
        }
        names: dict[str, str] = {"#status": "meteringStatus"}
        values: dict[str, Any] = {
            ":quantity": usage.quantity,
            ":hour": iso_hour(hour),
            ":dimension": usage.dimension,
            ":product": self._settings.product_code,
            ":pending": PENDING,
            ":partition": pending_partition(
                usage.customer_aws_account_id, str(subscriber["subscriptionKey"])
            ),
            ":allocated": usage.allocations is not None,
        }
        assignments = [
            "usageHour = :hour",
            "dimension = :dimension",
            "productCode = :product",
            "pendingPartition = :partition",
            "#status = :pending",
            "allocated = :allocated",
        ]
        for attribute in ("licenseArn", "customerIdentifier"):
            if subscriber.get(attribute):
                values[f":{attribute}"] = subscriber[attribute]
                assignments.append(f"{attribute} = :{attribute}")
        additions = ["quantity :quantity"]
        for index, allocation in enumerate(usage.allocations or []):
            names[f"#a{index}"] = ALLOCATION_PREFIX + allocation.key
            values[f":a{index}"] = allocation.quantity
            additions.append(f"#a{index} :a{index}")
        # A sealed hour is being (or was) sent: its content must not change. And one hour's usage is either
        # all allocated or not at all, or the allocations could not add up to the quantity.
        condition = (
            "attribute_not_exists(sealedQuantity) "
            "AND (attribute_not_exists(allocated) OR allocated = :allocated)"
        )
        for _attempt in range(5):
            request_names, request_values, guard = dict(names), dict(values), condition
            sets = list(assignments)
            if usage.allocations is not None:
                count, expected = self._allocation_room(key, usage)
                # The count of tag sets doubles as a version: a concurrent request that added sets first
                # makes this update fail its condition, and the room is checked again.
                request_values[":sets"] = count
                sets.append("allocationSets = :sets")
                if expected:
                    request_values[":expected"] = expected
                    guard += " AND allocationSets = :expected"
                else:
                    guard += " AND attribute_not_exists(allocationSets)"
            try:
                result = self._usage.update_item(
                    Key=key,
                    UpdateExpression=f"SET {', '.join(sets)} ADD {', '.join(additions)}",
                    ConditionExpression=guard,
                    ExpressionAttributeNames=request_names,
                    ExpressionAttributeValues=request_values,
                    ReturnValues="ALL_NEW",
                )
            except ClientError as error:
                if error_code(error) != CONDITION_FAILED:
                    raise StoreUnavailable(error_code(error)) from None
                refusal = self._why_refused(key, usage, hour, subscriber)
                if refusal is not None:
                    raise refusal from None
                continue  # another request added tag sets meanwhile: measure again
            total = Decimal(result["Attributes"]["quantity"])
            return RecordedUsage(
                usage.customer_aws_account_id,
                subscriber.get("licenseArn"),
                usage.dimension,
                iso_hour(hour),
                total,
            )
        raise StoreUnavailable("the hour's allocations kept changing; try again")

    def _allocation_room(self, key: Mapping[str, str], usage: UsageRecord) -> tuple[int, int]:
        """(tag sets after this request, tag sets now); refuses what would not fit one UsageRecord."""
        try:
            item = self._usage.get_item(Key=key, ConsistentRead=True).get("Item", {})
        except ClientError as error:
            raise StoreUnavailable(error_code(error)) from None
        existing = {name for name in item if name.startswith(ALLOCATION_PREFIX)}
        added = {ALLOCATION_PREFIX + allocation.key for allocation in usage.allocations or []} - existing
        count = len(existing) + len(added)
        if count > MAX_ALLOCATIONS_PER_RECORD:
            raise UsageRejected(
                422, "too_many_allocations",
                f"allocations: this would give the hour {count} different tag sets for {usage.dimension}; "
                f"AWS Marketplace takes at most {MAX_ALLOCATIONS_PER_RECORD} allocations in one usage record",
            )  # fmt: skip
        size = _item_size(item) + sum(len(name.encode()) + _NUMBER_BYTES for name in added) + 512
        if size > MAX_ITEM_BYTES:
            raise UsageRejected(
                422, "allocations_too_large",
                f"allocations: the hour's tag sets for {usage.dimension} would take about {size // 1000} KB; "
                f"one usage record holds at most {MAX_ITEM_BYTES // 1000} KB of them: use fewer or shorter "
                "tags",
            )  # fmt: skip
        return count, int(item.get("allocationSets", 0))

    def _why_refused(
        self, key: Mapping[str, str], usage: UsageRecord, hour: int, subscriber: Mapping[str, Any]
    ) -> UsageRejected | None:
        item = self._usage.get_item(Key=key, ConsistentRead=True).get("Item", {})
        if "sealedQuantity" in item and subscriber.get("status") == "cancel-pending":
            return UsageRejected(
                409, "subscription_ending",
                f"time: the subscription ({subscriber.get('licenseArn') or usage.customer_aws_account_id}) "
                f"is ending, and its usage for the hour {iso_hour(hour)} was already sent to AWS Marketplace "
                "(a leaving customer's usage is sent at once: AWS takes it for about an hour only); usage "
                "recorded after that cannot be billed",
            )  # fmt: skip
        if "sealedQuantity" in item:
            return UsageRejected(
                409, "hour_closed",
                f"time: the hour {iso_hour(hour)} has already been sent to AWS Marketplace; record new usage "
                "in an hour not sent yet (the current one, or the next if this one was billed early)",
            )  # fmt: skip
        if "allocated" in item and bool(item["allocated"]) != (usage.allocations is not None):
            return UsageRejected(
                409, "allocations_mismatch",
                "allocations: usage for this customer, dimension and hour was recorded "
                + ("with" if item.get("allocated") else "without")
                + " allocations; record all of an hour's usage the same way",
            )  # fmt: skip
        return None


def _recordable(item: dict[str, Any], account: str) -> dict[str, Any]:
    status = item.get("status", "pending")
    if status not in RECORDABLE_STATUSES:
        license_arn = item.get("licenseArn")
        which = f"subscription ({license_arn})" if license_arn else "subscription"
        raise UsageRejected(
            409,
            "not_subscribed",
            f"customerAWSAccountId: {account}'s {which} is {status}; usage is not billed",
        )
    return item


def _licenses(items: list[dict[str, Any]]) -> str:
    return ", ".join(sorted(f"{item.get('licenseArn')} ({item.get('status', 'pending')})" for item in items))


def _item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item, near enough: names plus values (numbers at their largest)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        size += _NUMBER_BYTES if isinstance(value, (int, Decimal)) else len(str(value).encode())
    return size


def allocations_of(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An aggregated usage item's allocations, in BatchMeterUsage's shape (decimal quantities)."""
    allocations = []
    for name, quantity in sorted(item.items()):
        if name.startswith(ALLOCATION_PREFIX):
            tags = json.loads(name.removeprefix(ALLOCATION_PREFIX))
            allocations.append(
                {
                    "AllocatedUsageQuantityAsDecimal": decimal_text(Decimal(quantity)),
                    "Tags": [{"Key": key, "Value": value} for key, value in tags],
                }
            )
    return allocations
