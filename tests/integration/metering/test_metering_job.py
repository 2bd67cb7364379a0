"""The metering job: exactly once, nothing lost, through crashes, throttling and unprocessed records."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from marketplace_saas.models import license_id
from marketplace_saas.usage import UsageAllocation
from tests.integration.metering.conftest import DIMENSIONS, Crash, CrashingProxy, Harness

ACCOUNTS = [f"1000000000{n:02d}" for n in range(6)]


def hour_iso(harness: Harness, hours_ago: float) -> str:
    moment = datetime.fromtimestamp(harness.now[0], UTC) - timedelta(hours=hours_ago)
    return moment.replace(minute=0, second=0, microsecond=0).isoformat()


def seed_usage(harness: Harness, accounts: list[str] = ACCOUNTS) -> dict[tuple[str, str, str], int]:
    """Usage in the two last completed hours and the current one; returns what should be billed."""
    expected: dict[tuple[str, str, str], int] = {}
    for index, account in enumerate(accounts):
        harness.buyer(account)
        for hours_ago, dimension, quantity in (
            (2, "users", index + 1),
            (1, "storage", 10 * index),
            (1, "users", 7),
        ):
            harness.record(account, quantity, hours_ago=hours_ago, dimension=dimension)
            key = (account, dimension, hour_iso(harness, hours_ago))
            expected[key] = expected.get(key, 0) + quantity
        harness.record(account, 99, hours_ago=0)  # the current hour: still accumulating, not sent
    return expected


def test_completed_hours_are_billed_once_with_the_usage_hour_as_timestamp(harness: Harness) -> None:
    expected = seed_usage(harness)
    report = harness.run()
    assert harness.billed() == expected
    assert report.metered == len(expected)
    assert report.api_calls == math.ceil(len(expected) / 25)
    # What is left is the current hour, reported for the backlog metrics
    assert report.pending_after == len(ACCOUNTS)
    assert report.oldest_pending_hour == hour_iso(harness, 0).replace("+00:00", "Z")
    statuses = [item.get("meteringStatus") for item in harness.items()]
    assert statuses.count("metered") == len(expected)
    assert statuses.count("pending") == len(ACCOUNTS)  # the current hour
    current = [
        item for item in harness.items() if item["usageHour"] == hour_iso(harness, 0).replace("+00:00", "Z")
    ]
    assert all(item["pendingPartition"] == "pending" for item in current)
    assert all(
        "meteringRecordId" in item for item in harness.items() if item.get("meteringStatus") == "metered"
    )
    # A second run finds nothing left to send
    again = harness.run()
    assert (again.sent, again.api_calls) == (0, 0)


def test_quiet_active_subscribers_get_a_zero_record_each_hour(harness: Harness) -> None:
    harness.buyer("200000000001")
    harness.buyer("200000000002", status="pending")  # not yet confirmed: no record
    report = harness.run()
    assert report.zero_records_added == 1
    # one zero record, on the listing's first dimension by name
    assert harness.billed() == {("200000000001", min(DIMENSIONS), hour_iso(harness, 1)): 0}


def test_allocations_are_sent_with_their_record(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    harness.record(
        ACCOUNTS[0],
        3,
        allocations=[
            UsageAllocation(quantity=1, tags={"team": "red"}),
            UsageAllocation(quantity=2, tags={"team": "blue", "env": "prod"}),
        ],
    )
    harness.run()
    (billed,) = harness.emulator.billed("PROD_ONBOARD")
    assert sorted(a["AllocatedUsageQuantity"] for a in billed["allocations"]) == [1, 2]
    assert {"Key": "env", "Value": "prod"} in next(
        a for a in billed["allocations"] if a["AllocatedUsageQuantity"] == 2
    )["Tags"]


def test_legacy_listings_meter_by_customer_identifier_and_product_code(legacy_harness: Harness) -> None:
    minted = legacy_harness.buyer(ACCOUNTS[0])
    legacy_harness.record(ACCOUNTS[0], 4)
    legacy_harness.run()
    (billed,) = legacy_harness.emulator.billed("PROD_ONBOARD")
    assert billed["identityType"] == "CustomerIdentifier"
    assert billed["customer"] == minted["customerIdentifier"]
    assert billed["quantity"] == 4


def test_a_cancelled_customer_is_a_final_failure_not_a_retry(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    harness.record(ACCOUNTS[0], 4)
    harness.emulator.admin(
        "POST",
        "/_emulator/events",
        {"productCode": "PROD_ONBOARD", "customerAWSAccountId": ACCOUNTS[0], "type": "unsubscribe-success"},
    )
    report = harness.run()
    assert report.failed == {"CustomerNotSubscribed": 1}
    (item,) = harness.items()
    assert item["meteringStatus"] == "failed" and item["failureReason"] == "CustomerNotSubscribed"
    assert "pendingPartition" not in item


def test_records_past_six_hours_fail_with_their_reason(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    harness.record(ACCOUNTS[0], 4, hours_ago=4)
    harness.advance(2 * 3600)  # the job did not run for two hours
    report = harness.run()
    assert report.failed == {"TooOld": 1}
    # only the quiet last hour's zero record was billed, not the stale usage
    assert [key for key, quantity in harness.billed().items() if quantity] == []


def test_unprocessed_records_and_throttling_all_reach_success(harness: Harness) -> None:
    expected = seed_usage(harness)
    harness.emulator.admin(
        "POST",
        "/_emulator/faults",
        {"unprocessedShare": 0.3, "throttleEvery": 3, "operations": ["BatchMeterUsage"]},
    )
    runs = 0
    while any(
        item.get("meteringStatus") == "pending"
        and item["usageHour"] < hour_iso(harness, 0).replace("+00:00", "Z")
        for item in harness.items()
    ):
        runs += 1
        assert runs <= 5, "did not converge"
        harness.job(client=boto3.client("meteringmarketplace", config=_no_retries())).run()
    assert harness.billed() == expected
    assert harness.sleeps  # it backed off between tries


def _no_retries() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 1})


TABLE_METHODS = frozenset({"query", "update_item", "get_item"})


def _count_calls(harness: Harness) -> tuple[int, int]:
    table = CrashingProxy(harness.usage_table, TABLE_METHODS)
    client = CrashingProxy(boto3.client("meteringmarketplace"), frozenset({"batch_meter_usage"}))
    harness.job(table=table, client=client).run()
    return table.calls, client.calls


@pytest.mark.parametrize("after", [False, True], ids=["before the call", "after the call"])
def test_a_crash_at_any_step_neither_loses_nor_doubles_usage(harness: Harness, after: bool) -> None:
    """Kill the job at each of its table and API calls in turn, then run it again: billed == recorded."""
    accounts = ACCOUNTS[:2]
    expected = seed_usage(harness, accounts)
    snapshot = [dict(item) for item in harness.items()]
    table_calls, api_calls = _count_calls(harness)
    assert harness.billed() == expected

    points = [("table", n) for n in range(1, table_calls + 1)] + [("api", n) for n in range(1, api_calls + 1)]
    for where, n in points:
        # Given the same pending usage as before
        harness.emulator.admin("POST", "/_emulator/reset", {})
        harness.emulator.product("PROD_ONBOARD", ("users", "storage"))
        for account in accounts:
            _resubscribe(harness, account, snapshot)
        for item in harness.items():
            harness.usage_table.delete_item(
                Key={"customerAWSAccountId": item["customerAWSAccountId"], "usageKey": item["usageKey"]}
            )
        for item in snapshot:
            harness.usage_table.put_item(Item=item)
        # When the job dies at this point
        table = CrashingProxy(
            harness.usage_table, TABLE_METHODS, crash_at=n if where == "table" else None, after=after
        )
        client = CrashingProxy(
            boto3.client("meteringmarketplace"),
            frozenset({"batch_meter_usage"}),
            crash_at=n if where == "api" else None,
            after=after,
        )
        with pytest.raises(Crash):
            harness.job(table=table, client=client).run()
        # Then the next run bills everything exactly once
        harness.run()
        assert harness.billed() == expected, f"crash {'after' if after else 'before'} {where} call {n}"
        duplicates = [r for r in harness.emulator.billed("PROD_ONBOARD") if r["status"] != "Success"]
        assert duplicates == []
    assert len(points) > 10


def _resubscribe(harness: Harness, account: str, snapshot: list[dict[str, Any]]) -> None:
    """Recreate the account's Marketplace subscription with the license its usage items name."""
    marketplace = harness.emulator.server.marketplace
    license_arn = next(item["licenseArn"] for item in snapshot if item["customerAWSAccountId"] == account)
    subscription, _ = marketplace.subscribe({"productCode": "PROD_ONBOARD", "customerAWSAccountId": account})
    subscription.license_arn = license_arn


