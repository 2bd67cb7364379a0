"""What AWS Marketplace bills today, enforced when usage is recorded: per license, decimals, the 24-hour
window with the month-end cutoff, and the limits of one usage record (refused now rather than lost later)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketplace_saas.usage import (
    MAX_ALLOCATIONS_PER_RECORD,
    MAX_ALLOCATIONS_PER_REQUEST,
    InvalidUsage,
    UsageAllocation,
    UsageRecord,
    UsageRecorder,
    UsageRejected,
    earliest_accepted,
    marketplace_accepts,
)
from tests.integration.metering.conftest import Harness

ACCOUNT = "123456789012"


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _record_at(harness: Harness, now: str, usage_time: str, quantity: int | str = 1) -> object:
    harness.now[0] = _at(now)
    hours_ago = (_at(now) - _at(usage_time)) / 3600
    return harness.record(ACCOUNT, quantity, hours_ago=hours_ago)


# --- decimal quantities ---------------------------------------------------------------------------------


def test_fractional_usage_is_summed_exactly_and_reported_as_a_decimal_string(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    for quantity in ("0.1", "0.1", "0.1", Decimal("17.12")):
        last = harness.record(ACCOUNT, quantity)
    assert last.hour_total == Decimal("17.42")
    assert last.view()["hourTotal"] == "17.42"
    (item,) = harness.items()
    assert item["quantity"] == Decimal("17.42")  # a DynamoDB Number, not 17.420000000000002


def test_equal_values_are_one_quantity_whatever_their_spelling(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    harness.record(ACCOUNT, "17.00")
    assert harness.record(ACCOUNT, 0).view()["hourTotal"] == "17"


# --- the 24-hour window and the month-end cutoff ----------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "usage_time", "accepted"),
    [
        # The hour 2026-11-10T10:00 is 23 h 59 min old at 09:59 the next day, 24 h 01 min old at 10:01.
        ("2026-11-11T09:59:00+00:00", "2026-11-10T10:30:00+00:00", True),
        ("2026-11-11T10:01:00+00:00", "2026-11-10T10:30:00+00:00", False),
        # Last month's usage until 06:00 UTC on the 1st, however recent, and never after.
        ("2026-12-01T05:59:00+00:00", "2026-11-30T23:30:00+00:00", True),
        ("2026-12-01T06:01:00+00:00", "2026-11-30T23:30:00+00:00", False),
        ("2026-12-01T06:01:00+00:00", "2026-12-01T00:10:00+00:00", True),
    ],
)
def test_usage_is_recorded_only_while_marketplace_would_take_its_hour(
    harness: Harness, now: str, usage_time: str, accepted: bool
) -> None:
    harness.buyer(ACCOUNT)
    if accepted:
        _record_at(harness, now, usage_time)
        assert len(harness.items()) == 1
    else:
        with pytest.raises(UsageRejected) as refused:
            _record_at(harness, now, usage_time)
        assert (refused.value.status, refused.value.code) == (422, "time_too_old")
        assert "24 hours" in refused.value.message and "06:00 UTC on the 1st" in refused.value.message
        assert harness.items() == []


def test_the_window_rule_itself() -> None:
    now = _at("2026-12-01T05:00:00+00:00")
    assert earliest_accepted(now) == now - 24 * 3600  # within the grace period: a plain 24 hours
    after_grace = _at("2026-12-01T07:00:00+00:00")
    assert earliest_accepted(after_grace) == _at("2026-12-01T00:00:00+00:00")
    mid_month = _at("2026-12-15T12:00:00+00:00")
    assert earliest_accepted(mid_month) == mid_month - 24 * 3600
    assert not marketplace_accepts(mid_month + 1, mid_month)  # never in the future


# --- one account, several licenses (concurrent agreements) --------------------------------------------------


def test_usage_names_the_license_when_the_account_holds_several(harness: Harness) -> None:
    first = harness.buyer(ACCOUNT)["licenseArn"]
    second = harness.buyer(ACCOUNT, new_agreement=True)["licenseArn"]
    assert first != second
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNT, 1)
    assert (refused.value.status, refused.value.code) == (409, "license_required")
    assert first in refused.value.message and second in refused.value.message
    assert harness.items() == []
    harness.record(ACCOUNT, "2.5", licenseArn=first)
    harness.record(ACCOUNT, 4, licenseArn=second)
    harness.record(ACCOUNT, 1, licenseArn=second)
    totals = {item["licenseArn"]: item["quantity"] for item in harness.items()}
    assert totals == {first: Decimal("2.5"), second: Decimal(5)}


def test_a_license_of_another_account_or_none_at_all_is_refused(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    other = harness.buyer("210987654321")["licenseArn"]
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNT, 1, licenseArn=other)
    assert (refused.value.status, refused.value.code) == (404, "unknown_license")
    assert harness.items() == []


def test_the_only_billable_license_is_chosen_when_none_is_named(harness: Harness) -> None:
    harness.buyer(ACCOUNT, status="cancelled")
    active = harness.buyer(ACCOUNT, new_agreement=True)["licenseArn"]
    recorded = harness.record(ACCOUNT, 3)
    assert recorded.license_arn == active
    (item,) = harness.items()
    assert item["licenseArn"] == active


def test_a_cancelled_license_named_explicitly_is_refused(harness: Harness) -> None:
    ended = harness.buyer(ACCOUNT, status="cancelled")["licenseArn"]
    harness.buyer(ACCOUNT, new_agreement=True)
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNT, 3, licenseArn=ended)
    assert (refused.value.status, refused.value.code) == (409, "not_subscribed")


# --- the limits of one usage record -----------------------------------------------------------------------


def _allocations(start: int, count: int, tag_text: str = "team") -> list[UsageAllocation]:
    return [UsageAllocation(quantity=1, tags={tag_text: f"t{n}"}) for n in range(start, start + count)]


def test_an_hour_holds_2500_tag_sets_and_the_next_one_is_refused_with_the_reason(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    requests = MAX_ALLOCATIONS_PER_RECORD // MAX_ALLOCATIONS_PER_REQUEST
    for n in range(requests):
        chunk = _allocations(n * MAX_ALLOCATIONS_PER_REQUEST, MAX_ALLOCATIONS_PER_REQUEST)
        harness.record(ACCOUNT, len(chunk), allocations=chunk)
    # More usage for tag sets the hour already has is fine ...
    harness.record(ACCOUNT, 2, allocations=_allocations(0, 2))
    # ... one more tag set is not: AWS would refuse the whole record at sending time.
    with pytest.raises(UsageRejected) as refused:
        harness.record(ACCOUNT, 1, allocations=_allocations(MAX_ALLOCATIONS_PER_RECORD, 1))
    assert (refused.value.status, refused.value.code) == (422, "too_many_allocations")
    assert "2500" in refused.value.message
    (item,) = harness.items()
    assert item["quantity"] == MAX_ALLOCATIONS_PER_RECORD + 2
    assert item["allocationSets"] == MAX_ALLOCATIONS_PER_RECORD


def test_tag_sets_too_large_for_one_record_are_refused_before_anything_is_lost(harness: Harness) -> None:
    harness.buyer(ACCOUNT)
    long_tags = {f"key{k}" + "k" * 90: "v" * 250 for k in range(5)}  # about 1.8 KB of tag text per set
    accepted = 0
    with pytest.raises(UsageRejected) as refused:
        for n in range(1000):
            tags = {**long_tags, "key0" + "k" * 90: f"{n:0250d}"}
            harness.record(ACCOUNT, 1, allocations=[UsageAllocation(quantity=1, tags=tags)])
            accepted += 1
    assert (refused.value.status, refused.value.code) == (422, "allocations_too_large")
    (item,) = harness.items()
    assert item["quantity"] == accepted and 100 < accepted < 1000


def test_one_request_carries_at_most_100_allocations() -> None:
    with pytest.raises(InvalidUsage):
        UsageRecord.validate(
            {
                "customerAWSAccountId": ACCOUNT,
                "dimension": "users",
                "quantity": MAX_ALLOCATIONS_PER_REQUEST + 1,
                "allocations": _allocations(0, MAX_ALLOCATIONS_PER_REQUEST + 1),
            }
        )


# --- listings that take no usage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [({"dimensions": frozenset()}, "no_dimensions"), ({"pricing_model": "contract"}, "not_metered")],
)
def test_a_listing_that_takes_no_usage_says_why_and_how(
    harness: Harness, change: dict[str, object], code: str
) -> None:
    harness.buyer(ACCOUNT)
    settings = dataclasses.replace(harness.settings, **change)  # type: ignore[arg-type]
    recorder = UsageRecorder(
        settings, harness.subscribers_table, harness.usage_table, clock=lambda: harness.now[0]
    )
    usage = UsageRecord.validate(
        {
            "customerAWSAccountId": ACCOUNT,
            "dimension": "users",
            "quantity": 1,
            "time": datetime.now(UTC) - timedelta(minutes=5),
        }
    )
    with pytest.raises(UsageRejected) as refused:
        recorder.record(usage)
    assert (refused.value.status, refused.value.code) == (422, code)
    expected = (
        "marketplaceListings.<key>.dimensions" if code == "no_dimensions" else "contract-with-consumption"
    )
    assert expected in refused.value.message
    assert harness.items() == []
