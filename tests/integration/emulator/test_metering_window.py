"""BatchMeterUsage's window: up to 24 hours in the past, never in the future, and the previous month's usage
only until 06:00 UTC on the 1st (botocore's meteringmarketplace model of 2026-10-20; window.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from local.marketplace_emulator.window import window_allows
from tests.integration.emulator.conftest import Emulator

MID_MONTH = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
FIRST_OF_DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "age", "allowed"),
    [
        (MID_MONTH, timedelta(0), True),
        (MID_MONTH, timedelta(hours=23, minutes=59, seconds=59), True),
        (MID_MONTH, timedelta(hours=24), False),  # "24 hours or more after an event"
        (MID_MONTH, timedelta(hours=24, minutes=1), False),
        (MID_MONTH, timedelta(seconds=-1), False),  # in the future
        # The month-end grace period: November's usage until 06:00 UTC on 1 December, not at 06:00.
        (FIRST_OF_DECEMBER + timedelta(hours=5, minutes=59), timedelta(hours=6), True),
        (FIRST_OF_DECEMBER + timedelta(hours=5, minutes=59, seconds=59), timedelta(hours=23), True),
        (FIRST_OF_DECEMBER + timedelta(hours=6), timedelta(hours=6, seconds=1), False),
        (FIRST_OF_DECEMBER + timedelta(hours=6, minutes=1), timedelta(hours=6, minutes=2), False),
        (FIRST_OF_DECEMBER + timedelta(hours=6, minutes=1), timedelta(hours=23), False),
        # December's own usage is not touched by the grace period.
        (FIRST_OF_DECEMBER + timedelta(hours=6, minutes=1), timedelta(hours=6, minutes=1), True),
        (FIRST_OF_DECEMBER + timedelta(hours=7), timedelta(minutes=5), True),
        # New year: December's usage until 06:00 UTC on 1 January.
        (datetime(2027, 1, 1, 5, 0, tzinfo=UTC), timedelta(hours=5, seconds=1), True),
        (datetime(2027, 1, 1, 6, 0, 1, tzinfo=UTC), timedelta(hours=6, seconds=2), False),
    ],
)
def test_the_window_rule(now: datetime, age: timedelta, allowed: bool) -> None:
    assert window_allows(now - age, now) is allowed


def test_the_window_is_in_utc_whatever_the_offset_of_the_times_given() -> None:
    tokyo = timezone(timedelta(hours=9))
    now = (FIRST_OF_DECEMBER + timedelta(hours=6, minutes=1)).astimezone(tokyo)  # 15:01 on 1 Dec in Tokyo
    assert not window_allows(FIRST_OF_DECEMBER - timedelta(hours=1), now)
    assert window_allows(FIRST_OF_DECEMBER + timedelta(hours=1), now)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_allows(datetime(2026, 11, 18, 11), MID_MONTH)


# --- end to end: boto3 → the emulator, its clock sitting at the edges ----------------------------------


@pytest.fixture
def buyer(emulator: Emulator) -> dict[str, Any]:
    emulator.product()
    return emulator.subscribe()


def meter(metering: Any, buyer: dict[str, Any], timestamp: datetime, dimension: str = "users") -> Any:
    return metering.batch_meter_usage(
        UsageRecords=[
            {
                "Timestamp": timestamp,
                "CustomerAWSAccountId": buyer["customerAWSAccountId"],
                "LicenseArn": buyer["licenseArn"],
                "Dimension": dimension,
                "QuantityAsDecimal": "1",
            }
        ]
    )


def test_23_hours_59_minutes_old_is_accepted(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    emulator.set_clock(MID_MONTH)
    result = meter(metering, buyer, MID_MONTH - timedelta(hours=23, minutes=59))
    assert result["Results"][0]["Status"] == "Success"
    assert [record["hour"] for record in emulator.billed()] == ["2026-11-17T12:00:00+00:00"]


def test_24_hours_1_minute_old_is_refused(emulator: Emulator, metering: Any, buyer: dict[str, Any]) -> None:
    emulator.set_clock(MID_MONTH)
    with pytest.raises(metering.exceptions.TimestampOutOfBoundsException):
        meter(metering, buyer, MID_MONTH - timedelta(hours=24, minutes=1))
    assert emulator.billed() == []


def test_the_future_is_refused(emulator: Emulator, metering: Any, buyer: dict[str, Any]) -> None:
    emulator.set_clock(MID_MONTH)
    with pytest.raises(metering.exceptions.TimestampOutOfBoundsException):
        meter(metering, buyer, MID_MONTH + timedelta(minutes=5))


def test_last_months_usage_is_accepted_at_05_59_utc_on_the_1st(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    emulator.set_clock(FIRST_OF_DECEMBER + timedelta(hours=5, minutes=59))
    result = meter(metering, buyer, FIRST_OF_DECEMBER - timedelta(hours=1))  # 23:00 on 30 November
    assert result["Results"][0]["Status"] == "Success"
    assert [record["hour"] for record in emulator.billed()] == ["2026-11-30T23:00:00+00:00"]


def test_last_months_usage_is_refused_at_06_01_utc_on_the_1st_although_it_is_under_24_hours_old(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    emulator.set_clock(FIRST_OF_DECEMBER + timedelta(hours=6, minutes=1))
    with pytest.raises(metering.exceptions.TimestampOutOfBoundsException) as refused:
        meter(metering, buyer, FIRST_OF_DECEMBER - timedelta(hours=1))
    assert "06:00 UTC on the 1st" in str(refused.value)
    # This month's usage is still accepted at that moment.
    assert meter(metering, buyer, FIRST_OF_DECEMBER)["Results"][0]["Status"] == "Success"


def test_one_record_out_of_the_window_rejects_the_whole_batch(
    emulator: Emulator, metering: Any, buyer: dict[str, Any]
) -> None:
    emulator.set_clock(MID_MONTH)
    records = [
        {
            "Timestamp": MID_MONTH - age,
            "CustomerAWSAccountId": buyer["customerAWSAccountId"],
            "LicenseArn": buyer["licenseArn"],
            "Dimension": dimension,
            "QuantityAsDecimal": "2",
        }
        for age, dimension in ((timedelta(minutes=5), "users"), (timedelta(hours=25), "storage"))
    ]
    with pytest.raises(metering.exceptions.TimestampOutOfBoundsException):
        metering.batch_meter_usage(UsageRecords=records)
    assert emulator.billed() == []


def test_the_clock_can_be_set_or_shifted_but_not_both(emulator: Emulator) -> None:
    status, body = emulator.admin("POST", "/_emulator/clock", {"now": "2026-11-18T12:00:00+00:00"})
    assert status == 200 and body["now"].startswith("2026-11-18T12:00:0")
    for bad in ({"now": "2026-11-18T12:00:00"}, {"now": "yesterday"}, {"offsetSeconds": 1, "now": "x"}, {}):
        status, body = emulator.admin("POST", "/_emulator/clock", bad)
        assert status == 400, bad
