"""Recording usage: one validation path for the API, the Python function and the CLI.

Usage is aggregated atomically per customer + dimension + usage hour, because AWS Marketplace bills only the
first record it receives for a customer, dimension and hour
(https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_BatchMeterUsage.html).
Once the metering job has sealed an hour for sending, it no longer changes: more usage for it is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import StoreUnavailable

HOUR = 3600
# Marketplace accepts records up to 6 hours old; the hourly job needs up to an hour to send an hour's usage.
RECORDING_WINDOW_SECONDS = 5 * HOUR
CLOCK_SKEW_SECONDS = 300
PENDING = "pending"
MAX_QUANTITY = 2_147_483_647
# https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_Tag.html
TAG_TEXT = r"^[a-zA-Z0-9+ -=._:/@]+$"
ALLOCATION_PREFIX = "allocation:"
RECORDABLE_STATUSES = frozenset({"pending", "active", "cancel-pending"})

TagKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=TAG_TEXT)]
TagValue = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=TAG_TEXT)]


class UsageAllocation(BaseModel):
    """Part of a record's quantity attributed to a set of tags (e.g. a team or project)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: int = Field(ge=0, le=MAX_QUANTITY, strict=True)
    tags: dict[TagKey, TagValue] = Field(min_length=1, max_length=5)

    @property
    def key(self) -> str:
        """A stable name for the tag set (JSON: tag text may itself contain `=` and `,`)."""
        return json.dumps(sorted(self.tags.items()), separators=(",", ":"))


class UsageRecord(BaseModel):
    """One customer's use of one dimension: what the seller's product reports."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    customer_aws_account_id: str = Field(alias="customerAWSAccountId", pattern=r"^\d{12}$")
    dimension: str = Field(min_length=1, max_length=255)
    quantity: int = Field(ge=0, le=MAX_QUANTITY, strict=True)
    time: datetime | None = Field(default=None, description="When the usage happened; default now")
    allocations: list[UsageAllocation] | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone, e.g. 2026-11-23T10:15:00Z")
        return value

    @model_validator(mode="after")
    def _allocations_add_up(self) -> UsageRecord:
        if self.allocations is not None:
            total = sum(allocation.quantity for allocation in self.allocations)
            if total != self.quantity:
                raise ValueError(f"allocations add up to {total}, not to the quantity {self.quantity}")
            keys = [allocation.key for allocation in self.allocations]
            if len(set(keys)) != len(keys):
                raise ValueError("two allocations have the same tags; merge them")
        return self


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
    dimension: str
    usage_hour: str
    hour_total: int

    def view(self) -> dict[str, Any]:
        return {
            "customerAWSAccountId": self.customer_aws_account_id,
            "dimension": self.dimension,
            "usageHour": self.usage_hour,
            "hourTotal": self.hour_total,
        }


def hour_of(moment: float) -> int:
    return int(moment // HOUR * HOUR)


def iso_hour(hour: int) -> str:
    return datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def usage_key(hour: int, dimension: str) -> str:
    return f"{iso_hour(hour)}#{dimension}"


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
        if now - hour > RECORDING_WINDOW_SECONDS:
            raise UsageRejected(
                422, "time_too_old",
                "time: usage must be recorded within 5 hours of the start of its hour, so that it reaches "
                "AWS Marketplace inside its 6-hour window",
            )  # fmt: skip
        subscriber = self._subscriber(usage.customer_aws_account_id)
        return self._add(usage, subscriber, hour)

    def _subscriber(self, account: str) -> dict[str, Any]:
        try:
            items = self._subscribers.query(
                KeyConditionExpression="customerAWSAccountId = :a",
                ExpressionAttributeValues={":a": account},
                ConsistentRead=True,
            )["Items"]
        except ClientError as error:
            raise StoreUnavailable(str(error.response.get("Error", {}).get("Code"))) from None
        registered = [item for item in items if "registrationDate" in item]
        if not registered:
            raise UsageRejected(
                404, "unknown_customer",
                f"customerAWSAccountId: {account} is not a registered subscriber of this listing",
            )  # fmt: skip
        usable = [item for item in registered if item.get("status", "pending") in RECORDABLE_STATUSES]
        if not usable:
            status = registered[0].get("status")
            raise UsageRejected(
                409,
                "not_subscribed",
                f"customerAWSAccountId: {account}'s subscription is {status}; usage is not billed",
            )
        chosen: dict[str, Any] = usable[0]
        return chosen

    def _add(self, usage: UsageRecord, subscriber: dict[str, Any], hour: int) -> RecordedUsage:
        names = {"#status": "meteringStatus"}
        values: dict[str, Any] = {
            ":quantity": usage.quantity,
            ":hour": iso_hour(hour),
            ":dimension": usage.dimension,
            ":product": self._settings.product_code,
            ":pending": PENDING,
            ":allocated": usage.allocations is not None,
        }
        assignments = [
            "usageHour = :hour",
            "dimension = :dimension",
            "productCode = :product",
            "pendingPartition = :pending",
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
        try:
            result = self._usage.update_item(
                Key={
                    "customerAWSAccountId": usage.customer_aws_account_id,
                    "usageKey": usage_key(hour, usage.dimension),
                },
                UpdateExpression=f"SET {', '.join(assignments)} ADD {', '.join(additions)}",
                # A sealed hour is being (or was) sent: its content must not change. And one hour's usage is
                # either all allocated or not at all, or the allocations could not add up to the quantity.
                ConditionExpression="attribute_not_exists(sealedQuantity) AND "
                "(attribute_not_exists(allocated) OR allocated = :allocated)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise self._why_refused(usage, hour) from None
            raise StoreUnavailable(str(error.response.get("Error", {}).get("Code"))) from None
        return RecordedUsage(
            usage.customer_aws_account_id,
            usage.dimension,
            iso_hour(hour),
            int(result["Attributes"]["quantity"]),
        )

    def _why_refused(self, usage: UsageRecord, hour: int) -> UsageRejected:
        item = self._usage.get_item(
            Key={
                "customerAWSAccountId": usage.customer_aws_account_id,
                "usageKey": usage_key(hour, usage.dimension),
            },
            ConsistentRead=True,
        ).get("Item", {})
        if "sealedQuantity" in item:
            return UsageRejected(
                409, "hour_closed",
                f"time: the hour {iso_hour(hour)} has already been sent to AWS Marketplace; record new usage "
                "in the current hour",
            )  # fmt: skip
        return UsageRejected(
            409, "allocations_mismatch",
            "allocations: usage for this customer, dimension and hour was recorded "
            + ("with" if item.get("allocated") else "without")
            + " allocations; record all of an hour's usage the same way",
        )  # fmt: skip


def allocations_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    """An aggregated usage item's allocations, in BatchMeterUsage's shape."""
    allocations = []
    for name, quantity in sorted(item.items()):
        if name.startswith(ALLOCATION_PREFIX):
            tags = json.loads(name.removeprefix(ALLOCATION_PREFIX))
            allocations.append(
                {
                    "AllocatedUsageQuantity": int(quantity),
                    "Tags": [{"Key": key, "Value": value} for key, value in tags],
                }
            )
    return allocations
