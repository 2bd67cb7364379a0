"""The metering job: sends every completed hour's usage to AWS Marketplace exactly once, loses nothing.

    zero records for quiet active licenses → pending records (sparse index, its partition values merged
    oldest hour first, paginated, never a Scan) → batches of up to 25 → a bounded pool of workers, each:
    claim and seal its batch (one transaction) → BatchMeterUsage → the answers (one transaction)

A customer is one license (account + LicenseArn: an account may hold several licenses of a listing at once),
or, on a legacy listing, the account's one subscription (CustomerIdentifier + ProductCode). Quantities are
decimals, sent as `QuantityAsDecimal`. A contract listing, or one that declares no dimensions, sends nothing.

Crash and overlap safety: a record's content is frozen (sealed) before it is sent, and the seal is kept
until Marketplace's answer is stored. A run that dies anywhere leaves records pending with the same sealed
content; the next run sends exactly the same records again, and Marketplace answers an identical record
with the same result instead of billing it twice. Sealing also claims the record for the run until the
run's own deadline (the function's end, which it cannot outlive): an overlapping run leaves a record another
live run claimed to that run, so two runs never both send it; once the claim has lapsed (its run died), the
next run takes the record over and sends it, identically. A run watches its remaining time and stops
taking new batches while it can still finish the ones it sealed; the next run continues from there.
Reference: https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_BatchMeterUsage.html
"""

from __future__ import annotations

