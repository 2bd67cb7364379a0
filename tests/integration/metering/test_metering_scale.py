"""The metering job at scale: workers in parallel, runs that overlap, a run out of time, AWS throttling,
and the pending index's partition values (spread, and the single one written before the spread)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from marketplace_saas.metering import Backoff, RunReport
from marketplace_saas.models import license_id
from marketplace_saas.usage import PENDING, PENDING_PARTITIONS
from tests.integration.metering.conftest import Harness

PRODUCT = "PROD_ONBOARD"


def hour_iso(harness: Harness, hours_ago: float) -> str:
    moment = datetime.fromtimestamp(harness.now[0], UTC) - timedelta(hours=hours_ago)
    return moment.replace(minute=0, second=0, microsecond=0).isoformat()


def at_ten_past(harness: Harness) -> None:
    """Stand at HH:10, so that the minutes a test moves on stay inside the hour."""
    moment = datetime.fromtimestamp(harness.now[0], UTC)
    harness.advance((10 - moment.minute) % 60 * 60 - moment.second)


def seed(harness: Harness, accounts: int) -> dict[tuple[str, str, str], Decimal]:
    """Usage of every account in the two last completed hours, on two dimensions: 4 records each."""
    expected: dict[tuple[str, str, str], Decimal] = {}
    for index in range(accounts):
        account = f"5000000{index:05d}"
        harness.buyer(account)
        for hours_ago in (1, 2):
            for dimension in ("users", "storage"):
                quantity = Decimal(index + 1) + Decimal(hours_ago) / 4
                harness.record(account, quantity, hours_ago=hours_ago, dimension=dimension)
                expected[(account, dimension, hour_iso(harness, hours_ago))] = quantity
    return expected


def sent_records(client: Any) -> list[dict[str, Any]]:
    return [record for call in client.calls for record in call]


class RecordingClient:
    """A BatchMeterUsage client that keeps every record it sent; `during_first_call` runs while the first
    call is in flight (before it reaches AWS), as another run would."""

    def __init__(self, during_first_call: Callable[[], None] | None = None) -> None:
        self.target = boto3.client("meteringmarketplace")
        self.calls: list[list[dict[str, Any]]] = []
        self.during_first_call = during_first_call
        self.lock = threading.Lock()

    def batch_meter_usage(self, **request: Any) -> Any:
        with self.lock:
            self.calls.append(list(request["UsageRecords"]))
            hook, self.during_first_call = self.during_first_call, None
        if hook is not None:
            hook()
        return self.target.batch_meter_usage(**request)


def test_two_overlapping_runs_never_both_send_a_record(harness: Harness) -> None:
    at_ten_past(harness)
    expected = seed(harness, 5)  # 20 records: one batch
    second_client = RecordingClient()
    second_report: list[RunReport] = []

    def second_run() -> None:
        # The next schedule starts while the first run has claimed its batch and is sending it.
        job = harness.job(client=second_client)
        second_report.append(job.run(time_left=lambda: 250.0))

    first_client = RecordingClient(during_first_call=second_run)
    first = harness.job(client=first_client).run(time_left=lambda: 250.0)

    assert harness.billed() == expected
    (second,) = second_report
    assert second_client.calls == [] and second.sent == 0
    assert second.claimed_elsewhere == len(expected)
    assert first.metered == len(expected)
    # Every record went to AWS exactly once, with the quantity recorded.
    assert len(sent_records(first_client)) == len(expected)
    assert all(record["status"] == "Success" for record in harness.emulator.billed(PRODUCT))


def test_a_claim_of_a_run_that_died_lapses_and_the_next_run_sends_the_same_record(harness: Harness) -> None:
    at_ten_past(harness)
    expected = seed(harness, 3)

    class Dies(Exception):
        pass

    class DyingClient:
        def batch_meter_usage(self, **request: Any) -> Any:
            raise Dies  # the function is killed while its batch is claimed and sealed, before AWS has it

    try:
        harness.job(client=DyingClient()).run(time_left=lambda: 250.0)
    except Dies:
        pass
    else:
        raise AssertionError("the run did not die")
    sealed = {i["usageKey"]: i["sealedQuantity"] for i in harness.items() if "sealedQuantity" in i}
    assert len(sealed) == len(expected)
    # While the dead run's time could still be running, the next run leaves its records alone ...
    early = harness.job().run(time_left=lambda: 250.0)
    assert early.claimed_elsewhere == len(expected) and harness.billed() == {}
    # ... once its deadline (and the margin) has passed, the next run sends them, exactly as sealed.
    harness.advance(250 + 61)
    later = harness.job().run(time_left=lambda: 250.0)
    assert later.metered == len(expected)
    assert harness.billed() == expected
    assert {i["usageKey"]: i["sealedQuantity"] for i in harness.items() if "sealedQuantity" in i} == sealed


def test_a_run_short_of_time_stops_between_batches_and_the_next_run_continues(harness: Harness) -> None:
    expected = seed(harness, 15)  # 60 records: three batches
    checks: list[float] = []

    def time_left() -> float:
        # Plenty of time for the lease and the first batch; then the function is nearly out of time.
        checks.append(0)
        return 250.0 if len(checks) <= 2 else 30.0

    client = RecordingClient()
    first = harness.job(client=client, concurrency=1).run(time_left=time_left)
    assert first.stopped_early
    assert first.batches == 1 and first.metered == 25 and len(client.calls) == 1
    # Nothing was sealed that was not also sent and settled: the rest is untouched, pending.
    items = harness.items()
    assert all(item.get("meteringStatus") == "metered" for item in items if "sealedQuantity" in item)
    unsent = [i for i in items if i.get("meteringStatus") == "pending" and "sealedQuantity" not in i]
    assert len(unsent) == len(expected) - 25
    # The next run continues where it stopped, and every record is billed once.
    second = harness.job(client=client).run(time_left=lambda: 250.0)
    assert not second.stopped_early and second.metered == len(expected) - 25
    assert harness.billed() == expected
    assert len(sent_records(client)) == len(expected)


class Throttled:
    """The usage table, whose client throttles the first `count` transactions past the SDK's retries."""

    def __init__(self, table: Any, count: int) -> None:
        self._table, self.left = table, count
        outer = self

        class Client:
            def __getattr__(self, name: str) -> Any:
                return getattr(table.meta.client, name)

            def transact_write_items(self, **request: Any) -> Any:
                if outer.left > 0:
                    outer.left -= 1
                    raise ClientError(
                        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                        "TransactWriteItems",
                    )
                return table.meta.client.transact_write_items(**request)

        class Meta:
            client = Client()

        self.meta = Meta()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def test_throttling_slows_every_worker_with_one_growing_pause_and_drops_nothing(harness: Harness) -> None:
    expected = seed(harness, 15)
    table = Throttled(harness.usage_table, 3)
    report = harness.job(table=table, concurrency=1).run()
    assert report.throttles == 3 and table.left == 0
    # The pause doubles with each throttle in a row.
    assert harness.sleeps[:3] == pytest.approx([0.1, 0.2, 0.4], abs=1e-3)
    assert report.metered == len(expected) and report.still_pending == 0
    assert harness.billed() == expected


