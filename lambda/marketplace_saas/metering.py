"""The metering job: sends every completed hour's usage to AWS Marketplace exactly once, loses nothing.

    zero records for quiet active licenses → pending records (sparse index, paginated, never a Scan)
    → seal each record's quantity → BatchMeterUsage, 25 a call → metered / still pending / failed

A customer is one license (account + LicenseArn: an account may hold several licenses of a listing at once),
or, on a legacy listing, the account's one subscription (CustomerIdentifier + ProductCode). Quantities are
decimals, sent as `QuantityAsDecimal`. A contract listing, or one that declares no dimensions, sends nothing.

Crash and overlap safety: a record's content is frozen (sealed) before it is sent, and the seal is kept
until Marketplace's answer is stored. A run that dies anywhere leaves records pending with the same sealed
content; the next run sends exactly the same records again, and Marketplace answers an identical record
with the same result instead of billing it twice. Two overlapping runs send identical content.
Reference: https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_BatchMeterUsage.html
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from marketplace_saas.models import BILLABLE_STATUSES, ENDED_STATUSES, license_id
from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import pages
from marketplace_saas.usage import (
    HOUR,
    PENDING,
    allocations_of,
    decimal_text,
    earliest_accepted,
    hour_of,
    iso_hour,
    marketplace_accepts,
    usage_key,
)

BATCH_SIZE = 25  # BatchMeterUsage's limit
# BatchMeterUsage takes requests under 1 MB: a batch is cut early when its records' JSON would pass this.
BATCH_BYTES = 900_000
# A record sent late in its window carries a timestamp this far inside the window: a run (at most five
# minutes, retries included) sends it before it falls out.
SEND_MARGIN_SECONDS = 600
PENDING_INDEX = "pendingByHour"
STATUS_INDEX = "byStatus"
RETRY_DELAYS_SECONDS = (0.5, 1.0, 2.0)
# Errors that reject a whole call because of one of its records; retrying the same call cannot help.
RECORD_ERRORS = frozenset(
    {
        "InvalidUsageDimensionException",
        "InvalidTagException",
        "InvalidUsageAllocationsException",
        "InvalidCustomerIdentifierException",
        "InvalidLicenseException",
        "InvalidProductCodeException",
        "ValidationException",
    }
)


# (customerAWSAccountId, subscriptionKey): the subscribers table's key of the subscription a record bills,
# the license id `l-…` (or the product code on a legacy listing).
Customer = tuple[str, str]


class BatchRejected(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class RunReport:
    zero_records_added: int = 0
    sent: int = 0
    metered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    still_pending: int = 0
    api_calls: int = 0
    pages_read: int = 0
    pending_after: int = 0
    oldest_pending_hour: str | None = None
    active_subscribers: int = 0
    # The quantity AWS accepted, per dimension.
    billed_by_dimension: dict[str, Decimal] = field(default_factory=dict)

    def fail(self, reason: str, count: int = 1) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + count

    def view(self) -> dict[str, Any]:
        return {
            "zeroRecordsAdded": self.zero_records_added,
            "sent": self.sent,
            "metered": self.metered,
            "failed": dict(self.failed),
            "stillPending": self.still_pending,
            "apiCalls": self.api_calls,
            "pagesRead": self.pages_read,
            "pendingAfter": self.pending_after,
            "oldestPendingHour": self.oldest_pending_hour,
            "activeSubscribers": self.active_subscribers,
            "billedByDimension": {
                name: decimal_text(value) for name, value in self.billed_by_dimension.items()
            },
        }


@dataclass(frozen=True)
class Sealed:
    """A pending record with its content frozen for sending."""

    key: dict[str, str]
    usage_record: dict[str, Any]


class MeteringJob:
    def __init__(
        self,
        settings: ListingSettings,
        usage_table: Any,
        subscribers_table: Any,
        metering_client: Any,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._usage = usage_table
        self._subscribers = subscribers_table
        self._metering = metering_client
        self._clock = clock
        self._sleep = sleep

    def run(self) -> RunReport:
        """Send every completed hour's usage (the current hour keeps accumulating), and the current hour
        too for licenses in their final hour (cancel-pending): by the next run it may be too late."""
        report = RunReport()
        if not self._settings.is_metered:
            return report  # a contract, or no dimensions: AWS Marketplace takes no usage for this listing
        now = self._clock()
        current_hour = hour_of(now)
        # The billable subscribers, read once: the active ones get zero records, all of them are billed.
        billable = {status: list(self._subscribers_with(status)) for status in BILLABLE_STATUSES}
        if self._settings.sends_zero_records:
            self._add_zero_records(current_hour - HOUR, billable["active"], report)
        report.active_subscribers = len(billable["active"])
        known: dict[Customer, str] = {
            (item["customerAWSAccountId"], item["subscriptionKey"]): status
            for status, group in billable.items()
            for item in group
        }
        leaving = frozenset(customer for customer, status in known.items() if status == "cancel-pending")
        items = self._pending_before(current_hour + (HOUR if leaving else 0), report)
        self._send_items(items, now, leaving, report, self._subscription_statuses(known))
        self._measure_backlog(report)
        return report

    def flush(self, customers: Iterable[Customer]) -> RunReport:
        """Send everything these customers have pending now, the current hour included.

        The subscription lifecycle calls this the moment a subscription starts ending: Marketplace accepts a
        leaving customer's usage for about an hour only. Reads each customer's own recent records (their
        account's partition, as far back as Marketplace still accepts), not the whole backlog.
        """
        report = RunReport()
        wanted = frozenset(customers)
        if not self._settings.is_metered or not wanted:
            return report
        now = self._clock()
        since = iso_hour(hour_of(earliest_accepted(now)))
        for account in sorted({account for account, _ in wanted}):
            request: dict[str, Any] = {
                "KeyConditionExpression": "customerAWSAccountId = :a AND usageKey >= :since",
                "FilterExpression": "attribute_exists(pendingPartition)",
                "ExpressionAttributeValues": {":a": account, ":since": since},
                "ConsistentRead": True,
            }
            items: list[dict[str, Any]] = []
            for page in pages(self._usage.query, request):
                report.pages_read += 1
                items += [item for item in page["Items"] if self.customer_of(item) in wanted]
            # Only these customers' statuses are needed: looked up on their own, not the whole status index.
            self._send_items(iter(items), now, wanted, report, self._subscription_statuses({}))
        return report

    def customer_of(self, item: Mapping[str, Any]) -> Customer:
        """The subscription a usage item bills (items recorded before per-license keys included)."""
        account = str(item["customerAWSAccountId"])
        if self._settings.legacy_identity or not item.get("licenseArn"):
            return account, self._settings.product_code
        return account, license_id(str(item["licenseArn"]))

    def _send_items(
        self,
        items: Iterator[dict[str, Any]],
        now: float,
        flush_customers: frozenset[Customer],
        report: RunReport,
        subscription_of: Callable[[Customer], str],
    ) -> None:
        current_hour = hour_of(now)
        batch: list[Sealed] = []
        batch_bytes = 0
        for item in items:
            customer = self.customer_of(item)
            if item["usageHour"] >= iso_hour(current_hour) and customer not in flush_customers:
                continue  # the current hour of a customer who is not leaving: still accumulating
            hour = int(datetime.fromisoformat(item["usageHour"].replace("Z", "+00:00")).timestamp())
            if "sealedQuantity" in item:
                # Sent before, perhaps: only the identical record can be sent again.
                sealed_at = int(item.get("sealedTimestamp", hour))
                timestamp = sealed_at if marketplace_accepts(sealed_at, now) else None
            else:
                timestamp = send_timestamp(hour, now)
            if timestamp is None:
                # No moment of the hour is inside the 24-hour window any more (or it is last month's, after
                # 06:00 UTC on the 1st): Marketplace would reject the whole batch; it can never be billed now.
                self._finish(item_key(item), "failed", report, reason="TooOld")
                continue
            status = subscription_of(customer)
            if status not in BILLABLE_STATUSES and "sealedQuantity" not in item:
                # A sealed record may already have reached Marketplace: it is sent again, identically.
                if status in ENDED_STATUSES:
                    reason = "SubscriptionFailed" if status == "failed" else "SubscriptionEnded"
                    self._finish(item_key(item), "failed", report, reason=reason)
                else:
                    report.still_pending += 1  # AWS Marketplace has not confirmed the subscription yet
                continue
            sealed = self._seal(item, timestamp)
            size = len(json.dumps(sealed.usage_record, default=str))
            if batch and batch_bytes + size > BATCH_BYTES:
                self._send(batch, report)
                batch, batch_bytes = [], 0
            batch.append(sealed)
            batch_bytes += size
            if len(batch) == BATCH_SIZE:
                self._send(batch, report)
                batch, batch_bytes = [], 0
        if batch:
            self._send(batch, report)

    def _subscription_statuses(self, known: dict[Customer, str]) -> Callable[[Customer], str]:
        """Each license's subscription status: from `known`, others read on demand (one item each)."""

        def status_of(customer: Customer) -> str:
            if customer not in known:
                account, subscription_key = customer
                item = self._subscribers.get_item(
                    Key={"customerAWSAccountId": account, "subscriptionKey": subscription_key},
                    ConsistentRead=True,
                ).get("Item", {})
                known[customer] = str(item.get("status", "pending"))
            return known[customer]

        return status_of

    def _measure_backlog(self, report: RunReport) -> None:
        """What is still waiting (including the current hour), and since when: for metrics and alarms."""
        request: dict[str, Any] = {
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "pendingPartition = :pending",
            "ExpressionAttributeValues": {":pending": PENDING},
            "Select": "COUNT",
        }
        report.pending_after += sum(int(page["Count"]) for page in pages(self._usage.query, request))
        if report.pending_after:
            oldest = self._usage.query(
                IndexName=PENDING_INDEX,
                KeyConditionExpression="pendingPartition = :pending",
                ExpressionAttributeValues={":pending": PENDING},
                ScanIndexForward=True,
                Limit=1,
            )["Items"]
            report.oldest_pending_hour = oldest[0]["usageHour"] if oldest else None

    # --- reading ----------------------------------------------------------------------------------

    def _pending_before(self, hour: int, report: RunReport) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "pendingPartition = :pending AND usageHour < :hour",
            "ExpressionAttributeValues": {":pending": PENDING, ":hour": iso_hour(hour)},
        }
        for page in pages(self._usage.query, request):
            report.pages_read += 1
            yield from page["Items"]

    def _subscribers_with(self, status: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": status},
        }
        for page in pages(self._subscribers.query, request):
            yield from page["Items"]

    # --- zero records -------------------------------------------------------------------------------

    def _add_zero_records(self, hour: int, active: list[dict[str, Any]], report: RunReport) -> None:
        """Marketplace expects a record every hour for every active license, quantity 0 when quiet.

        Only for hours the license was active in: an hour that ended before AWS Marketplace activated the
        subscription is not billed, and a zero record would close it to usage reported late for it.
        """
        if not active:
            return
        dimension = min(self._settings.dimensions)
        # Licenses with usage waiting for this hour need no zero record: one read of the hour's pending
        # records, rather than a query per license (those are left for the licenses without).
        with_usage = {
            self.customer_of(item)
            for page in pages(
                self._usage.query,
                {
                    "IndexName": PENDING_INDEX,
                    "KeyConditionExpression": "pendingPartition = :pending AND usageHour = :hour",
                    "ExpressionAttributeValues": {":pending": PENDING, ":hour": iso_hour(hour)},
                    "ProjectionExpression": "customerAWSAccountId, licenseArn",
                },
            )
            for item in page["Items"]
        }
        candidates = [
            subscriber
            for subscriber in active
            if int(subscriber.get("activatedAt", 0)) < (hour + HOUR) * 1000
            and (subscriber["customerAWSAccountId"], subscriber["subscriptionKey"]) not in with_usage
        ]
        registered = self._registered(candidates)
        for subscriber in candidates:
            customer: Customer = (subscriber["customerAWSAccountId"], subscriber["subscriptionKey"])
            account = customer[0]
            if customer not in registered:
                # Known only from a Marketplace event: nobody can have used the product yet, and an identity
                # the listing never confirmed is not worth a record that may fail every hour.
                continue
            # Usage of this hour already sent (a flush) also counts: one query of the account's hour.
            existing = self._usage.query(
                KeyConditionExpression="customerAWSAccountId = :a AND begins_with(usageKey, :hour)",
                ExpressionAttributeValues={":a": account, ":hour": iso_hour(hour)},
                ProjectionExpression="customerAWSAccountId, licenseArn",
            )["Items"]
            if any(self.customer_of(item) == customer for item in existing):
                continue
            values: dict[str, Any] = {
                ":zero": 0,
                ":hour": iso_hour(hour),
                ":dimension": dimension,
                ":product": self._settings.product_code,
                ":pending": PENDING,
                ":no": False,
            }
            assignments = [
                "usageHour = :hour", "dimension = :dimension", "productCode = :product",
                "pendingPartition = :pending", "meteringStatus = :pending", "allocated = :no",
            ]  # fmt: skip
            for attribute in ("licenseArn", "customerIdentifier"):
                if subscriber.get(attribute):
                    values[f":{attribute}"] = subscriber[attribute]
                    assignments.append(f"{attribute} = :{attribute}")
            license_key = None if self._settings.legacy_identity else customer[1]
            try:
                self._usage.update_item(
                    Key={
                        "customerAWSAccountId": account,
                        "usageKey": usage_key(hour, dimension, license_key),
                    },
                    UpdateExpression=f"SET {', '.join(assignments)} ADD quantity :zero",
                    ConditionExpression="attribute_not_exists(usageKey)",
                    ExpressionAttributeValues=values,
                )
                report.zero_records_added += 1
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise  # usage arrived meanwhile: nothing to add

    def _registered(self, subscribers: list[dict[str, Any]]) -> set[Customer]:
        """Which of these subscriptions a buyer registered (100 keys a BatchGetItem, the API's limit)."""
        keys = [
            {"customerAWSAccountId": item["customerAWSAccountId"], "subscriptionKey": item["subscriptionKey"]}
            for item in subscribers
        ]
        table_name = self._subscribers.name
        found: set[Customer] = set()
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                table_name: {
                    "Keys": keys[start : start + 100],
                    "ProjectionExpression": "customerAWSAccountId, subscriptionKey, registrationDate",
                    "ConsistentRead": True,
                }
            }
            for attempt in range(8):
                # The table resource's client: plain Python values in and out, as for the table itself.
                answer = self._subscribers.meta.client.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(table_name, []):
                    if "registrationDate" in item:
                        found.add((str(item["customerAWSAccountId"]), str(item["subscriptionKey"])))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(0.05 * 2**attempt)  # what DynamoDB could not read now, it reads on the next try
        return found

    # --- sealing, sending, recording the answer -----------------------------------------------------

    def _seal(self, item: dict[str, Any], timestamp: int) -> Sealed:
        """Freeze the record: its quantity and the timestamp it is sent with, for every (re)send."""
        key = item_key(item)
        if "sealedQuantity" not in item:
            try:
                item = self._usage.update_item(
                    Key=key,
                    UpdateExpression="SET sealedQuantity = quantity, sealedAt = :now, sealedTimestamp = :ts",
                    ConditionExpression="attribute_not_exists(sealedQuantity)",
                    ExpressionAttributeValues={":now": int(self._clock()), ":ts": timestamp},
                    ReturnValues="ALL_NEW",
                )["Attributes"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                # Another run sealed it first: send what it sealed.
                item = self._usage.get_item(Key=key, ConsistentRead=True)["Item"]
        record: dict[str, Any] = {
            # A moment of the usage hour, sealed, never the send time: a resend is identical, and billed once.
            # (An item sealed before timestamps were sealed was sent with its hour: `timestamp` is that.)
            "Timestamp": datetime.fromtimestamp(int(item.get("sealedTimestamp", timestamp)), UTC),
            "Dimension": item["dimension"],
            # QuantityAsDecimal, not the deprecated whole-number Quantity (model of 2026-10-20).
            "QuantityAsDecimal": decimal_text(Decimal(item["sealedQuantity"])),
        }
        if self._settings.legacy_identity:
            record["CustomerIdentifier"] = item["customerIdentifier"]
        else:
            # Never ProductCode as well: AWS accepts it beside LicenseArn and bills the usage twice.
            record["CustomerAWSAccountId"] = item["customerAWSAccountId"]
            record["LicenseArn"] = item["licenseArn"]
        allocations = allocations_of(item)
        if allocations:
            record["UsageAllocations"] = allocations
        return Sealed(key, record)

    def _call(self, records: list[dict[str, Any]], report: RunReport) -> dict[str, Any] | None:
        request: dict[str, Any] = {"UsageRecords": records}
        if self._settings.legacy_identity:
            request["ProductCode"] = self._settings.product_code
        report.api_calls += 1
        try:
            result: dict[str, Any] = self._metering.batch_meter_usage(**request)
            return result
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "TimestampOutOfBoundsException" or code in RECORD_ERRORS:
                raise BatchRejected(code) from None
            # Throttling past the SDK's retries, or an outage: the records stay pending for the next try.
            return None
        except BotoCoreError:
            return None

    def _send(self, batch: list[Sealed], report: RunReport) -> None:
        waiting = {_identity(sealed.usage_record): sealed for sealed in batch}
        for delay in (0.0, *RETRY_DELAYS_SECONDS):
            if not waiting:
                return
            if delay:
                self._sleep(delay)
            records = [sealed.usage_record for sealed in waiting.values()]
            report.sent += len(records)
            try:
                result = self._call(records, report)
            except BatchRejected as rejection:
                if len(waiting) > 1:
                    # One record spoils the call (an invalid license or dimension, a timestamp out of
                    # bounds): send each alone so only that one fails.
                    for sealed in list(waiting.values()):
                        self._send([sealed], report)
                    return
                for sealed in waiting.values():
                    self._finish(
                        sealed.key, "failed", report, reason=rejection.code.removesuffix("Exception")
                    )
                return
            if result is None:
                continue
            for outcome in result.get("Results", []):
                answered = waiting.pop(_identity(outcome["UsageRecord"]), None)
                if answered is None:
                    continue
                sealed = answered
                if outcome["Status"] == "Success":
                    self._finish(sealed.key, "metered", report, record_id=outcome.get("MeteringRecordId"))
                    dimension = sealed.usage_record["Dimension"]
                    report.billed_by_dimension[dimension] = report.billed_by_dimension.get(
                        dimension, Decimal(0)
                    ) + Decimal(sealed.usage_record["QuantityAsDecimal"])
                else:
                    self._finish(sealed.key, "failed", report, reason=outcome["Status"])
            # Whatever is left was returned as UnprocessedRecords (or not answered): try again.
        report.still_pending += len(waiting)

    def _finish(
        self,
        key: dict[str, str],
        status: str,
        report: RunReport,
        *,
        reason: str = "",
        record_id: str | None = None,
    ) -> None:
        values: dict[str, Any] = {":status": status, ":at": int(self._clock())}
        assignments = ["meteringStatus = :status", "finishedAt = :at"]
        if record_id:
            values[":id"] = record_id
            assignments.append("meteringRecordId = :id")
        if reason:
            values[":reason"] = reason
            assignments.append("failureReason = :reason")
        self._usage.update_item(
            Key=key,
            UpdateExpression=f"SET {', '.join(assignments)} REMOVE pendingPartition",
            ExpressionAttributeValues=values,
        )
        if status == "metered":
            report.metered += 1
        else:
            report.fail(reason)


def send_timestamp(hour: int, now: float) -> int | None:
    """The timestamp to send an hour's usage with, or None when Marketplace accepts no moment of that hour.

    Marketplace counts usage per hour, so any moment of the hour stands for it. The hour's start while it is
    inside the 24-hour window; after that, the earliest moment of the hour still inside (with a margin for
    the run to finish sending), so usage recorded late in its window is still billed by the next run.
    """
    # Accepted now and still when the run's last try goes out (the month may close meanwhile, at 06:00).
    earliest = math.ceil(earliest_accepted(now + SEND_MARGIN_SECONDS))
    moment = max(hour, earliest)
    return moment if moment < hour + HOUR and moment <= now else None


def item_key(item: dict[str, Any]) -> dict[str, str]:
    return {"customerAWSAccountId": item["customerAWSAccountId"], "usageKey": item["usageKey"]}


def _identity(record: dict[str, Any]) -> tuple[str, str, str, float]:
    """What tells one record of a call from another: Marketplace de-duplicates on exactly this."""
    customer = record.get("CustomerAWSAccountId") or record.get("CustomerIdentifier") or ""
    license_arn = license_id(str(record.get("LicenseArn") or ""))
    timestamp = record["Timestamp"]
    moment = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
    return str(customer), license_arn, str(record["Dimension"]), moment
