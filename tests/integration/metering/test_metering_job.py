"""The metering job: exactly once, nothing lost, through crashes, throttling and unprocessed records."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from marketplace_saas.metering import MeteringJob
from marketplace_saas.models import license_id
from marketplace_saas.usage import PENDING_PARTITIONS, UsageAllocation
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
    assert all(item["pendingPartition"] in PENDING_PARTITIONS for item in current)
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


def test_a_license_known_only_from_a_marketplace_event_gets_no_zero_record(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    # A License event for a buyer who never registered leaves an active item with no registration.
    harness.subscribers_table.put_item(
        Item={
            "customerAWSAccountId": ACCOUNTS[1],
            "subscriptionKey": "l-neverregistered",
            "licenseArn": "arn:aws:license-manager::111111111111:license:l-neverregistered",
            "status": "active",
        }
    )
    client = CrashingProxy(boto3.client("meteringmarketplace"), frozenset({"batch_meter_usage"}))
    report = harness.job(client=client).run()
    assert report.zero_records_added == 1 and report.failed == {}
    assert client.calls == 1  # one call, never split record by record
    assert {customer for customer, _, _ in harness.billed()} == {ACCOUNTS[0]}


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
    assert sorted(a["quantity"] for a in billed["allocations"]) == ["1", "2"]
    assert {"Key": "env", "Value": "prod"} in next(a for a in billed["allocations"] if a["quantity"] == "2")[
        "tags"
    ]


def test_legacy_listings_meter_by_customer_identifier_and_product_code(legacy_harness: Harness) -> None:
    minted = legacy_harness.buyer(ACCOUNTS[0])
    legacy_harness.record(ACCOUNTS[0], 4)
    legacy_harness.run()
    (billed,) = legacy_harness.emulator.billed("PROD_ONBOARD")
    assert billed["identityType"] == "CustomerIdentifier"
    assert billed["customer"] == minted["customerIdentifier"]
    assert billed["quantity"] == "4"


def test_a_cancelled_customer_is_a_final_failure_not_a_retry(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    harness.record(ACCOUNTS[0], 4)
    for kind in ("unsubscribe-pending", "unsubscribe-success"):  # the final hour closed for AWS as well
        status, body = harness.emulator.admin(
            "POST",
            "/_emulator/events",
            {
                "productCode": "PROD_ONBOARD",
                "customerAWSAccountId": ACCOUNTS[0],
                "type": kind,
                "endedToDeprovisionedSeconds": 0,
            },
        )
        assert status == 200, body
    report = harness.run()
    assert report.failed == {"CustomerNotSubscribed": 1}
    (item,) = harness.items()
    assert item["meteringStatus"] == "failed" and item["failureReason"] == "CustomerNotSubscribed"
    assert "pendingPartition" not in item


def test_records_past_the_24_hour_window_fail_with_their_reason(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    harness.record(ACCOUNTS[0], 4, hours_ago=23)
    harness.advance(2 * 3600)  # the job did not run for two hours: no moment of that hour is inside any more
    report = harness.run()
    assert report.failed == {"TooOld": 1}
    # only the quiet last hour's zero record was billed, not the stale usage
    assert [key for key, quantity in harness.billed().items() if quantity != 0] == []


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


TABLE_METHODS = frozenset({"query", "update_item", "get_item", "transact_write_items", "batch_get_item"})


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
        clock = datetime.fromtimestamp(harness.now[0], UTC).isoformat()
        assert harness.emulator.admin("POST", "/_emulator/clock", {"now": clock})[0] == 200  # reset forgot it
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
    # The second run starts while the first is between sealing its batch (one transaction) and recording
    # the answers (the next one)
    assert len(expected) <= 25
    table = CrashingProxy(harness.usage_table, frozenset({"transact_write_items"}), crash_at=2)
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
    # (These items carry keys of the form `<hour>#<dimension>`, as recorded before usage was kept per license:
    # deployed tables keep such items through the upgrade, and they are still found and sent.)
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
    harness.job().flush({(leaving, _license(harness, leaving))})
    current = hour_iso(harness, 0)
    billed_now = {key: quantity for key, quantity in harness.billed().items() if key[2] == current}
    assert billed_now == {(leaving, "users", current): 8}
    (still,) = [
        item for item in harness.items() if item["customerAWSAccountId"] == staying and item["quantity"] == 8
    ]
    assert still["meteringStatus"] == "pending"


def test_thousands_of_records_over_100_customers_take_ceil_n_over_25_calls(harness: Harness) -> None:
    """Every record billed once, in the minimum number of BatchMeterUsage calls, over 100 batches shared by
    the workers. (The time it takes at 10,000 and 100,000 records is bench/metering.py's to measure.)"""
    customers = [f"4000000{n:05d}" for n in range(100)]
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
    assert seeded == 2_500  # 100 customers x 5 dimensions x 5 completed hours
    assert report.metered == seeded
    assert client.calls == math.ceil(seeded / 25)
    assert len(marketplace.billed) == seeded


# --- what AWS Marketplace bills today: licenses, decimals, the window --------------------------------------


def test_two_licenses_of_one_account_are_billed_separately_and_exactly_once(harness: Harness) -> None:
    account = ACCOUNTS[0]
    first = harness.buyer(account)["licenseArn"]
    second = harness.buyer(account, new_agreement=True)["licenseArn"]
    harness.record(account, 3, licenseArn=first)
    harness.record(account, "4.5", licenseArn=second)
    report = harness.run()
    hour = hour_iso(harness, 1)
    assert harness.billed_by_license() == {(first, "users", hour): 3, (second, "users", hour): Decimal("4.5")}
    assert report.metered == 2 and report.failed == {}
    assert harness.run().api_calls == 0  # nothing sent twice
    # Each license gets its own zero record for the next quiet hour.
    harness.advance(3600)
    assert harness.run().zero_records_added == 2
    assert {license for license, _, at in harness.billed_by_license() if at == hour_iso(harness, 1)} == {
        first,
        second,
    }


def test_cancelling_one_license_leaves_the_other_billable(harness: Harness) -> None:
    account = ACCOUNTS[0]
    leaving = harness.buyer(account)["licenseArn"]
    staying = harness.buyer(account, new_agreement=True)["licenseArn"]
    harness.record(account, 2, licenseArn=leaving)
    harness.record(account, 5, licenseArn=staying)
    harness.subscribers_table.update_item(
        Key={"customerAWSAccountId": account, "subscriptionKey": license_id(leaving)},
        UpdateExpression="SET #s = :cancelled",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":cancelled": "cancelled"},
    )
    report = harness.run()
    assert harness.billed_by_license() == {(staying, "users", hour_iso(harness, 1)): 5}
    assert report.failed == {"SubscriptionEnded": 1}
    # Usage naming no license now goes to the one still billable.
    assert harness.record(account, 1, hours_ago=0).license_arn == staying