import heapq
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from marketplace_saas.models import BILLABLE_STATUSES, ENDED_STATUSES, license_id
from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import CONDITION_FAILED, error_code, pages
from marketplace_saas.usage import (
    HOUR,
    PENDING,
    PENDING_PARTITIONS,
    allocations_of,
    decimal_text,
    earliest_accepted,
    hour_of,
    iso_hour,
    marketplace_accepts,
    pending_partition,
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
# AWS slowing the job down (past the SDK's own retries): every worker waits, nothing is dropped.
THROTTLING_ERRORS = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
# Why DynamoDB cancels a transaction that is worth trying again as it is (not a failed condition).
TRANSACTION_RETRIES = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
DYNAMODB_ATTEMPTS = 8
CLAIM_ROUNDS = 4
DEFAULT_CONCURRENCY = 8
# A run stops taking new batches when less time than this is left: enough to finish the batches already
# sealed (BatchMeterUsage's own retries and timeouts included), measure the backlog and close subscriptions.
STOP_RESERVE_SECONDS = 60.0
# No new try of a call is started with less than this left: the records stay sealed for the next run.
RETRY_RESERVE_SECONDS = 20.0
# A claim lasts this much past its run's deadline (clocks of different hosts differ a little).
CLAIM_MARGIN_SECONDS = 60


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
    batches: int = 0
    # Calls AWS throttled past the SDK's retries (each made every worker wait before its next call).
    throttles: int = 0
    # Records another live run had claimed: that run sends them.
    claimed_elsewhere: int = 0
    # The run stopped taking batches to finish within its time; the next run continues.
    stopped_early: bool = False
    seconds: float = 0.0

    def fail(self, reason: str, count: int = 1) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + count

    def add(self, other: RunReport) -> None:
        """Fold in what one batch's worker did."""
        self.sent += other.sent
        self.metered += other.metered
        for reason, count in other.failed.items():
            self.fail(reason, count)
        self.still_pending += other.still_pending
        self.api_calls += other.api_calls
        self.batches += other.batches
        self.throttles += other.throttles
        self.claimed_elsewhere += other.claimed_elsewhere
        self.zero_records_added += other.zero_records_added
        for dimension, quantity in other.billed_by_dimension.items():
            self.billed_by_dimension[dimension] = (
                self.billed_by_dimension.get(dimension, Decimal(0)) + quantity
            )

    def view(self) -> dict[str, Any]:
        return {
            "zeroRecordsAdded": self.zero_records_added,
            "sent": self.sent,
            "metered": self.metered,
            "failed": dict(self.failed),
            "stillPending": self.still_pending,
            "apiCalls": self.api_calls,
            "batches": self.batches,
            "throttles": self.throttles,
            "claimedElsewhere": self.claimed_elsewhere,
            "stoppedEarly": self.stopped_early,
            "seconds": round(self.seconds, 3),
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


@dataclass(frozen=True)
class Outcome:
    """Marketplace's answer for one sealed record, to be stored."""

    sealed: Sealed
    status: str  # metered | failed
    reason: str = ""
    record_id: str | None = None


class Backoff:
    """One pause shared by every worker: when AWS throttles one call, all of them slow down.

    Each throttle doubles the pause (up to `cap` seconds) and moves the moment every worker may call again;
    each success halves it. A throttled call is tried again after the pause, never dropped.
    """

    def __init__(
        self, clock: Callable[[], float], sleep: Callable[[float], None], first: float = 0.1, cap: float = 8.0
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._first, self._cap = first, cap
        self._lock = threading.Lock()
        self._step = 0.0
        self._until = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._until - self._clock()
        if delay > 0:
            self._sleep(delay)

    def throttled(self) -> None:
        with self._lock:
            self._step = min(self._cap, self._step * 2 if self._step else self._first)
            self._until = max(self._until, self._clock() + self._step)

    def succeeded(self) -> None:
        with self._lock:
            if self._step:
                self._step = self._step / 2 if self._step > self._first else 0.0


@dataclass(frozen=True)
class _Lease:
    """This run's claim on the records it seals: who, and until when (epoch seconds)."""

    run_id: str
    until: int
    time_left: Callable[[], float]


class MeteringJob:
    def __init__(
        self,
        settings: ListingSettings,
        usage_table: Any,
        subscribers_table: Any,
        metering_client: Any,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int | None = None,
    ) -> None:
        self._settings = settings
        self._usage = usage_table
        self._subscribers = subscribers_table
        self._metering = metering_client
        self._clock = clock
        self._sleep = sleep
        self._concurrency = max(1, concurrency or settings.metering_concurrency or DEFAULT_CONCURRENCY)
        self._backoff = Backoff(clock, sleep)

    def run(
        self, time_left: Callable[[], float] | None = None, *, close_current_hour: bool = False
    ) -> RunReport:
        """Send every completed hour's usage (the current hour keeps accumulating), and the current hour
        too for licenses in their final hour (cancel-pending): by the next run it may be too late.

        `close_current_hour` sends every billable license's current hour as well, as if the hour were over:
        local mode's "Bill now". Usage recorded later in that hour is then refused (`hour_closed`), as for
        any hour already sent. The hourly schedule never asks for it.

        `time_left` gives the seconds the function has left (the Lambda context's remaining time): the run
        stops taking new batches in time to finish those it sealed, and its claims last until then. Without
        it the run claims records only until it starts, so another run may take them over at once.
        """
        started = time.monotonic()
        report = RunReport()
        if not self._settings.is_metered:
            return report  # a contract, or no dimensions: AWS Marketplace takes no usage for this listing
        now = self._clock()
        lease = self._lease(now, time_left)
        current_hour = hour_of(now)
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="metering") as pool:
            # The billable subscribers, read once: the active ones get zero records, all of them are billed.
            billable = {status: list(self._subscribers_with(status)) for status in BILLABLE_STATUSES}
            if self._settings.sends_zero_records:
                self._add_zero_records(current_hour - HOUR, billable["active"], report, pool)
            report.active_subscribers = len(billable["active"])
            known: dict[Customer, str] = {
                (item["customerAWSAccountId"], item["subscriptionKey"]): status
                for status, group in billable.items()
                for item in group
            }
            leaving = frozenset(
                customer
                for customer, status in known.items()
                if close_current_hour or status == "cancel-pending"
            )
            items = self._pending_before(current_hour + (HOUR if leaving else 0), report)
            self._send_items(items, now, leaving, report, self._subscription_statuses(known), lease, pool)
            self._measure_backlog(report, pool)
        report.seconds = time.monotonic() - started
        return report

    def flush(self, customers: Iterable[Customer]) -> RunReport:
        """Send everything these customers have pending now, the current hour included.

        The subscription lifecycle calls this the moment a subscription starts ending: Marketplace accepts a
        leaving customer's usage for about an hour only. Reads each customer's own recent records (their
        account's partition, as far back as Marketplace still accepts), not the whole backlog.
        """
        started = time.monotonic()
        report = RunReport()
        wanted = frozenset(customers)
        if not self._settings.is_metered or not wanted:
            return report
        now = self._clock()
        lease = self._lease(now, None)
        since = iso_hour(hour_of(earliest_accepted(now)))
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="metering") as pool:
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
                # Only these customers' statuses are needed: looked up on their own, not the status index.
                statuses = self._subscription_statuses({})
                self._send_items(iter(items), now, wanted, report, statuses, lease, pool)
        report.seconds = time.monotonic() - started
        return report

    def customer_of(self, item: Mapping[str, Any]) -> Customer:
        """The subscription a usage item bills (items recorded before per-license keys included)."""
        account = str(item["customerAWSAccountId"])
        if self._settings.legacy_identity or not item.get("licenseArn"):
            return account, self._settings.product_code
        return account, license_id(str(item["licenseArn"]))

    def _lease(self, now: float, time_left: Callable[[], float] | None) -> _Lease:
        if time_left is None:
            return _Lease(uuid.uuid4().hex, int(now), lambda: math.inf)
        return _Lease(uuid.uuid4().hex, math.ceil(now + time_left()) + CLAIM_MARGIN_SECONDS, time_left)

    def _send_items(
        self,
        items: Iterator[dict[str, Any]],
        now: float,
        flush_customers: frozenset[Customer],
        report: RunReport,
        subscription_of: Callable[[Customer], str],
        lease: _Lease,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Form batches in this thread, in the index's order (oldest hour first), and hand each to a worker:
        at most `concurrency` batches are in flight, and none is started once time runs short."""
        in_flight: set[Future[RunReport]] = set()
        failure: BaseException | None = None

        def settle(done: Iterable[Future[RunReport]]) -> None:
            nonlocal failure
            for future in done:
                in_flight.discard(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                else:
                    report.add(future.result())

        for batch in self._batches(items, now, flush_customers, report, subscription_of):
            while len(in_flight) >= self._concurrency:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                settle(done)
            if failure is not None:
                break
            if lease.time_left() < STOP_RESERVE_SECONDS:
                report.stopped_early = True
                break
            in_flight.add(pool.submit(self._process, batch, lease))
        settle(wait(in_flight).done)
        if failure is not None:
            raise failure  # after every batch in flight has finished: nothing is left half-written

    def _batches(
        self,
        items: Iterator[dict[str, Any]],
        now: float,
        flush_customers: frozenset[Customer],
        report: RunReport,
        subscription_of: Callable[[Customer], str],
    ) -> Iterator[list[tuple[dict[str, Any], int]]]:
        """The items to send with their timestamps, in batches of at most 25 records and BATCH_BYTES."""
        current_hour = hour_of(now)
        batch: list[tuple[dict[str, Any], int]] = []
        batch_bytes = 0
        seen: set[tuple[str, str]] = set()
        for item in items:
            key = (str(item["customerAWSAccountId"]), str(item["usageKey"]))
            if key in seen:
                continue  # moved between partition values while being read (usage added to an old item)
            seen.add(key)
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
            size = len(json.dumps(self._usage_record(item, timestamp), default=str))
            if batch and batch_bytes + size > BATCH_BYTES:
                yield batch
                batch, batch_bytes = [], 0
            batch.append((item, timestamp))
            batch_bytes += size
            if len(batch) == BATCH_SIZE:
                yield batch
                batch, batch_bytes = [], 0
        if batch:
            yield batch

    def _process(self, batch: list[tuple[dict[str, Any], int]], lease: _Lease) -> RunReport:
        """One worker's batch: claim and seal it, send it, store the answers. Its own report, merged after."""
        part = RunReport(batches=1)
        sealed = self._claim(batch, lease, part)
        outcomes = self._send(sealed, part, lease)
        self._store(outcomes, part)
        return part

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

    def _measure_backlog(self, report: RunReport, pool: ThreadPoolExecutor) -> None:
        """What is still waiting (including the current hour), and since when: for metrics and alarms.
        Every partition value of the index, read in parallel: a count and its oldest hour each."""

        def measure(partition: str) -> tuple[int, str | None]:
            count_request: dict[str, Any] = {
                "IndexName": PENDING_INDEX,
                "KeyConditionExpression": "pendingPartition = :pending",
                "ExpressionAttributeValues": {":pending": partition},
                "Select": "COUNT",
            }
            count = sum(int(page["Count"]) for page in pages(self._usage_client_query, count_request))
            if not count:
                return 0, None
            oldest = self._usage_client_query(
                IndexName=PENDING_INDEX,
                KeyConditionExpression="pendingPartition = :pending",
                ExpressionAttributeValues={":pending": partition},
                ScanIndexForward=True,
                Limit=1,
            )["Items"]
            return count, (str(oldest[0]["usageHour"]) if oldest else None)

        measured = list(pool.map(measure, PENDING_PARTITIONS))
        report.pending_after += sum(count for count, _ in measured)
        hours = [hour for _, hour in measured if hour]
        report.oldest_pending_hour = min(hours) if hours else None

    def _usage_client_query(self, **request: Any) -> dict[str, Any]:
        """A query of the usage table from any worker thread (the table resource is not thread-safe; its
        client is, and takes and gives plain Python values as the table does)."""
        result: dict[str, Any] = self._dynamodb(
            self._usage.meta.client.query, RunReport(), TableName=self._usage.name, **request
        )
        return result

    # --- reading ----------------------------------------------------------------------------------

    def _pending(self, condition: str, values: dict[str, Any], report: RunReport) -> Iterator[dict[str, Any]]:
        """The pending index's items that meet `condition`, from every partition value (the spread ones and
        `pending`, of items written before the spread), merged into one stream, oldest hour first. Each
        partition's pages are read as the stream reaches them."""

        def partition(value: str) -> Iterator[dict[str, Any]]:
            request: dict[str, Any] = {
                "IndexName": PENDING_INDEX,
                "KeyConditionExpression": f"pendingPartition = :pending AND {condition}",
                "ExpressionAttributeValues": {":pending": value, **values},
            }
            for page in pages(self._usage.query, request):
                report.pages_read += 1
                yield from page["Items"]

        yield from heapq.merge(
            *(partition(value) for value in PENDING_PARTITIONS), key=lambda item: str(item["usageHour"])
        )

    def _pending_before(self, hour: int, report: RunReport) -> Iterator[dict[str, Any]]:
        return self._pending("usageHour < :hour", {":hour": iso_hour(hour)}, report)

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

    def _add_zero_records(
        self, hour: int, active: list[dict[str, Any]], report: RunReport, pool: ThreadPoolExecutor
    ) -> None:
        """Marketplace expects a record every hour for every active license, quantity 0 when quiet.

        Only for hours the license was active in: an hour that ended before AWS Marketplace activated the
        subscription is not billed, and a zero record would close it to usage reported late for it.
        """
        if not active:
            return
        # Licenses with usage waiting for this hour need no zero record: one read of the hour's pending
        # records, rather than a query per license (those are left for the licenses without).
        with_usage = {
            self.customer_of(item)
            for item in self._pending("usageHour = :hour", {":hour": iso_hour(hour)}, RunReport())
        }
        candidates = [
            subscriber
            for subscriber in active
            if int(subscriber.get("activatedAt", 0)) < (hour + HOUR) * 1000
            and (subscriber["customerAWSAccountId"], subscriber["subscriptionKey"]) not in with_usage
        ]
        registered = self._registered(candidates)
        # Known only from a Marketplace event: nobody can have used the product yet, and an identity the
        # listing never confirmed is not worth a record that may fail every hour.
        chosen = [
            subscriber
            for subscriber in candidates
            if (subscriber["customerAWSAccountId"], subscriber["subscriptionKey"]) in registered
        ]
        for part in pool.map(lambda subscriber: self._add_zero_record(hour, subscriber), chosen):
            report.add(part)

    def _add_zero_record(self, hour: int, subscriber: dict[str, Any]) -> RunReport:
        part = RunReport()
        customer: Customer = (subscriber["customerAWSAccountId"], subscriber["subscriptionKey"])
        account = customer[0]
        dimension = min(self._settings.dimensions)
        client, table_name = self._usage.meta.client, self._usage.name
        # Usage of this hour already sent (a flush) also counts: one query of the account's hour.
        existing = self._dynamodb(
            client.query,
            part,
            TableName=table_name,
            KeyConditionExpression="customerAWSAccountId = :a AND begins_with(usageKey, :hour)",
            ExpressionAttributeValues={":a": account, ":hour": iso_hour(hour)},
            ProjectionExpression="customerAWSAccountId, licenseArn",
        )["Items"]
        if any(self.customer_of(item) == customer for item in existing):
            return part
        values: dict[str, Any] = {
            ":zero": 0,
            ":hour": iso_hour(hour),
            ":dimension": dimension,
            ":product": self._settings.product_code,
            ":pending": PENDING,
            ":partition": pending_partition(*customer),
            ":no": False,
        }
        assignments = [
            "usageHour = :hour", "dimension = :dimension", "productCode = :product",
            "pendingPartition = :partition", "meteringStatus = :pending", "allocated = :no",
        ]  # fmt: skip
        for attribute in ("licenseArn", "customerIdentifier"):
            if subscriber.get(attribute):
                values[f":{attribute}"] = subscriber[attribute]
                assignments.append(f"{attribute} = :{attribute}")
        license_key = None if self._settings.legacy_identity else customer[1]
        try:
            self._dynamodb(
                client.update_item,
                part,
                TableName=table_name,
                Key={"customerAWSAccountId": account, "usageKey": usage_key(hour, dimension, license_key)},
                UpdateExpression=f"SET {', '.join(assignments)} ADD quantity :zero",
                ConditionExpression="attribute_not_exists(usageKey)",
                ExpressionAttributeValues=values,
            )
            part.zero_records_added += 1
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise  # usage arrived meanwhile: nothing to add
        return part

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

    # --- claiming and sealing, sending, recording the answers -----------------------------------------

    def _dynamodb(self, operation: Callable[..., Any], part: RunReport, **request: Any) -> Any:
        """One DynamoDB call, after the shared pause; throttled past the SDK's retries, it makes every
        worker pause and is tried again (the last throttle is raised: the records stay pending)."""
        for attempt in range(DYNAMODB_ATTEMPTS):
            self._backoff.wait()
            try:
                result = operation(**request)
            except ClientError as error:
                if error_code(error) not in THROTTLING_ERRORS or attempt == DYNAMODB_ATTEMPTS - 1:
                    raise
                part.throttles += 1
                self._backoff.throttled()
                continue
            self._backoff.succeeded()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _claim(self, batch: list[tuple[dict[str, Any], int]], lease: _Lease, part: RunReport) -> list[Sealed]:
        """Seal the batch's records for this run, in one transaction: an unsealed record gets its quantity
        (exactly the one read: the condition checks it did not change meanwhile) and timestamp frozen, a
        sealed one keeps them; each is claimed until the run's deadline, unless another run's claim on it
        is still running. What a condition refused is read again, consistently, and tried once more."""
        client, table_name = self._usage.meta.client, self._usage.name
        todo: dict[tuple[str, str], tuple[dict[str, Any], int]] = {
            (item["customerAWSAccountId"], item["usageKey"]): (item, timestamp) for item, timestamp in batch
        }
        claimed: list[Sealed] = []
        for _round in range(CLAIM_ROUNDS):
            if not todo:
                break
            now = int(self._clock())
            actions = [self._claim_action(table_name, item, ts, lease, now) for item, ts in todo.values()]
            try:
                self._dynamodb(client.transact_write_items, part, TransactItems=actions)
            except ClientError as error:
                if error_code(error) != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons") or [{}] * len(todo)
                stale: list[tuple[str, str]] = []
                conflicted = False
                for key, reason in zip(list(todo), reasons, strict=False):
                    code = str(reason.get("Code") or "None")
                    if code == "ConditionalCheckFailed":
                        stale.append(key)
                    elif code in TRANSACTION_RETRIES:
                        conflicted = True
                    elif code != "None":
                        raise
                if conflicted:
                    part.throttles += 1
                    self._backoff.throttled()
                for key, fresh in zip(stale, self._read(stale, part), strict=True):
                    item, timestamp = todo.pop(key)
                    again = self._still_ours(fresh, timestamp, lease, part)
                    if again is not None:
                        todo[key] = again
                continue
            for item, timestamp in todo.values():
                sealed_item = dict(item)
                if "sealedQuantity" not in item:
                    sealed_item.update(sealedQuantity=item["quantity"], sealedTimestamp=timestamp)
                claimed.append(Sealed(item_key(item), self._usage_record(sealed_item, timestamp)))
            todo = {}
        part.still_pending += len(todo)  # kept changing under this run: the next run sends them
        return claimed

    def _claim_action(
        self, table_name: str, item: dict[str, Any], timestamp: int, lease: _Lease, now: int
    ) -> dict[str, Any]:
        values: dict[str, Any] = {":run": lease.run_id, ":until": lease.until, ":now": now}
        if "sealedQuantity" in item:
            values[":q"] = item["sealedQuantity"]
            update = "SET claimedBy = :run, claimedUntil = :until"
            condition = "sealedQuantity = :q"
        else:
            values.update({":q": item["quantity"], ":ts": timestamp})
            update = (
                "SET sealedQuantity = :q, sealedAt = :now, sealedTimestamp = :ts, "
                "claimedBy = :run, claimedUntil = :until"
            )
            # The quantity read is the one sealed; the count of tag sets stands for the allocations (usage
            # adds to quantity and allocations together; a new tag set changes the count).
            condition = "attribute_not_exists(sealedQuantity) AND quantity = :q AND "
            if "allocationSets" in item:
                values[":sets"] = item["allocationSets"]
                condition += "allocationSets = :sets"
            else:
                condition += "attribute_not_exists(allocationSets)"
        return {
            "Update": {
                "TableName": table_name,
                "Key": item_key(item),
                "UpdateExpression": update,
                "ConditionExpression": (
                    f"attribute_exists(pendingPartition) AND {condition} AND "
                    "(attribute_not_exists(claimedUntil) OR claimedUntil <= :now OR claimedBy = :run)"
                ),
                "ExpressionAttributeValues": values,
            }
        }

    def _still_ours(
        self, fresh: dict[str, Any] | None, timestamp: int, lease: _Lease, part: RunReport
    ) -> tuple[dict[str, Any], int] | None:
        """After a refused claim: the record as it is now, to claim again, or None when it is not this
        run's to send (finished, or claimed by another run that is still running)."""
        if fresh is None or "pendingPartition" not in fresh:
            return None  # another run finished it meanwhile
        if (
            "claimedUntil" in fresh
            and int(fresh["claimedUntil"]) > int(self._clock())
            and fresh.get("claimedBy") != lease.run_id
        ):
            part.claimed_elsewhere += 1
            return None
        if "sealedQuantity" in fresh:
            timestamp = int(fresh.get("sealedTimestamp", timestamp))
        return fresh, timestamp

    def _read(self, keys: list[tuple[str, str]], part: RunReport) -> list[dict[str, Any] | None]:
        """These items as they are now (strongly consistent), in the order of `keys`."""
        if not keys:
            return []
        client, table_name = self._usage.meta.client, self._usage.name
        request: dict[str, Any] = {
            table_name: {
                "Keys": [{"customerAWSAccountId": account, "usageKey": key} for account, key in keys],
                "ConsistentRead": True,
            }
        }
        found: dict[tuple[str, str], dict[str, Any]] = {}
        while request:
            answer = self._dynamodb(client.batch_get_item, part, RequestItems=request)
            for item in answer["Responses"].get(table_name, []):
                found[(str(item["customerAWSAccountId"]), str(item["usageKey"]))] = item
            request = answer.get("UnprocessedKeys") or {}
            if request:
                part.throttles += 1
                self._backoff.throttled()
        return [found.get(key) for key in keys]

    def _usage_record(self, item: Mapping[str, Any], timestamp: int) -> dict[str, Any]:
        """The UsageRecord an item is sent as (its sealed quantity and timestamp, once sealed)."""
        quantity = item["sealedQuantity"] if "sealedQuantity" in item else item["quantity"]
        record: dict[str, Any] = {
            # A moment of the usage hour, sealed, never the send time: a resend is identical, and billed once.
            # (An item sealed before timestamps were sealed was sent with its hour: `timestamp` is that.)
            "Timestamp": datetime.fromtimestamp(int(item.get("sealedTimestamp", timestamp)), UTC),
            "Dimension": item["dimension"],
            # QuantityAsDecimal, not the deprecated whole-number Quantity (model of 2026-10-20).
            "QuantityAsDecimal": decimal_text(Decimal(quantity)),
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
        return record

    def _call(self, records: list[dict[str, Any]], part: RunReport) -> dict[str, Any] | None:
        request: dict[str, Any] = {"UsageRecords": records}
        if self._settings.legacy_identity:
            request["ProductCode"] = self._settings.product_code
        part.api_calls += 1
        self._backoff.wait()
        try:
            result: dict[str, Any] = self._metering.batch_meter_usage(**request)
        except ClientError as error:
            code = error_code(error)
            if code == "TimestampOutOfBoundsException" or code in RECORD_ERRORS:
                raise BatchRejected(code) from None
            if code in THROTTLING_ERRORS:
                # Throttling past the SDK's retries: every worker slows down; these records wait their turn.
                part.throttles += 1
                self._backoff.throttled()
            # Or an outage: the records stay pending for the next try.
            return None
        except BotoCoreError:
            return None
        self._backoff.succeeded()
        return result

    def _send(self, batch: list[Sealed], part: RunReport, lease: _Lease) -> list[Outcome]:
        outcomes: list[Outcome] = []
        waiting = {_identity(sealed.usage_record): sealed for sealed in batch}
        for delay in (0.0, *RETRY_DELAYS_SECONDS):
            if not waiting:
                break
            if delay:
                if lease.time_left() < RETRY_RESERVE_SECONDS:
                    break  # no time for another try: sealed and claimed, the next run sends them
                self._sleep(delay)
            records = [sealed.usage_record for sealed in waiting.values()]
            part.sent += len(records)
            try:
                result = self._call(records, part)
            except BatchRejected as rejection:
                if len(waiting) > 1:
                    # One record spoils the call (an invalid license or dimension, a timestamp out of
                    # bounds): send each alone so only that one fails.
                    for sealed in list(waiting.values()):
                        outcomes += self._send([sealed], part, lease)
                    return outcomes
                reason = rejection.code.removesuffix("Exception")
                return outcomes + [Outcome(sealed, "failed", reason) for sealed in waiting.values()]
            if result is None:
                continue
            for answer in result.get("Results", []):
                answered = waiting.pop(_identity(answer["UsageRecord"]), None)
                if answered is None:
                    continue
                if answer["Status"] == "Success":
                    outcomes.append(Outcome(answered, "metered", record_id=answer.get("MeteringRecordId")))
                else:
                    outcomes.append(Outcome(answered, "failed", reason=answer["Status"]))
            # Whatever is left was returned as UnprocessedRecords (or not answered): try again.
        part.still_pending += len(waiting)
        return outcomes

    def _store(self, outcomes: list[Outcome], part: RunReport) -> None:
        """Marketplace's answers for a batch, in one transaction (no condition: the run sent these records,
        and an answer for a sealed record is the same whoever stores it). IAM lets the job update items, not
        put them: a transaction of updates, not a BatchWriteItem."""
        if not outcomes:
            return
        now = int(self._clock())
        actions = [
            {"Update": {"TableName": self._usage.name, "Key": outcome.sealed.key, **_settle(outcome, now)}}
            for outcome in outcomes
        ]
        client = self._usage.meta.client
        for attempt in range(DYNAMODB_ATTEMPTS):
            try:
                self._dynamodb(client.transact_write_items, part, TransactItems=actions)
                break
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                retry = error_code(error) == "TransactionCanceledException" and all(
                    str(reason.get("Code") or "None") in TRANSACTION_RETRIES | {"None"} for reason in reasons
                )
                if not retry or attempt == DYNAMODB_ATTEMPTS - 1:
                    raise
                part.throttles += 1
                self._backoff.throttled()
        for outcome in outcomes:
            if outcome.status == "metered":
                part.metered += 1
                dimension = outcome.sealed.usage_record["Dimension"]
                part.billed_by_dimension[dimension] = part.billed_by_dimension.get(
                    dimension, Decimal(0)
                ) + Decimal(outcome.sealed.usage_record["QuantityAsDecimal"])
            else:
                part.fail(outcome.reason)

    def _finish(self, key: dict[str, str], status: str, report: RunReport, *, reason: str = "") -> None:
        """A record that is not sent (too old, its subscription ended) is settled on its own."""
        update = _settle(Outcome(Sealed(key, {}), status, reason), int(self._clock()))
        self._usage.update_item(Key=key, **update)
        report.fail(reason)


def _settle(outcome: Outcome, now: int) -> dict[str, Any]:
    """The update that stores a record's outcome and takes it out of the pending index."""
    values: dict[str, Any] = {":status": outcome.status, ":at": now}
    assignments = ["meteringStatus = :status", "finishedAt = :at"]
    if outcome.record_id:
        values[":id"] = outcome.record_id
        assignments.append("meteringRecordId = :id")
    if outcome.reason:
        values[":reason"] = outcome.reason
        assignments.append("failureReason = :reason")
    return {
        "UpdateExpression": f"SET {', '.join(assignments)} REMOVE pendingPartition, claimedBy, claimedUntil",
        "ExpressionAttributeValues": values,
    }


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
