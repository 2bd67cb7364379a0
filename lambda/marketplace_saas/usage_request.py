"""The usage record a seller's product sends, validated on the standard library alone.

The usage function answers almost every request from a cold start; a validation library would be most of
what it imports. The rules are those of BatchMeterUsage's UsageRecord (meteringmarketplace model of
2026-10-20), and each problem is reported as `{type, loc, msg, input, ctx}`, in the order of the fields, with
the wording the usage API has always used (a seller's product may match on it): the API joins them as
`<where>: <msg>`, the command line says them in the project's words (`stacks.config.describe_problem`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from marketplace_saas.timestamps import TimeProblem, parse_time

# UsageQuantityAsDecimalString: ^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$ (also the allocations' quantities).
QUANTITY_PLACES = 6
MAX_QUANTITY = Decimal("9999999999.999999")
# One request's allocations become one DynamoDB update, whose expression must stay under 4 KB.
MAX_ALLOCATIONS_PER_REQUEST = 100
MAX_TAGS = 5
# https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_Tag.html
TAG_TEXT = r"^[a-zA-Z0-9+ -=._:/@]+$"
# The LicenseArn shape's pattern in the model (ResolveCustomer returns arn:aws:license-manager::…:l-…).
LICENSE_ARN = (
    r"^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:"
    r"[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$"
)
ACCOUNT_ID = r"^\d{12}$"
_PATTERNS = {pattern: re.compile(pattern) for pattern in (TAG_TEXT, LICENSE_ARN, ACCOUNT_ID)}

Location = tuple[str | int, ...]
Problem = dict[str, Any]


class InvalidUsage(Exception):
    """The request is not a usage record; `errors()` lists every problem, in the order of the fields."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in problems))
        self._problems = problems

    def errors(self) -> list[Problem]:
        return [dict(problem) for problem in self._problems]


@dataclass(frozen=True)
class UsageAllocation:
    """Part of a record's quantity attributed to a set of tags (e.g. a team or project)."""

    quantity: Decimal
    tags: dict[str, str]

    @property
    def key(self) -> str:
        """A stable name for the tag set (JSON: tag text may itself contain `=` and `,`)."""
        return json.dumps(sorted(self.tags.items()), separators=(",", ":"))


@dataclass(frozen=True)
class UsageRecord:
    """One customer's use of one dimension: what the seller's product reports."""

    customer_aws_account_id: str
    dimension: str
    quantity: Decimal
    license_arn: str | None = None  # which of the customer's licenses; needed when it holds several
    time: datetime | None = None  # when the usage happened; default now
    allocations: tuple[UsageAllocation, ...] | None = None

    @classmethod
    def validate(cls, data: Any) -> UsageRecord:
        """The record `data` (the request's JSON, numbers as Decimal) describes; raises InvalidUsage."""
        if isinstance(data, UsageRecord):
            return data
        if not isinstance(data, Mapping):
            raise InvalidUsage([_problem("model_type", (), _model_type("UsageRecord"), data)])
        return _Reader(data).record()


def _problem(kind: str, loc: Location, msg: str, value: Any, ctx: dict[str, Any] | None = None) -> Problem:
    problem: Problem = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        problem["ctx"] = ctx
    return problem


def _model_type(name: str) -> str:
    return f"Input should be a valid dictionary or instance of {name}"


def _value_error(loc: Location, message: str, value: Any) -> Problem:
    return _problem("value_error", loc, f"Value error, {message}", value, {"error": ValueError(message)})


