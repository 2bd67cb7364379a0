"""Reading a usage record's `time`: ISO 8601 text or seconds since 1970, on the standard library alone.

The usage API has always taken the forms below, with these messages for what it refuses (a seller's product
may depend on either), so they are kept exactly:

- text `YYYY-MM-DD<sep>HH:MM[:SS[.fraction]][offset]`, `<sep>` one of `T t _` or a space, the fraction `.` or
  `,` and any number of digits (microseconds kept, the rest dropped), the offset `Z`, `z` or `±HH[:]MM`
  (U+2212 minus too); a date alone is midnight; no offset is no time zone (the caller refuses it);
- a number, or text that is one (`[+-]digits[.digits]`): seconds since 1970, or milliseconds when its size
  is above 2e10.

Lengths and positions count UTF-8 bytes, as the API always has.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

_MS_WATERSHED = 20_000_000_000
_YEAR_0 = -62_167_219_200  # 0000-01-01T00:00:00Z, proleptic Gregorian
_YEAR_1 = -62_135_596_800  # 0001-01-01, the first day a Python datetime has
_YEAR_9999_END = 253_402_300_799  # 9999-12-31T23:59:59
_INT64 = 2**63
_MINUS_SIGN = "\u2212".encode()
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class TimeProblem(Exception):
    """Why a value is not a time: `kind` and `message` as the usage API words them."""

    def __init__(self, kind: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.reason = reason


def parse_time(value: Any) -> datetime:
    """The moment `value` stands for (naive when it names no time zone); raises TimeProblem."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, bool):
        raise TimeProblem("datetime_type", "Input should be a valid datetime")
    if isinstance(value, (int, float, Decimal)):
        return _from_number(value)
    if isinstance(value, str):
        return _from_text(value.encode())
    raise TimeProblem("datetime_type", "Input should be a valid datetime")


def _invalid(reason: str) -> TimeProblem:
    return TimeProblem("datetime_parsing", f"Input should be a valid datetime, {reason}", reason)


def _invalid_text(reason: str) -> TimeProblem:
    return TimeProblem(
        "datetime_from_date_parsing", f"Input should be a valid datetime or date, {reason}", reason
    )


def _from_number(value: int | float | Decimal) -> datetime:
    """Seconds since 1970, or milliseconds when the number's size is above 2e10."""
    if isinstance(value, Decimal):
        if value.is_nan():
            raise _invalid("NaN values not permitted")
        if value == value.to_integral_value() and value.is_finite() and abs(value) < _INT64:
            return _from_whole(int(value), 0, abs(value) > _MS_WATERSHED)
        value = float(value)
    if isinstance(value, int):
        value = float(value) if abs(value) >= _INT64 else value
        if isinstance(value, int):
            return _from_whole(value, 0, abs(value) > _MS_WATERSHED)
    if math.isnan(value):
        raise _invalid("NaN values not permitted")
    if math.isinf(value) or abs(value) >= _INT64:
        _check_range(_YEAR_0 - 1 if value < 0 else _YEAR_9999_END + 1)
    whole = math.floor(value)
    milliseconds = abs(value) > _MS_WATERSHED
    # The fraction's microseconds rounded half away from zero (it is never negative).
    extra = math.floor((value - whole) * (1000 if milliseconds else 1_000_000) + 0.5)
    return _from_whole(whole, extra, milliseconds)


def _from_whole(value: int, extra_microseconds: int, milliseconds: bool) -> datetime:
    if milliseconds:
        # Whole seconds towards zero, the rest as (positive) microseconds.
        sign = 1 if value > 0 else -1
        seconds, microseconds = sign * (abs(value) // 1000), sign * (abs(value) % 1000) * 1000
        microseconds += extra_microseconds
        if microseconds < 0:
            seconds -= 1
            microseconds += 1_000_000
        return _moment(seconds, microseconds)
    return _moment(value, extra_microseconds)


def _check_range(seconds: int) -> None:
    if seconds < _YEAR_0:
        raise _invalid("dates before 0000 are not supported as unix timestamps")
    if seconds > _YEAR_9999_END:
        raise _invalid("dates after 9999 are not supported as unix timestamps")


def _moment(seconds: int, microseconds: int) -> datetime:
    _check_range(seconds)
    if seconds < _YEAR_1:
        raise _invalid("year 0 is out of range")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=microseconds)


