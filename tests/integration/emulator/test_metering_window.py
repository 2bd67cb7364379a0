"""BatchMeterUsage's window: up to 24 hours in the past, never in the future, and the previous month's usage
only until 06:00 UTC on the 1st (botocore's meteringmarketplace model of 2026-10-20; window.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from local.marketplace_emulator.window import window_allows

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
