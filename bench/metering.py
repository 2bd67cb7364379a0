"""The metering job at N = 1,000 and 10,000 pending records: calls made against the minimum, and wall time
against the floor of the same API calls and queries issued directly, measured in one run.

DynamoDB is moto's in-process backend and AWS Marketplace is the project's emulator on 127.0.0.1, the same
for the job and for the floor. The floor issues exactly the job's work with no logic around it: the
paginated index queries, one seal and one result write per record, and ceil(N / 25) BatchMeterUsage calls.
Half of the customers hold two licenses of the listing at once (concurrent agreements): records are per
license, and each license is billed on its own.

    .venv/bin/python bench/metering.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
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
from marketplace_saas.usage import HOUR, decimal_text, hour_of, iso_hour

PRODUCT = "PROD_BENCH"
CUSTOMERS_PER_1000 = 40


class Counting:
    """Counts the calls made through a boto3 client or table."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
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


def seed(emulator: EmulatorServer, usage: Any, subscribers: Any, count: int, now: float) -> None:
    """`count` pending records over active licenses x dimensions x the last 4 completed hours."""
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
                            "pendingPartition": "pending",
                            "meteringStatus": "pending",
                            "allocated": False,
                        }
                    )
                    written += 1


def floor(usage: Any, metering: Any, now: float) -> None:
    """The same reads, writes and API calls as the job, with nothing else."""
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
    keys = [{"customerAWSAccountId": i["customerAWSAccountId"], "usageKey": i["usageKey"]} for i in items]
    for key in keys:
        usage.update_item(Key=key, UpdateExpression="SET sealedQuantity = quantity", ReturnValues="ALL_NEW")
    for start in range(0, len(items), 25):
        chunk = items[start : start + 25]
        metering.batch_meter_usage(
            UsageRecords=[
                {
                    "Timestamp": datetime.fromisoformat(i["usageHour"].replace("Z", "+00:00")),
                    "CustomerAWSAccountId": i["customerAWSAccountId"],
                    "LicenseArn": i["licenseArn"],
                    "Dimension": i["dimension"],
                    "QuantityAsDecimal": decimal_text(i["quantity"]),
                }
                for i in chunk
            ]
        )
    for key in keys:
        usage.update_item(
            Key=key,
            UpdateExpression="SET meteringStatus = :m REMOVE pendingPartition",
            ExpressionAttributeValues={":m": "metered"},
        )


def measure(count: int) -> None:
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
        )
        usage, subscribers = create_tables()
        now = time.time()

        def timed(action: Callable[[], None]) -> float:
            started = time.perf_counter()
            action()
            return time.perf_counter() - started

        seed(emulator, usage, subscribers, count, now)
        metering = Counting(boto3.client("meteringmarketplace"))
        counted_usage = Counting(usage)
        job = MeteringJob(
            settings, counted_usage, subscribers, metering, clock=lambda: now, sleep=lambda _: None
        )
        job_seconds = timed(lambda: job.run())
        billed = len(emulator.marketplace.billed)

        emulator.marketplace.reset()
        for item in list(usage.scan()["Items"]):
            usage.delete_item(
                Key={"customerAWSAccountId": item["customerAWSAccountId"], "usageKey": item["usageKey"]}
            )
        seed(emulator, usage, subscribers, count, now)
        floor_client = boto3.client("meteringmarketplace")
        floor_seconds = timed(lambda: floor(usage, floor_client, now))

    minimum_calls = math.ceil(count / 25)
    pages = counted_usage.calls.get("query", 0)
    print(f"N = {count:,} pending records ({billed:,} billed)")
    print(
        f"  BatchMeterUsage calls   {metering.calls.get('batch_meter_usage', 0):>6}   minimum {minimum_calls}"
    )
    print(f"  index queries (pages)   {pages:>6}   scans {counted_usage.calls.get('scan', 0)}")
    writes = counted_usage.calls.get("update_item", 0)
    print(f"  item writes             {writes:>6}   minimum {2 * count} (seal + result)")
    ratio = job_seconds / floor_seconds
    print(f"  wall time               {job_seconds:6.2f} s   floor {floor_seconds:.2f} s", end="")
    print(f"   ratio {ratio:.2f} (goal <= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    for count in parser.parse_args().sizes:
        measure(count)


if __name__ == "__main__":
    main()
