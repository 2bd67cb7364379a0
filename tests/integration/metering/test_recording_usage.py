"""Recording usage: validation, hourly aggregation, and nothing written on bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketplace_saas.models import license_id
from marketplace_saas.usage import (
    PENDING_PARTITIONS,
    InvalidUsage,
    UsageAllocation,
    UsageRecord,
    UsageRejected,
    pending_partition,
)
from tests.integration.metering.conftest import Harness

ACCOUNT = "123456789012"


def test_usage_is_aggregated_per_customer_dimension_and_hour(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    harness.record(ACCOUNT, 2, hours_ago=1)
    harness.record(ACCOUNT, 3, hours_ago=1)
    last = harness.record(ACCOUNT, 4, hours_ago=1, dimension="storage")
    assert last.hour_total == 4
    items = {item["usageKey"]: item for item in harness.items()}
    assert len(items) == 2
    users = next(item for item in items.values() if item["dimension"] == "users")
    assert users["quantity"] == 5
    # The license's own value of the pending index's partition key: records are spread over the values.
    assert users["pendingPartition"] == pending_partition(ACCOUNT, license_id(users["licenseArn"]))
    assert users["pendingPartition"] in PENDING_PARTITIONS[1:]
    assert users["licenseArn"].startswith("arn:aws:license-manager::")


@pytest.mark.parametrize(
    ("kwargs", "code", "status"),
    [
        ({"dimension": "gigawatts"}, "unknown_dimension", 422),
        ({"hours_ago": 25.5}, "time_too_old", 422),
        ({"hours_ago": -1}, "time_in_future", 422),
    ],
)
def test_usage_outside_the_rules_is_refused_and_nothing_written(
    harness: Harness, kwargs: dict[str, object], code: str, status: int
) -> None:
    harness.buyer(ACCOUNT)
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNT, 1, **kwargs)  # type: ignore[arg-type]
    assert (refused.value.code, refused.value.status) == (code, status)
    assert harness.items() == []


def test_unknown_and_cancelled_customers_are_refused(harness: Harness) -> None:
    with pytest.raises(UsageRejected) as unknown:
        harness.record("999999999999", 1)
    assert unknown.value.code == "unknown_customer"
    harness.buyer(ACCOUNT, status="cancelled")
    with pytest.raises(UsageRejected) as cancelled:
        harness.record(ACCOUNT, 1)
    assert cancelled.value.code == "not_subscribed"
    assert harness.items() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"quantity": -1},
        {"quantity": "-0.5"},
        {"quantity": "1.1234567"},  # QuantityAsDecimal takes at most 6 decimal places
        {"quantity": "10000000000"},  # ... and at most 10 digits before the point
        {"quantity": True},
        {"quantity": "NaN"},
        {"quantity": "Infinity"},
        {"quantity": "three"},
        {"licenseArn": "l-not-an-arn"},
        {"customerAWSAccountId": "12345"},
        {"time": datetime(2026, 11, 23, 10, 0)},  # no time zone
        {"allocations": []},
        {"allocations": [{"quantity": 1, "tags": {"team": "red"}}]},  # sums to 1, not 3
        {"allocations": [{"quantity": 3, "tags": {}}]},
        {"allocations": [{"quantity": 3, "tags": {f"k{i}": "v" for i in range(6)}}]},
        {"allocations": [{"quantity": 3, "tags": {"bad?key": "v"}}]},
        {"extra": "field"},
    ],
)
def test_malformed_usage_is_rejected_before_anything_is_read(bad: dict[str, object]) -> None:
    data = {"customerAWSAccountId": ACCOUNT, "dimension": "users", "quantity": 3, **bad}
    with pytest.raises(InvalidUsage):
        UsageRecord.validate(data)


def test_allocated_and_unallocated_usage_do_not_mix_in_one_hour(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    harness.record(ACCOUNT, 2, allocations=[UsageAllocation(quantity=2, tags={"team": "red"})])
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNT, 1)
    assert refused.value.code == "allocations_mismatch"


def test_a_sealed_hour_takes_no_more_usage(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    harness.record(ACCOUNT, 2)
    harness.run()
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNT, 1)
    assert refused.value.code == "hour_closed"
    assert harness.billed()[(ACCOUNT, "users", _hour_iso(harness, 1))] == 2


def _hour_iso(harness: Harness, hours_ago: float) -> str:
    moment = datetime.fromtimestamp(harness.now[0], UTC) - timedelta(hours=hours_ago)
    return moment.replace(minute=0, second=0, microsecond=0).isoformat()
