"""When BatchMeterUsage accepts a usage record: the 24-hour window and the month-end grace period.

One pure function, so that other implementations of the same rule (the metering runtime) can be compared
with it. Source: the `BatchMeterUsage` and `UsageRecord.Timestamp` documentation in botocore's
`meteringmarketplace` 2016-01-14 service model, as changed on 2026-10-20 (botocore 1.44.x), which says:

    "Usage records aren't accepted 24 hours or more after an event. At the end of each billing cycle, a
    6-hour grace period applies. We accept usage records for the previous billing month until 06:00 UTC on
    the first day of the next month. For example, you must submit March usage records before 06:00 UTC on
    April 1. On April 1 at 05:00 UTC, you can still submit records for March 31 (within the 6-hour grace
    period). After 06:00 UTC on April 1, March records are rejected regardless of the normal 24-hour
    submission window. After this grace period, we return a TimestampOutOfBoundsException error."

Older pages (and the API reference before that model) say 6 hours; the model wins (shared/MARKETPLACE.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MAX_AGE = timedelta(hours=24)
MONTH_END_GRACE = timedelta(hours=6)


def window_allows(timestamp: datetime, now: datetime) -> bool:
    """True when a usage record stamped `timestamp` is accepted by BatchMeterUsage at the moment `now`.

    Both must be timezone-aware. A record is accepted when all of these hold:

    - it is not in the future: `timestamp <= now`;
    - it is less than 24 hours old: `now - timestamp < 24 h` (exactly 24 hours old is refused:
      "aren't accepted 24 hours or more after an event");
    - if it falls in an earlier calendar month (UTC) than `now`, then `now` is before 06:00 UTC on the
      1st of `now`'s month (exactly 06:00 is refused: "submit March usage records before 06:00 UTC on
      April 1"). So at 06:01 UTC on the 1st, a record from 23:00 the day before is refused although it is
      only 7 hours old.

    Otherwise AWS rejects the whole call with `TimestampOutOfBoundsException`.
    """
    if timestamp.tzinfo is None or now.tzinfo is None:
        raise ValueError("window_allows needs timezone-aware datetimes")
    if timestamp > now or now - timestamp >= MAX_AGE:
        return False
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if timestamp < month_start:
        # The previous billing month: open only during the grace period at the start of this one.
        return now < month_start + MONTH_END_GRACE
    return True