def test_two_overlapping_runs_send_identical_content(harness: Harness) -> None:
    expected = seed_usage(harness)
    first, second = harness.job(), harness.job()
    # The second run starts while the first is between sealing and recording the answers
    table = CrashingProxy(harness.usage_table, frozenset({"update_item"}), crash_at=len(expected) + 1)
    with pytest.raises(Crash):
        harness.job(table=table).run()
    first.run()
    second.run()
    assert harness.billed() == expected
    assert all(record["status"] == "Success" for record in harness.emulator.billed("PROD_ONBOARD"))


def test_many_records_take_the_minimum_number_of_calls(harness: Harness) -> None:
    customers = [f"3000000{n:05d}" for n in range(40)]
    for account in customers:
        harness.buyer(account)
    seeded = 0
    with harness.usage_table.batch_writer() as writer:
        for account in customers:
            license_arn = harness.subscribers_table.get_item(
                Key={"customerAWSAccountId": account, "subscriptionKey": _license(harness, account)}
            )["Item"]["licenseArn"]
            for hours_ago in (1, 2):
                for dimension in ("users", "storage"):
                    hour = hour_iso(harness, hours_ago).replace("+00:00", "Z")
                    writer.put_item(
                        Item={
                            "customerAWSAccountId": account,
                            "usageKey": f"{hour}#{dimension}",
                            "usageHour": hour,
                            "dimension": dimension,
                            "quantity": 5,
                            "productCode": "PROD_ONBOARD",
                            "licenseArn": license_arn,
                            "pendingPartition": "pending",
                            "meteringStatus": "pending",
                            "allocated": False,
                        }
                    )
                    seeded += 1
    report = harness.run()
    assert report.metered == seeded == 160
    assert report.api_calls == math.ceil(seeded / 25)