class _Reader:
    """Reads one mapping's fields, collecting every problem before giving up."""

    def __init__(self, data: Mapping[str, Any], loc: Location = ()) -> None:
        self.data = data
        self.loc = loc
        self.problems: list[Problem] = []
        self.used: set[str] = set()

    def field(self, alias: str, name: str | None = None, required: bool = True) -> tuple[Location, Any]:
        """(where, value) of a field, by its alias or else its name (where is () if it is absent); a missing
        required field is noted."""
        for key in (alias, name):
            if key is not None and key in self.data:
                self.used.add(key)
                return (*self.loc, key), self.data[key]
        if required:
            self.problems.append(_problem("missing", (*self.loc, alias), "Field required", self.data))
        return (), None

    def extras(self) -> None:
        for key in self.data:
            if key not in self.used:
                msg = "Extra inputs are not permitted"
                self.problems.append(_problem("extra_forbidden", (*self.loc, key), msg, self.data[key]))

    def check(self, found: Problem | list[Problem] | None) -> bool:
        if found is None:
            return True
        self.problems.extend(found if isinstance(found, list) else [found])
        return False

    def record(self) -> UsageRecord:
        values: dict[str, Any] = {}
        where, account = self.field("customerAWSAccountId", "customer_aws_account_id")
        if where and self.check(_text(account, where, pattern=ACCOUNT_ID)):
            values["customer_aws_account_id"] = account
        where, license_arn = self.field("licenseArn", "license_arn", required=False)
        if (
            where
            and license_arn is not None
            and self.check(_text(license_arn, where, max_length=2048, pattern=LICENSE_ARN))
        ):
            values["license_arn"] = license_arn
        where, dimension = self.field("dimension")
        if where and self.check(_text(dimension, where, min_length=1, max_length=255)):
            values["dimension"] = dimension
        where, quantity = self.field("quantity")
        if where:
            parsed = _quantity(quantity, where)
            if self.check(parsed if isinstance(parsed, dict) else None):
                values["quantity"] = parsed
        where, moment = self.field("time", required=False)
        if where and moment is not None:
            parsed_time = _time(moment, where)
            if self.check(parsed_time if isinstance(parsed_time, dict) else None):
                values["time"] = parsed_time
        where, allocations = self.field("allocations", required=False)
        if where and allocations is not None:
            parsed_allocations = _allocations(allocations, where)
            if self.check(parsed_allocations if isinstance(parsed_allocations, list) else None):
                values["allocations"] = parsed_allocations
        self.extras()
        if self.problems:
            raise InvalidUsage(self.problems)
        usage = UsageRecord(**values)
        if usage.allocations is not None:
            total = sum((allocation.quantity for allocation in usage.allocations), Decimal(0))
            if total != usage.quantity:
                message = (
                    f"allocations add up to {decimal_text(total)}, "
                    f"not to the quantity {decimal_text(usage.quantity)}"
                )
                raise InvalidUsage([_value_error((), message, self.data)])
            keys = [allocation.key for allocation in usage.allocations]
            if len(set(keys)) != len(keys):
                message = "two allocations have the same tags; merge them"
                raise InvalidUsage([_value_error((), message, self.data)])
        return usage

    def allocation(self) -> UsageAllocation | None:
        where, quantity = self.field("quantity")
        parsed = _quantity(quantity, where) if where else None
        if isinstance(parsed, dict):
            self.problems.append(parsed)
        where, tags = self.field("tags")
        parsed_tags = _tags(tags, where) if where else None
        if isinstance(parsed_tags, list):
            self.problems.extend(parsed_tags)
        self.extras()
        if self.problems or not isinstance(parsed, Decimal) or not isinstance(parsed_tags, dict):
            return None
        return UsageAllocation(quantity=parsed, tags=parsed_tags)


def _characters(count: int) -> str:
    return f"{count} character{'s' if count != 1 else ''}"


def _text(
    value: Any,
    loc: Location,
    *,
    min_length: int = 0,
    max_length: int | None = None,
    pattern: str | None = None,
) -> Problem | None:
    if not isinstance(value, str):
        return _problem("string_type", loc, "Input should be a valid string", value)
    if len(value) < min_length:
        msg = f"String should have at least {_characters(min_length)}"
        return _problem("string_too_short", loc, msg, value, {"min_length": min_length})
    if max_length is not None and len(value) > max_length:
        msg = f"String should have at most {_characters(max_length)}"
        return _problem("string_too_long", loc, msg, value, {"max_length": max_length})
    if pattern is not None and _PATTERNS[pattern].fullmatch(value) is None:
        msg = f"String should match pattern '{pattern}'"
        return _problem("string_pattern_mismatch", loc, msg, value, {"pattern": pattern})
    return None


