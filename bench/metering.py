"""The metering job at N pending records, with latency injected on every call (default 5 ms per DynamoDB
request, 80 ms per BatchMeterUsage call): wall time, calls, DynamoDB requests, and the ratio to the floor
ceil(N / 25) x BatchMeterUsage latency / concurrency; against the sequential path measured in the same run.

DynamoDB is moto's in-process backend and AWS Marketplace is the project's emulator on 127.0.0.1, the same
for the job and for the baseline. The baseline is the job as it was before it was parallel: one record at a
time, a conditional seal and a result write per record, ceil(N / 25) BatchMeterUsage calls one after the
other. Half of the customers hold two licenses of the listing at once (concurrent agreements): records are
per license, and each license is billed on its own. moto serves one request at a time (as a thread-safe
service would answer each atomically) and spends CPU on each: the figures include that time, which real
DynamoDB does not add.

    .venv/bin/python bench/metering.py [--sizes 10000 100000] [--ddb-latency-ms 5] [--bmu-latency-ms 80]
        [--concurrency 8]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "lambda")]
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from local.marketplace_emulator import EmulatorServer  # noqa: E402
from marketplace_saas.metering import MeteringJob  # noqa: E402
from marketplace_saas.models import license_id  # noqa: E402
from marketplace_saas.settings import ListingSettings  # noqa: E402
from marketplace_saas.usage import HOUR, decimal_text, hour_of, iso_hour, pending_partition  # noqa: E402
from tests.support import moto_dynamodb  # noqa: E402

PRODUCT = "PROD_BENCH"
CUSTOMERS_PER_1000 = 40


class Counting:
    """Counts the calls made through a boto3 client or table (and its `meta.client`), each after `latency`
    seconds: the round trip to the service, injected."""

    def __init__(self, target: Any, latency: float, calls: dict[str, int] | None = None) -> None:
        self.target = target
        self.latency = latency
        self.calls: dict[str, int] = {} if calls is None else calls
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if name == "meta" and hasattr(attribute, "client"):
            return SimpleNamespace(client=Counting(attribute.client, self.latency, self.calls))
        if not callable(attribute) or name == "batch_writer":
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls[name] = self.calls.get(name, 0) + 1
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


def measure(count: int, ddb_latency: float, bmu_latency: float, concurrency: int) -> None:
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

        def timed(action: Callable[[], None]) -> float:
            started = time.perf_counter()
            action()
            return time.perf_counter() - started

        seed(emulator, usage, subscribers, count, now)
        metering = Counting(Latent(boto3.client("meteringmarketplace"), bmu_latency), 0)
        counted_usage = Counting(usage, ddb_latency)
        counted_subscribers = Counting(subscribers, ddb_latency, counted_usage.calls)
        job = MeteringJob(
            settings, counted_usage, counted_subscribers, metering, clock=lambda: now, sleep=lambda _: None
        )
        report = job.run(time_left=lambda: 10_000.0)
        job_seconds = report.seconds
        billed = len(emulator.marketplace.billed)

        emulator.marketplace.reset()
        for item in list(usage.scan()["Items"]):
            usage.delete_item(
                Key={"customerAWSAccountId": item["customerAWSAccountId"], "usageKey": item["usageKey"]}
            )
        seed(emulator, usage, subscribers, count, now, spread=False)
        old_metering = Counting(Latent(boto3.client("meteringmarketplace"), bmu_latency), 0)
        old_usage = Counting(usage, ddb_latency)
        old_seconds = timed(lambda: sequential(old_usage, old_metering, now))
        old_billed = len(emulator.marketplace.billed)

    calls = math.ceil(count / 25)
    floor = calls * bmu_latency / concurrency
    requests = sum(counted_usage.calls.values())
    old_requests = sum(old_usage.calls.values())
    print(f"N = {count:,} pending records, {ddb_latency * 1000:g} ms per DynamoDB request, ", end="")
    print(f"{bmu_latency * 1000:g} ms per BatchMeterUsage call, concurrency {concurrency}")
    print(f"                        {'job':>10} {'sequential':>12}")
    print(f"  billed                {billed:>10,} {old_billed:>12,}")
    print(
        f"  BatchMeterUsage calls {metering.calls.get('batch_meter_usage', 0):>10,} "
        f"{old_metering.calls.get('batch_meter_usage', 0):>12,}   minimum ceil(N/25) = {calls:,}"
    )
    print(f"  DynamoDB requests     {requests:>10,} {old_requests:>12,}")
    print(f"  wall time             {job_seconds:>9.1f}s {old_seconds:>11.1f}s", end="")
    print(f"   floor {floor:.1f} s: job {job_seconds / floor:.2f}x, sequential {old_seconds / floor:.2f}x")
    print(f"  job / sequential      {job_seconds / old_seconds:>10.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--ddb-latency-ms", type=float, default=5.0)
    parser.add_argument("--bmu-latency-ms", type=float, default=80.0)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    print(f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}, {os.cpu_count()} CPUs")
    for count in arguments.sizes:
        measure(
            count, arguments.ddb_latency_ms / 1000, arguments.bmu_latency_ms / 1000, arguments.concurrency
        )


if __name__ == "__main__":
    main()
