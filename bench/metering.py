"""The metering job at N pending records, with latency injected on every call (default 5 ms per DynamoDB
request, 80 ms per BatchMeterUsage call): wall time, calls, DynamoDB requests, and the ratio to the floor
ceil(N / 25) x BatchMeterUsage latency / concurrency; against the sequential path measured in the same run.

DynamoDB is moto's in-process backend, the same for the job and for the baseline. The baseline is the job
as it was before it was parallel: one record at a time, a conditional seal and a result write per record,
ceil(N / 25) BatchMeterUsage calls one after the other. Half of the customers hold two licenses of the
listing at once (concurrent agreements): records are per license, and each license is billed on its own.

moto serves one request at a time (as a thread-safe service would answer each atomically), and the
injected latency is slept before a request reaches it, outside that lock: the workers' round trips overlap
as they would in AWS. moto's own work on each request is serialised and costs CPU that DynamoDB does not
add to a Lambda function, so the time requests spend inside moto is measured and reported on its own, and
the time without it is estimated as wall time less moto's time, but never below the latency floor
(the main thread's own requests, plus every batch's requests and call spread over the workers). On a
loaded machine wall times stretch; the upper estimate, the latency floor plus the path's own CPU time
(this process's CPU less moto's, measured per thread), does not depend on the load.

AWS Marketplace is either the project's emulator on 127.0.0.1 (`--marketplace emulator`, the default: its
rules, over HTTP, in this process) or `--marketplace fake`: a thread-safe in-process stand-in that answers
every record Success after the injected latency, so only the job's own work runs in this process; it
counts each distinct record it billed and each record it saw twice (the job must send none twice).

    .venv/bin/python bench/metering.py [--sizes 10000 100000] [--ddb-latency-ms 5] [--bmu-latency-ms 80]
        [--concurrency 8] [--marketplace emulator|fake]
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
)

import boto3
from moto import mock_aws

from local.marketplace_emulator import EmulatorServer
from marketplace_saas.metering import MeteringJob
from marketplace_saas.models import license_id
from marketplace_saas.settings import ListingSettings
from marketplace_saas.usage import HOUR, decimal_text, hour_of, iso_hour, pending_partition
from tests.support import moto_dynamodb

PRODUCT = "PROD_BENCH"
CUSTOMERS_PER_1000 = 40
MAIN_THREAD = " main thread"  # a key of Counting.calls beside the method names


class MotoTime:
    """The seconds requests spend inside moto (its request dispatch, under moto_dynamodb's lock)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.last_cpu_seconds = 0.0
        self.requests = 0
        self.by_operation: dict[str, float] = {}
        self.last_by_operation: dict[str, float] = {}
        self.installed = False

    def install(self) -> None:
        """Wraps moto's dispatch before moto_dynamodb.apply() puts its lock around it, so that what is
        timed is the time each request holds the lock, not the time it waits for it."""
        if self.installed:
            return
        self.installed = True
        from moto.core.botocore_stubber import BotocoreStubber

        dispatch = BotocoreStubber.__call__

        def timed(stubber: Any, event_name: str, request: Any, *args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return dispatch(stubber, event_name, request, *args, **kwargs)
            finally:
                spent = time.perf_counter() - started  # under the lock: one request at a time
                self.seconds += spent
                self.cpu_seconds += time.thread_time() - cpu  # moto's own CPU, not waits for the CPU
                self.requests += 1
                target = str(request.headers.get("X-Amz-Target", b"") or "")
                operation = target.rsplit(".", 1)[-1].rstrip("'") or "other"
                self.by_operation[operation] = self.by_operation.get(operation, 0.0) + spent

        BotocoreStubber.__call__ = timed  # type: ignore[method-assign]

    def take(self) -> float:
        seconds, self.seconds, self.requests = self.seconds, 0.0, 0
        self.last_cpu_seconds, self.cpu_seconds = self.cpu_seconds, 0.0
        self.last_by_operation, self.by_operation = self.by_operation, {}
        return seconds


MOTO_TIME = MotoTime()


class FakeMarketplace:
    """BatchMeterUsage as a thread-safe in-process stand-in: every record Success after `latency` seconds
    (slept outside its lock). Counts the distinct records billed and the records sent again."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.billed: set[tuple[Any, ...]] = set()
        self.duplicates = 0
        self.calls: dict[str, int] = {}

    def batch_meter_usage(self, **request: Any) -> Any:
        time.sleep(self.latency)
        records = request["UsageRecords"]
        with self.lock:
            self.calls["batch_meter_usage"] = self.calls.get("batch_meter_usage", 0) + 1
            for record in records:
                key = (
                    record.get("CustomerAWSAccountId"),
                    record.get("LicenseArn"),
                    record["Dimension"],
                    record["Timestamp"],
                )
                if key in self.billed:
                    self.duplicates += 1
                self.billed.add(key)
        results = [
            {"UsageRecord": record, "MeteringRecordId": uuid.uuid4().hex, "Status": "Success"}
            for record in records
        ]
        return {"Results": results, "UnprocessedRecords": []}


class Counting:
    """Counts the calls made through a boto3 client or table (and its `meta.client`), each after `latency`
    seconds: the round trip to the service, injected."""

    def __init__(self, target: Any, latency: float, calls: dict[str, int] | None = None) -> None:
        self.target = target
        self.latency = latency
        self.calls: dict[str, int] = {} if calls is None else calls
        self.lock = threading.Lock()

    @property
    def main_thread_calls(self) -> int:
        """Calls made by the thread that runs the job (reading the index), not by its workers."""
        return self.calls.get(MAIN_THREAD, 0)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if name == "meta" and hasattr(attribute, "client"):
            return SimpleNamespace(client=Counting(attribute.client, self.latency, self.calls))
        if not callable(attribute) or name == "batch_writer":
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls[name] = self.calls.get(name, 0) + 1
                if threading.current_thread() is threading.main_thread():
                    self.calls[MAIN_THREAD] = self.calls.get(MAIN_THREAD, 0) + 1
            time.sleep(self.latency)
            return attribute(*args, **kwargs)

        return call


def create_tables() -> tuple[Any, Any]:
    client = boto3.client("dynamodb")
    string = "S"
    client.create_table(
        TableName="metering",
        KeySchema=[
            {"AttributeName": "customerAWSAccountId", "KeyType": "HASH"},
            {"AttributeName": "usageKey", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": string}
            for name in ("customerAWSAccountId", "usageKey", "pendingPartition", "usageHour")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "pendingByHour",
                "KeySchema": [
                    {"AttributeName": "pendingPartition", "KeyType": "HASH"},
                    {"AttributeName": "usageHour", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName="subscribers",
        KeySchema=[
            {"AttributeName": "customerAWSAccountId", "KeyType": "HASH"},
            {"AttributeName": "subscriptionKey", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": string}
            for name in ("customerAWSAccountId", "subscriptionKey", "status")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byStatus",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "customerAWSAccountId", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb = boto3.resource("dynamodb")
    return dynamodb.Table("metering"), dynamodb.Table("subscribers")


def seed(
    emulator: EmulatorServer, usage: Any, subscribers: Any, count: int, now: float, spread: bool = True
) -> None:
    """`count` pending records over active licenses x dimensions x the last 4 completed hours, under the
    pending index's spread partition values (or, for the sequential path, its one value of before)."""
    customers = max(1, count * CUSTOMERS_PER_1000 // 1000)
    license_count = customers + (customers + 1) // 2
    dimensions = [f"d{n}" for n in range(math.ceil(count / (license_count * 4)))]
    emulator.marketplace.put_product({"productCode": PRODUCT, "dimensions": dimensions})
    licenses: list[tuple[str, str]] = []  # (account, license ARN); every other customer holds two
    for index in range(customers):
        account = f"{index:012d}"
        for new_agreement in (False, True)[: 2 if index % 2 == 0 else 1]:
            subscription, _ = emulator.marketplace.subscribe(
                {"productCode": PRODUCT, "customerAWSAccountId": account, "newAgreement": new_agreement}
            )
            licenses.append((account, subscription.license_arn))
    # Only subscriptions AWS Marketplace confirmed are billed: every license here has been active for hours.
    with subscribers.batch_writer() as writer:
        for account, license_arn in licenses:
            writer.put_item(
                Item={
                    "customerAWSAccountId": account,
                    "subscriptionKey": license_id(license_arn),
                    "licenseArn": license_arn,
                    "productCode": PRODUCT,
                    "status": "active",
                    "activatedAt": int((now - 6 * HOUR) * 1000),
                }
            )
    current = hour_of(now)
    written = 0
    with usage.batch_writer() as writer:
        for hours_ago in (1, 2, 3, 4):
            hour = iso_hour(current - hours_ago * HOUR)
            for dimension in dimensions:
                for account, license_arn in licenses:
                    if written == count:
                        return
                    writer.put_item(
                        Item={
                            "customerAWSAccountId": account,
                            "usageKey": f"{hour}#{dimension}#{license_id(license_arn)}",
                            "usageHour": hour,
                            "dimension": dimension,
                            "quantity": Decimal(1 + written % 7) / 4,
                            "licenseArn": license_arn,
                            "productCode": PRODUCT,
                            "pendingPartition": (
                                pending_partition(account, license_id(license_arn)) if spread else "pending"
                            ),
                            "meteringStatus": "pending",
                            "allocated": False,
                        }
                    )
                    written += 1


def sequential(usage: Any, metering: Any, now: float) -> None:
    """The job before it was parallel: read the pending index, then one record at a time a conditional
    seal (returning the item), a BatchMeterUsage call per 25 sealed, and one result write per record."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "IndexName": "pendingByHour",
        "KeyConditionExpression": "pendingPartition = :p AND usageHour < :h",
        "ExpressionAttributeValues": {":p": "pending", ":h": iso_hour(hour_of(now))},
    }
    while True:
        page = usage.query(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def settle(batch: list[dict[str, Any]]) -> None:
        answer = metering.batch_meter_usage(
            UsageRecords=[
                {
                    "Timestamp": datetime.fromisoformat(i["usageHour"].replace("Z", "+00:00")),
                    "CustomerAWSAccountId": i["customerAWSAccountId"],
                    "LicenseArn": i["licenseArn"],
                    "Dimension": i["dimension"],
                    "QuantityAsDecimal": decimal_text(i["sealedQuantity"]),
                }
                for i in batch
            ]
        )
        for item, result in zip(batch, answer["Results"], strict=False):
            usage.update_item(
                Key={"customerAWSAccountId": item["customerAWSAccountId"], "usageKey": item["usageKey"]},
                UpdateExpression="SET meteringStatus = :m, meteringRecordId = :r REMOVE pendingPartition",
                ExpressionAttributeValues={":m": "metered", ":r": result.get("MeteringRecordId", "")},
            )

    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(
            usage.update_item(
                Key={"customerAWSAccountId": item["customerAWSAccountId"], "usageKey": item["usageKey"]},
                UpdateExpression="SET sealedQuantity = quantity, sealedAt = :now",
                ConditionExpression="attribute_not_exists(sealedQuantity)",
                ExpressionAttributeValues={":now": int(now)},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
        if len(batch) == 25:
            settle(batch)
            batch = []
    if batch:
        settle(batch)


class Latent:
    """A BatchMeterUsage client whose calls take `latency` seconds more (the round trip to AWS)."""

    def __init__(self, target: Any, latency: float) -> None:
        self.target, self.latency = target, latency

    def batch_meter_usage(self, **request: Any) -> Any:
        time.sleep(self.latency)
        return self.target.batch_meter_usage(**request)


@dataclass
class Run:
    """One path's figures at N records."""

    seconds: float
    moto_seconds: float  # of `seconds`, inside moto (serialised; DynamoDB's own work in AWS)
    cpu_seconds: float  # this process's CPU time over the run, moto's included
    moto_cpu_seconds: float  # of `cpu_seconds`, moto's
    billed: int
    duplicates: int | None  # records sent again (known with the fake Marketplace only)
    bmu_calls: int
    ddb_requests: int
    latency_floor: float  # the least time the injected latency alone allows
    moto_by_operation: dict[str, float]

    @property
    def without_moto(self) -> float:
        """The estimate for AWS: moto's serialised time taken out, never below the latency floor."""
        return max(self.seconds - self.moto_seconds, self.latency_floor)

    @property
    def own_cpu(self) -> float:
        """The CPU time the path itself spent (botocore, the job's code): in Lambda too, and serial there
        (one interpreter lock)."""
        return self.cpu_seconds - self.moto_cpu_seconds

    @property
    def conservative(self) -> float:
        """An upper estimate for AWS that the machine's load does not change: the latency floor plus the
        path's own CPU time, as though none of that work overlapped any round trip."""
        return self.latency_floor + self.own_cpu


def _marketplace(kind: str, emulator: EmulatorServer, latency: float) -> tuple[Any, Callable[[], Any]]:
    """The BatchMeterUsage client, and what gives (billed, duplicates) after a run."""
    if kind == "fake":
        fake = FakeMarketplace(latency)
        return fake, lambda: (len(fake.billed), fake.duplicates)
    client = Counting(Latent(boto3.client("meteringmarketplace"), latency), 0)
    return client, lambda: (len(emulator.marketplace.billed), None)


def _timed(action: Callable[[], Any]) -> tuple[float, float, float, dict[str, float]]:
    """Wall seconds, moto's seconds, CPU seconds of `action`, and moto's seconds by operation."""
    MOTO_TIME.take()
    cpu, started = time.process_time(), time.perf_counter()
    action()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return seconds, MOTO_TIME.take(), cpu, MOTO_TIME.last_by_operation


def measure(
    count: int, ddb_latency: float, bmu_latency: float, concurrency: int, marketplace: str
) -> tuple[Run, Run]:
    MOTO_TIME.install()  # before moto_dynamodb's lock goes around moto's dispatch (once)
    moto_dynamodb.apply()
    with EmulatorServer() as emulator, mock_aws():
        os.environ["AWS_ENDPOINT_URL_MARKETPLACE_METERING"] = emulator.url
        settings = ListingSettings(
            listing_path="bench",
            product_code=PRODUCT,
            pricing_model="subscription",
            legacy_identity=False,
            subscribers_table="subscribers",
            registrations_table="registrations",
            metering_table="metering",
            dimensions=frozenset({"d0"}),
            metering_concurrency=concurrency,
        )
        usage, subscribers = create_tables()
        now = time.time()
        calls = math.ceil(count / 25)

        seed(emulator, usage, subscribers, count, now)
        metering, outcome = _marketplace(marketplace, emulator, bmu_latency)
        counted_usage = Counting(usage, ddb_latency)
        counted_subscribers = Counting(subscribers, ddb_latency, counted_usage.calls)
        job = MeteringJob(
            settings, counted_usage, counted_subscribers, metering, clock=lambda: now, sleep=lambda _: None
        )
        seconds, moto_seconds, cpu, by_operation = _timed(lambda: job.run(time_left=lambda: 10_000.0))
        billed, duplicates = outcome()
        requests = sum(n for name, n in counted_usage.calls.items() if name != MAIN_THREAD)
        # Each batch: its claim, its call, its answers; the batches spread over the workers.
        per_batch = 2 * ddb_latency + bmu_latency
        floor = counted_usage.main_thread_calls * ddb_latency + calls * per_batch / concurrency
        new = Run(
            seconds,
            moto_seconds,
            cpu,
            MOTO_TIME.last_cpu_seconds,
            billed,
            duplicates,
            metering.calls.get("batch_meter_usage", 0),
            requests,
            floor,
            by_operation,
        )

        emulator.marketplace.reset()
        for item in list(usage.scan()["Items"]):
            usage.delete_item(
                Key={"customerAWSAccountId": item["customerAWSAccountId"], "usageKey": item["usageKey"]}
            )
        seed(emulator, usage, subscribers, count, now, spread=False)
        old_metering, old_outcome = _marketplace(marketplace, emulator, bmu_latency)
        old_usage = Counting(usage, ddb_latency)
        seconds, moto_seconds, cpu, by_operation = _timed(lambda: sequential(old_usage, old_metering, now))
        billed, duplicates = old_outcome()
        requests = sum(n for name, n in old_usage.calls.items() if name != MAIN_THREAD)
        old = Run(
            seconds,
            moto_seconds,
            cpu,
            MOTO_TIME.last_cpu_seconds,
            billed,
            duplicates,
            old_metering.calls.get("batch_meter_usage", 0),
            requests,
            requests * ddb_latency + calls * bmu_latency,
            by_operation,
        )
    return new, old


def report(count: int, new: Run, old: Run, ddb_latency: float, bmu_latency: float, concurrency: int) -> None:
    calls = math.ceil(count / 25)
    floor = calls * bmu_latency / concurrency
    print(f"N = {count:,} pending records, {ddb_latency * 1000:g} ms per DynamoDB request, ", end="")
    print(f"{bmu_latency * 1000:g} ms per BatchMeterUsage call, concurrency {concurrency}")
    print(f"                          {'job':>10} {'sequential':>12}")
    print(f"  billed                  {new.billed:>10,} {old.billed:>12,}")
    if new.duplicates is not None and old.duplicates is not None:
        print(f"  records sent twice      {new.duplicates:>10,} {old.duplicates:>12,}")
    print(
        f"  BatchMeterUsage calls   {new.bmu_calls:>10,} {old.bmu_calls:>12,}   minimum ceil(N/25) {calls:,}"
    )
    print(f"  DynamoDB requests       {new.ddb_requests:>10,} {old.ddb_requests:>12,}")
    print(f"  wall time (measured)    {new.seconds:>9.1f}s {old.seconds:>11.1f}s", end="")
    print(f"   floor {floor:.1f} s: job {new.seconds / floor:.2f}x, sequential {old.seconds / floor:.2f}x")
    print(f"  of it inside moto       {new.moto_seconds:>9.1f}s {old.moto_seconds:>11.1f}s")
    for operation in sorted(set(new.moto_by_operation) | set(old.moto_by_operation)):
        print(
            f"    {operation:<21} {new.moto_by_operation.get(operation, 0.0):>9.1f}s "
            f"{old.moto_by_operation.get(operation, 0.0):>11.1f}s"
        )
    print(f"  process CPU             {new.cpu_seconds:>9.1f}s {old.cpu_seconds:>11.1f}s")
    print(f"    of it inside moto     {new.moto_cpu_seconds:>9.1f}s {old.moto_cpu_seconds:>11.1f}s")
    print(f"  latency floor           {new.latency_floor:>9.1f}s {old.latency_floor:>11.1f}s")
    print(f"  without moto (estimate) {new.without_moto:>9.1f}s {old.without_moto:>11.1f}s")
    print(f"  floor + own CPU (upper) {new.conservative:>9.1f}s {old.conservative:>11.1f}s")
    print(
        f"  records/s, measured     {count / new.seconds:>10,.0f} {count / old.seconds:>12,.0f}\n"
        f"  records/s, without moto {count / new.without_moto:>10,.0f} {count / old.without_moto:>12,.0f}"
    )
    print(
        f"  100,000 records at that {100_000 / count * new.without_moto:>9.0f}s "
        f"{100_000 / count * old.without_moto:>11.0f}s   (goal: 300 s)\n"
        f"    at the upper estimate {100_000 / count * new.conservative:>9.0f}s "
        f"{100_000 / count * old.conservative:>11.0f}s"
    )
    print(
        f"  job / sequential        {new.seconds / old.seconds:>10.3f} measured, "
        f"{new.without_moto / old.without_moto:.3f} without moto",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--ddb-latency-ms", type=float, default=5.0)
    parser.add_argument("--bmu-latency-ms", type=float, default=80.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--marketplace", choices=["emulator", "fake"], default="emulator")
    arguments = parser.parse_args()
    print(
        f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}, {os.cpu_count()} CPUs, ",
        end="",
    )
    print(f"Marketplace: {arguments.marketplace}")
    ddb, bmu = arguments.ddb_latency_ms / 1000, arguments.bmu_latency_ms / 1000
    for count in arguments.sizes:
        new, old = measure(count, ddb, bmu, arguments.concurrency, arguments.marketplace)
        report(count, new, old, ddb, bmu, arguments.concurrency)
    print(f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