def _license(harness: Harness, account: str) -> str:
    items = harness.subscribers_table.query(
        KeyConditionExpression="customerAWSAccountId = :a", ExpressionAttributeValues={":a": account}
    )["Items"]
    return str(items[0]["subscriptionKey"])


def test_a_leaving_customers_current_hour_is_flushed_at_once(harness: Harness) -> None:
    leaving, staying = ACCOUNTS[0], ACCOUNTS[1]
    for account in (leaving, staying):
        harness.buyer(account)
        harness.record(account, 8, hours_ago=0)
    harness.job().run(flush_customers=frozenset({leaving}))
    current = hour_iso(harness, 0)
    billed_now = {key: quantity for key, quantity in harness.billed().items() if key[2] == current}
    assert billed_now == {(leaving, "users", current): 8}
    (still,) = [
        item for item in harness.items() if item["customerAWSAccountId"] == staying and item["quantity"] == 8
    ]
    assert still["meteringStatus"] == "pending"


def test_ten_thousand_records_over_400_customers_take_ceil_n_over_25_calls(harness: Harness) -> None:
    """The issue's scale: every record billed once, in the minimum number of BatchMeterUsage calls."""
    customers = [f"4000000{n:05d}" for n in range(400)]
    marketplace = harness.emulator.server.marketplace
    licenses = {}
    with harness.subscribers_table.batch_writer() as subscribers:
        for account in customers:
            subscription, _ = marketplace.subscribe(
                {"productCode": "PROD_ONBOARD", "customerAWSAccountId": account}
            )
            licenses[account] = subscription.license_arn
            subscribers.put_item(
                Item={
                    "customerAWSAccountId": account,
                    "subscriptionKey": license_id(subscription.license_arn),
                    "licenseArn": subscription.license_arn,
                    "productCode": "PROD_ONBOARD",
                    "status": "active",
                }
            )
    seeded = 0
    with harness.usage_table.batch_writer() as writer:
        for hours_ago in (1, 2, 3, 4, 5):
            hour = hour_iso(harness, hours_ago).replace("+00:00", "Z")
            for dimension in DIMENSIONS:
                for account in customers:
                    writer.put_item(
                        Item={
                            "customerAWSAccountId": account,
                            "usageKey": f"{hour}#{dimension}",
                            "usageHour": hour,
                            "dimension": dimension,
                            "quantity": 1,
                            "productCode": "PROD_ONBOARD",
                            "licenseArn": licenses[account],
                            "pendingPartition": "pending",
                            "meteringStatus": "pending",
                            "allocated": False,
                        }
                    )
                    seeded += 1
    client = CrashingProxy(boto3.client("meteringmarketplace"), frozenset({"batch_meter_usage"}))
    report = harness.job(client=client).run()
    assert seeded == 10_000  # 400 customers x 5 dimensions x 5 completed hours
    assert report.metered == seeded
    assert client.calls == math.ceil(seeded / 25)
    assert len(marketplace.billed) == seeded