def test_one_workers_throttle_pauses_the_others() -> None:
    sleeps: list[float] = []
    backoff = Backoff(lambda: 1000.0, sleeps.append)
    backoff.wait()
    assert sleeps == []  # nobody throttled yet: no pause
    backoff.throttled()  # one worker meets throttling ...
    other = threading.Thread(target=backoff.wait)  # ... and another worker's next call waits as well
    other.start()
    other.join()
    assert sleeps == pytest.approx([0.1])
    backoff.succeeded()  # a success shortens the pause for the next throttle
    backoff.throttled()
    assert backoff._step == 0.1


def test_throttled_batch_meter_usage_calls_are_retried_until_billed(harness: Harness) -> None:
    expected = seed(harness, 15)
    harness.emulator.admin(
        "POST", "/_emulator/faults", {"throttleEvery": 2, "operations": ["BatchMeterUsage"]}
    )
    from botocore.config import Config

    client = boto3.client(
        "meteringmarketplace", config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    reports = [harness.job(client=client).run() for _ in range(3)]
    assert sum(report.throttles for report in reports) >= 1
    assert harness.billed() == expected
    assert all(record["status"] == "Success" for record in harness.emulator.billed(PRODUCT))


def test_records_under_the_old_single_partition_value_are_still_found(harness: Harness) -> None:
    """Items written before the index was spread carry `pending`: they are read beside the new values."""
    expected = seed(harness, 4)  # recorded now: spread over pending#<n>
    old_hour = hour_iso(harness, 3).replace("+00:00", "Z")
    for index in range(4):
        account = f"5000000{index:05d}"
        (subscriber,) = harness.subscribers_table.query(
            KeyConditionExpression="customerAWSAccountId = :a", ExpressionAttributeValues={":a": account}
        )["Items"]
        harness.usage_table.put_item(
            Item={
                "customerAWSAccountId": account,
                "usageKey": f"{old_hour}#users#{license_id(subscriber['licenseArn'])}",
                "usageHour": old_hour,
                "dimension": "users",
                "quantity": Decimal(7),
                "productCode": PRODUCT,
                "licenseArn": subscriber["licenseArn"],
                "pendingPartition": PENDING,
                "meteringStatus": "pending",
                "allocated": False,
            }
        )
        expected[(account, "users", hour_iso(harness, 3))] = Decimal(7)
    partitions = {item["pendingPartition"] for item in harness.items()}
    assert PENDING in partitions and len(partitions - {PENDING}) > 1
    assert partitions <= set(PENDING_PARTITIONS)
    report = harness.run()
    assert harness.billed() == expected
    assert report.metered == len(expected) and report.pending_after == 0
    assert all("pendingPartition" not in item for item in harness.items())