def test_decimal_usage_is_billed_as_the_decimal_it_was(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    harness.record(ACCOUNTS[0], "17.4")
    harness.record(ACCOUNTS[0], "0.02")
    report = harness.run()
    (billed,) = harness.emulator.billed("PROD_ONBOARD")
    assert billed["quantity"] == "17.42"
    assert report.billed_by_dimension == {"users": Decimal("17.42")}


def test_decimal_allocations_are_sent_with_their_record(harness: Harness) -> None:
    harness.buyer(ACCOUNTS[0])
    harness.record(
        ACCOUNTS[0],
        "3.75",
        allocations=[
            UsageAllocation(quantity=Decimal("1.25"), tags={"team": "red"}),
            UsageAllocation(quantity=Decimal("2.5"), tags={"team": "blue"}),
        ],
    )
    harness.run()
    (billed,) = harness.emulator.billed("PROD_ONBOARD")
    assert billed["quantity"] == "3.75"
    assert sorted(a["quantity"] for a in billed["allocations"]) == ["1.25", "2.5"]


def test_an_hour_recorded_late_in_its_window_is_still_billed_by_the_next_run(harness: Harness) -> None:
    # Stand at HH:55, record usage for the hour that began 23 h 55 min ago (still inside the window) ...
    harness.advance(-25 * 3600)
    harness.buyer(ACCOUNTS[0])  # subscribed before the usage
    moment = datetime.fromtimestamp(harness.now[0], UTC)
    harness.advance(25 * 3600 + (55 - moment.minute) % 60 * 60 - moment.second)
    harness.record(ACCOUNTS[0], 6, hours_ago=23.5)
    late_hour = hour_iso(harness, 23.5)
    # ... the next hourly run comes at HH+1:05, when the hour's start is 24 h 05 min old: it is sent with a
    # timestamp of the same hour that is still inside the window, and billed.
    harness.advance(10 * 60)
    report = harness.run()
    assert report.failed == {}
    assert harness.billed()[(ACCOUNTS[0], "users", late_hour)] == 6


def test_last_months_usage_is_not_sent_after_six_on_the_first(harness: Harness) -> None:
    # Stand at 05:50 UTC on the 1st of next month with usage of 23:00 on the last day of this one.
    moment = datetime.fromtimestamp(harness.now[0], UTC)
    first = (moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(
        day=1
    )
    harness.advance((first - timedelta(days=1)).timestamp() - harness.now[0])
    harness.buyer(ACCOUNTS[0])  # subscribed before the usage
    harness.advance((first + timedelta(hours=5, minutes=50)).timestamp() - harness.now[0])
    harness.record(ACCOUNTS[0], 3, hours_ago=6.5)
    harness.record(ACCOUNTS[0], 2, hours_ago=0.5)  # this month's, also pending
    harness.advance(15 * 60)  # the job runs at 06:05
    report = harness.run()
    assert report.failed == {"TooOld": 1}
    billed = harness.billed()
    assert (ACCOUNTS[0], "users", (first - timedelta(hours=1)).isoformat()) not in billed
    assert billed[(ACCOUNTS[0], "users", (first + timedelta(hours=5)).isoformat())] == 2


@pytest.mark.parametrize("pricing_model", ["contract"])
def test_a_contract_listing_sends_nothing_in_a_whole_day(harness: Harness, pricing_model: str) -> None:
    import dataclasses

    harness.buyer(ACCOUNTS[0])
    harness.buyer(ACCOUNTS[1])
    settings = dataclasses.replace(harness.settings, pricing_model=pricing_model)
    client = CrashingProxy(boto3.client("meteringmarketplace"), frozenset({"batch_meter_usage"}))
    for _ in range(24):
        job = MeteringJob(
            settings, harness.usage_table, harness.subscribers_table, client, clock=lambda: harness.now[0]
        )
        report = job.run()
        assert (report.zero_records_added, report.sent) == (0, 0)
        harness.advance(3600)
    assert client.calls == 0
    assert harness.items() == [] and harness.emulator.billed("PROD_ONBOARD") == []


def test_a_contract_with_consumption_meters_only_what_is_reported(harness: Harness) -> None:
    import dataclasses

    harness.buyer(ACCOUNTS[0])
    harness.buyer(ACCOUNTS[1])
    harness.settings = dataclasses.replace(harness.settings, pricing_model="contract-with-consumption")
    harness.record(ACCOUNTS[0], 2)
    report = harness.run()
    assert report.zero_records_added == 0
    assert harness.billed() == {(ACCOUNTS[0], "users", hour_iso(harness, 1)): 2}


def test_a_timestamp_out_of_bounds_fails_only_its_own_record(harness: Harness) -> None:
    harness.advance(-25 * 3600)
    harness.buyer(ACCOUNTS[0])
    moment = datetime.fromtimestamp(harness.now[0], UTC)
    harness.advance(25 * 3600 + (55 - moment.minute) % 60 * 60 - moment.second)
    harness.record(ACCOUNTS[0], 6, hours_ago=23.5)  # its hour began 23 h 55 min ago
    harness.record(ACCOUNTS[0], 2, hours_ago=1, dimension="storage")
    # AWS's clock is half an hour ahead of the job's: for AWS the late hour is already out of the window.
    harness.emulator.shift_clock(1800)
    report = harness.run()
    assert report.failed == {"TimestampOutOfBounds": 1}
    assert report.metered == 1 + report.zero_records_added
    billed = harness.billed()
    assert billed[(ACCOUNTS[0], "storage", hour_iso(harness, 1))] == 2


def test_closing_the_current_hour_bills_it_once_and_refuses_later_usage_of_that_hour(
    harness: Harness,
) -> None:
    """Local mode's "Bill now": the current hour is sent with the completed ones, and only once."""
    from marketplace_saas.usage import UsageRejected

    expected = seed_usage(harness, ACCOUNTS[:2])
    current = hour_iso(harness, 0)
    report = harness.job().run(close_current_hour=True)
    expected.update({(account, "users", current): 99 for account in ACCOUNTS[:2]})
    assert harness.billed() == expected
    assert report.metered == len(expected)
    assert report.pending_after == 0
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNTS[0], 1, hours_ago=0)
    assert (refused.value.status, refused.value.code) == (409, "hour_closed")
    # The hourly run that follows, and the one after the hour, send nothing more
    assert harness.run().sent == 0
    harness.advance(3600)
    assert harness.run().sent == 0
    assert harness.billed() == expected