def _from_text(text: bytes) -> datetime:
    try:
        return _iso_datetime(text)
    except _NotThisForm:
        pass
    number = _number_text(text)
    if number is not None:
        try:
            return _from_number(number)
        except TimeProblem as problem:
            if isinstance(number, int):  # a whole number out of range: so is the date it would be
                raise _invalid_text(problem.reason or problem.message) from None
            # a fraction out of range: what is wrong with it is said of the text as a date
    # Neither a date and time nor a number: what is wrong with it, read as a date.
    day = _date(text)
    if len(text) > 10:
        raise _invalid_text("unexpected extra characters at the end of the input")
    return _naive(day[0], day[1], day[2])


class _NotThisForm(Exception):
    """The text is not a date and time (the reason given is the date's, read on its own)."""


def _naive(year: int, month: int, day: int, *time: int) -> datetime:
    if year == 0:
        raise _invalid("year 0 is out of range")
    hour, minute, second, microsecond = (*time, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, microsecond)


def _digits(text: bytes, start: int, count: int, what: str) -> int:
    part = text[start : start + count]
    if len(part) != count or not all(0x30 <= byte <= 0x39 for byte in part):
        raise _invalid_text(f"invalid character in {what}")
    return int(part)


def _date(text: bytes) -> tuple[int, int, int]:
    """The date the first ten bytes spell; raises TimeProblem (as the API words it) if they spell none."""
    if len(text) < 10:
        raise _invalid_text("input is too short")
    year = _digits(text, 0, 4, "year")
    if text[4:5] != b"-":
        raise _invalid_text("invalid date separator, expected `-`")
    month = _digits(text, 5, 2, "month")
    if text[7:8] != b"-":
        raise _invalid_text("invalid date separator, expected `-`")
    day = _digits(text, 8, 2, "day")
    if not 1 <= month <= 12:
        raise _invalid_text("month value is outside expected range of 1-12")
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (1 if month == 2 and leap else 0):
        raise _invalid_text("day value is outside expected range")
    return year, month, day


def _iso_datetime(text: bytes) -> datetime:
    try:
        year, month, day = _date(text)
    except TimeProblem:
        raise _NotThisForm from None
    if text[10:11] not in (b"T", b"t", b" ", b"_"):
        raise _NotThisForm
    position = 11
    hour, minute = _two_digits(text, position), _two_digits(text, position + 3)
    if text[position + 2 : position + 3] != b":" or hour is None or minute is None:
        raise _NotThisForm
    if hour > 23 or minute > 59:
        raise _NotThisForm
    position += 5
    second = microsecond = 0
    if text[position : position + 1] == b":":
        parsed = _two_digits(text, position + 1)
        if parsed is None or parsed > 59:
            raise _NotThisForm
        second = parsed
        position += 3
        if text[position : position + 1] in (b".", b","):
            position += 1
            start = position
            while position < len(text) and 0x30 <= text[position] <= 0x39:
                position += 1
            if position == start:
                raise _NotThisForm
            microsecond = int(text[start : min(position, start + 6)].ljust(6, b"0"))
    offset, position = _offset(text, position)
    if position != len(text):
        raise _NotThisForm
    if offset is None:
        return _naive(year, month, day, hour, minute, second, microsecond)
    if year == 0:
        raise _invalid("year 0 is out of range")
    zone = UTC if offset == 0 else timezone(timedelta(seconds=offset))
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)


def _two_digits(text: bytes, start: int) -> int | None:
    part = text[start : start + 2]
    if len(part) != 2 or not all(0x30 <= byte <= 0x39 for byte in part):
        return None
    return int(part)


def _offset(text: bytes, position: int) -> tuple[int | None, int]:
    """(offset in seconds or None, where the text goes on)."""
    if text[position : position + 1] in (b"Z", b"z"):
        return 0, position + 1
    if text[position : position + 1] in (b"+", b"-"):
        sign, position = (1 if text[position : position + 1] == b"+" else -1), position + 1
    elif text[position : position + 3] == _MINUS_SIGN:
        sign, position = -1, position + 3
    else:
        return None, position
    hours = _two_digits(text, position)
    position += 2
    if text[position : position + 1] == b":":
        position += 1
    minutes = _two_digits(text, position)
    if hours is None or minutes is None or hours > 23 or minutes > 59:
        raise _NotThisForm
    return sign * (hours * 3600 + minutes * 60), position + 2


def _number_text(text: bytes) -> int | float | None:
    """`[+-]digits[.digits]` as a number (an integer when it has no point), else None."""
    body = text[1:] if text[:1] in (b"+", b"-") else text
    whole, point, fraction = body.partition(b".")
    if not (whole or fraction) or not all(0x30 <= byte <= 0x39 for byte in whole + fraction):
        return None
    if not point:
        value = int(text)
        return value if abs(value) < _INT64 else None
    return float(text)