def _quantity(value: Any, loc: Location) -> Decimal | Problem:
    """A quantity: a finite decimal from 0 to MAX_QUANTITY with at most six places (JSON true is none)."""
    if isinstance(value, bool):
        return _value_error(loc, "must be a number, e.g. 17.42", value)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return _problem("decimal_parsing", loc, "Input should be a valid decimal", value)
    else:
        msg = "Decimal input should be an integer, float, string or Decimal object"
        return _problem("decimal_type", loc, msg, value)
    if not number.is_finite():
        return _problem("finite_number", loc, "Input should be a finite number", value)
    if _decimal_places(number) > QUANTITY_PLACES:
        msg = f"Decimal input should have no more than {QUANTITY_PLACES} decimal places"
        return _problem("decimal_max_places", loc, msg, value, {"decimal_places": QUANTITY_PLACES})
    if number < 0:
        msg = "Input should be greater than or equal to 0"
        return _problem("greater_than_equal", loc, msg, value, {"ge": Decimal(0)})
    if number > MAX_QUANTITY:
        msg = f"Input should be less than or equal to {MAX_QUANTITY}"
        return _problem("less_than_equal", loc, msg, value, {"le": MAX_QUANTITY})
    return number


def _decimal_places(number: Decimal) -> int:
    """Places after the point, trailing zeros not counted (1.000000000 has none), however many digits."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # a finite number
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + zeros)) if any(digits) else 0


def _time(value: Any, loc: Location) -> datetime | Problem:
    try:
        moment = parse_time(value)
    except TimeProblem as problem:
        ctx = {"error": problem.reason} if problem.reason is not None else None
        return _problem(problem.kind, loc, problem.message, value, ctx)
    if moment.tzinfo is None:
        return _value_error(loc, "must include a time zone, e.g. 2026-11-23T10:15:00Z", value)
    return moment


def _allocations(value: Any, loc: Location) -> tuple[UsageAllocation, ...] | list[Problem]:
    if not isinstance(value, (list, tuple)):
        return [_problem("list_type", loc, "Input should be a valid list", value)]
    if len(value) > MAX_ALLOCATIONS_PER_REQUEST:
        most = MAX_ALLOCATIONS_PER_REQUEST
        msg = f"List should have at most {most} items after validation, not {len(value)}"
        ctx = {"field_type": "List", "max_length": most, "actual_length": len(value)}
        return [_problem("too_long", loc, msg, value, ctx)]
    problems: list[Problem] = []
    allocations: list[UsageAllocation] = []
    for index, item in enumerate(value):
        if isinstance(item, UsageAllocation):
            allocations.append(item)
        elif isinstance(item, Mapping):
            reader = _Reader(item, (*loc, index))
            allocation = reader.allocation()
            problems.extend(reader.problems)
            if allocation is not None:
                allocations.append(allocation)
        else:
            ctx = {"class_name": "UsageAllocation"}
            problems.append(_problem("model_type", (*loc, index), _model_type("UsageAllocation"), item, ctx))
    if problems:
        return problems
    if not allocations:
        msg = "List should have at least 1 item after validation, not 0"
        ctx = {"field_type": "List", "min_length": 1, "actual_length": 0}
        return [_problem("too_short", loc, msg, value, ctx)]
    return tuple(allocations)


def _tags(value: Any, loc: Location) -> dict[str, str] | list[Problem]:
    if not isinstance(value, Mapping):
        return [_problem("dict_type", loc, "Input should be a valid dictionary", value)]
    problems: list[Problem] = []
    tags: dict[str, str] = {}
    for key, text in value.items():
        key_problem = _text(key, (*loc, key, "[key]"), min_length=1, max_length=100, pattern=TAG_TEXT)
        value_problem = _text(text, (*loc, key), min_length=1, max_length=256, pattern=TAG_TEXT)
        problems.extend(problem for problem in (key_problem, value_problem) if problem is not None)
        if key_problem is None and value_problem is None:
            tags[key] = text
            if len(tags) > MAX_TAGS:
                msg = f"Dictionary should have at most {MAX_TAGS} items after validation, not more"
                ctx = {"field_type": "Dictionary", "max_length": MAX_TAGS, "actual_length": None}
                return [_problem("too_long", loc, msg, value, ctx)]  # only this, as the API always said
    if problems:
        return problems
    if not tags:
        msg = "Dictionary should have at least 1 item after validation, not 0"
        ctx = {"field_type": "Dictionary", "min_length": 1, "actual_length": 0}
        return [_problem("too_short", loc, msg, value, ctx)]
    return tags


def decimal_text(value: Decimal | int) -> str:
    """The form QuantityAsDecimal takes: `17.42`, `17` (for 17.00), `0`; never an exponent."""
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "") else text
