"""The request shapes the emulator implements, and the check every request passes before it is served.

These are transcribed from botocore's service models (meteringmarketplace 2016-01-14,
marketplace-entitlement 2017-01-11 and marketplace-agreement 2020-03-01, as of botocore 1.44.8 / the model of
2026-10-20).
tests/integration/emulator/test_botocore_model.py compares them with the installed model member by member,
so a model change (a new member, a changed limit or pattern) fails a test instead of being silently ignored.

What AWS answers for a request that does not fit its shape (AWS JSON 1.1 and rpc-v2-cbor services):

- a body that cannot be read into the shape (not JSON/CBOR, invalid UTF-8, not an object, a string where an
  integer belongs, a member the model does not have) → `SerializationException` (HTTP 400), what AWS's JSON
  services answer when they cannot deserialize a body.
- a well-typed value outside its constraints (required, length, range, pattern, enum) → the error of the
  nearest enclosing shape that names one: `InvalidTagException` inside tags,
  `InvalidUsageAllocationsException` inside usage allocations, `InvalidParameterException` for
  GetEntitlements (the only client error its model declares), `InvalidTokenException` for ResolveCustomer's
  token; otherwise the generic `ValidationException` (HTTP 400, "The input fails to satisfy the constraints
  specified by an AWS service", on every AWS API reference's Common Errors page).

Neither generic error is in the metering and entitlement models, so botocore has no exception class for
them; its JSON and CBOR error parsers read the code from `__type` (dropping any `namespace#` prefix), so
callers get a `ClientError` whose `Error.Code` is exactly `SerializationException` or `ValidationException`.
That is the form botocore understands, and the one the metering runtime matches (it treats
`ValidationException` as a final rejection of the call). The Agreement API (AWS JSON 1.0 and rpc-v2-cbor)
models its `ValidationException` (with `reason` and `fields`), so there it is a modeled error like any other;
the rules beyond the shapes (filter values, page tokens) are agreements.py's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.marketplace_emulator.state import ApiError

SERIALIZATION = "SerializationException"


@dataclass(frozen=True)
class Shape:
    """A botocore shape, reduced to what the emulator checks. `error`: see the module docstring."""

    name: str
    type: str  # structure | list | map | string | integer | timestamp
    members: Mapping[str, Shape] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    member: Shape | None = None  # list
    key: Shape | None = None  # map
    value: Shape | None = None  # map
    min: int | None = None
    max: int | None = None
    pattern: str | None = None  # searched, not anchored (Smithy's `pattern` semantics)
    enum: tuple[str, ...] = ()
    error: str | None = None


def _string(name: str, **constraints: Any) -> Shape:
    return Shape(name, "string", **constraints)


# --- Marketplace Metering (AWS JSON 1.1) ------------------------------------------------------------------

DECIMAL_PATTERN = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$"
TAG_PATTERN = r"^[a-zA-Z0-9+ -=._:\/@]+$"
TAG = Shape(
    "Tag",
    "structure",
    members={
        "Key": _string("TagKey", min=1, max=100, pattern=TAG_PATTERN),
        "Value": _string("TagValue", min=1, max=256, pattern=TAG_PATTERN),
    },
    required=frozenset({"Key", "Value"}),
    error="InvalidTagException",
)
USAGE_ALLOCATION = Shape(
    "UsageAllocation",
    "structure",
    members={
        "AllocatedUsageQuantity": Shape("AllocatedUsageQuantity", "integer", min=0, max=2147483647),
        "AllocatedUsageQuantityAsDecimal": _string(
            "AllocatedUsageQuantityAsDecimalString", min=1, max=17, pattern=DECIMAL_PATTERN
        ),
        "Tags": Shape("TagList", "list", member=TAG, min=1, max=5, error="InvalidTagException"),
    },
    error="InvalidUsageAllocationsException",
)
USAGE_RECORD = Shape(
    "UsageRecord",
    "structure",
    members={
        "Timestamp": Shape("Timestamp", "timestamp"),
        "CustomerIdentifier": _string("CustomerIdentifier", min=0, max=255, pattern=r"[\s\S]*"),
        "Dimension": _string("UsageDimension", min=1, max=255, pattern=r"[\s\S]+"),
        "Quantity": Shape("UsageQuantity", "integer", min=0, max=2147483647),
        "QuantityAsDecimal": _string("UsageQuantityAsDecimalString", min=1, max=17, pattern=DECIMAL_PATTERN),
        "UsageAllocations": Shape(
            "UsageAllocations",
            "list",
            member=USAGE_ALLOCATION,
            min=1,
            max=2500,
            error="InvalidUsageAllocationsException",
        ),
        "CustomerAWSAccountId": _string("CustomerAWSAccountId", min=1, max=255, pattern=r"^[0-9]+$"),
        "LicenseArn": _string(
            "LicenseArn",
            pattern=(
                r"^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:"
                r"[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$"
            ),
        ),
    },
    required=frozenset({"Timestamp", "Dimension"}),
)
BATCH_METER_USAGE_REQUEST = Shape(
    "BatchMeterUsageRequest",
    "structure",
    members={
        # The model allows an empty list (min 0): an empty call is answered with empty results.
        "UsageRecords": Shape("UsageRecordList", "list", member=USAGE_RECORD, min=0, max=25),
        "ProductCode": _string("ProductCode", min=0, max=255, pattern=r"^[-a-zA-Z0-9/=:_.@]*$"),
    },
    required=frozenset({"UsageRecords"}),
    error="ValidationException",
)
RESOLVE_CUSTOMER_REQUEST = Shape(
    "ResolveCustomerRequest",
    "structure",
    members={"RegistrationToken": _string("NonEmptyString", pattern=r"[\s\S]+")},
    required=frozenset({"RegistrationToken"}),
    error="InvalidTokenException",
)

# --- Marketplace Entitlement (smithy-rpc-v2-cbor, or AWS JSON 1.1) ---------------------------------------

FILTER_NAMES = ("CUSTOMER_IDENTIFIER", "DIMENSION", "CUSTOMER_AWS_ACCOUNT_ID", "LICENSE_ARN")
GET_ENTITLEMENTS_REQUEST = Shape(
    "GetEntitlementsRequest",
    "structure",
    members={
        "ProductCode": _string("ProductCode", min=1, max=255),
        "Filter": Shape(
            "GetEntitlementFilters",
            "map",
            key=_string("GetEntitlementFilterName", enum=FILTER_NAMES),
            value=Shape("FilterValueList", "list", member=_string("FilterValue"), min=1),
        ),
        "NextToken": _string("NonEmptyString", pattern=r"\S+"),
        "MaxResults": Shape("PageSizeInteger", "integer", min=1, max=25),
    },
    required=frozenset({"ProductCode"}),
    error="InvalidParameterException",
)

# --- Marketplace Agreement (smithy-rpc-v2-cbor, or AWS JSON 1.0) -----------------------------------------
# ValidationException is a modeled error here (with reason and fields); a shape violation is one too.

AGREEMENT_MAX_RESULTS = Shape("MaxResults", "integer", min=1, max=50)
AGREEMENT_NEXT_TOKEN = _string("NextToken", min=0, max=8192, pattern=r"[a-zA-Z0-9+/=_-]+")
AGREEMENT_ID = _string("ResourceId", min=1, max=64, pattern=r"[A-Za-z0-9_/-]+")
SEARCH_AGREEMENTS_REQUEST = Shape(
    "SearchAgreementsInput",
    "structure",
    members={
        "catalog": _string("Catalog", min=1, max=64, pattern=r"[a-zA-Z0-9.-]+"),
        "filters": Shape(
            "FilterList",
            "list",
            member=Shape(
                "Filter",
                "structure",
                members={
                    "name": _string("FilterName", min=1, max=32, pattern=r"[A-Za-z_]+"),
                    "values": Shape(
                        "FilterValueList",
                        "list",
                        member=_string("FilterValue", min=1, max=256, pattern=r"[A-Za-z0-9.,+:/_-]+"),
                        min=1,
                        max=1,
                    ),
                },
            ),
            min=1,
            max=10,
        ),
        "sort": Shape(
            "Sort",
            "structure",
            members={
                "sortBy": _string("SortBy", min=1, max=255, pattern=r"[A-Za-z_]+"),
                "sortOrder": _string("SortOrder", enum=("ASCENDING", "DESCENDING")),
            },
        ),
        "maxResults": AGREEMENT_MAX_RESULTS,
        "nextToken": AGREEMENT_NEXT_TOKEN,
    },
    error="ValidationException",
)
DESCRIBE_AGREEMENT_REQUEST = Shape(
    "DescribeAgreementInput",
    "structure",
    members={"agreementId": AGREEMENT_ID},
    required=frozenset({"agreementId"}),
    error="ValidationException",
)
GET_AGREEMENT_ENTITLEMENTS_REQUEST = Shape(
    "GetAgreementEntitlementsInput",
    "structure",
    members={
        "agreementId": AGREEMENT_ID,
        "maxResults": AGREEMENT_MAX_RESULTS,
        "nextToken": AGREEMENT_NEXT_TOKEN,
    },
    required=frozenset({"agreementId"}),
    error="ValidationException",
)


def read(shape: Shape, value: Any, path: str = "", error: str = "ValidationException") -> Any:
    """`value` checked against `shape` (see the module docstring for the errors); nulls dropped."""
    error = shape.error or error
    where = path or shape.name

    def violated(constraint: str) -> ApiError:
        shown = value if isinstance(value, int | str) else type(value).__name__
        return ApiError(
            error,
            f"1 validation error detected: Value {shown!r} at '{where}' failed to satisfy constraint: "
            f"Member must {constraint}",
        )

    def wrong_type(expected: str) -> ApiError:
        return ApiError(SERIALIZATION, f"{where}: expected {expected}, got {_json_type(value)}")

    if shape.type == "structure":
        if not isinstance(value, dict):
            raise wrong_type("an object")
        unknown = sorted(set(value) - set(shape.members))
        if unknown:
            raise ApiError(
                SERIALIZATION,
                f"{where}: unknown member {unknown[0]!r} (the emulator implements {shape.name} with "
                f"{', '.join(shape.members)})",
            )
        result = {}
        for name, member in shape.members.items():
            if value.get(name) is not None:
                result[name] = read(member, value[name], f"{path}.{name}" if path else name, error)
            elif name in shape.required:
                missing = f"{path}.{name}" if path else name
                raise ApiError(
                    error,
                    f"1 validation error detected: Value null at '{missing}' failed to satisfy constraint: "
                    "Member must not be null",
                )
        return result
    if shape.type == "list":
        if not isinstance(value, list):
            raise wrong_type("a list")
        _check_size(shape, len(value), violated, "have length")
        assert shape.member is not None
        return [read(shape.member, item, f"{where}[{index}]", error) for index, item in enumerate(value)]
    if shape.type == "map":
        if not isinstance(value, dict):
            raise wrong_type("a map")
        assert shape.key is not None and shape.value is not None
        return {
            read(shape.key, key, f"{where} key", error): read(shape.value, item, f"{where}.{key}", error)
            for key, item in value.items()
        }
    if shape.type == "string":
        if not isinstance(value, str):
            raise wrong_type("a string")
        _check_size(shape, len(value), violated, "have length")
        if shape.pattern is not None and not re.search(shape.pattern, value):
            raise violated(f"satisfy regular expression pattern: {shape.pattern}")
        if shape.enum and value not in shape.enum:
            raise violated(f"satisfy enum value set: [{', '.join(shape.enum)}]")
        return value
    if shape.type == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong_type("an integer")
        _check_size(shape, value, violated, "have value")
        return value
    if shape.type == "timestamp":
        # AWS JSON 1.1 sends epoch seconds; rpc-v2-cbor a tag-1 value, which cbor2 reads as a datetime.
        if isinstance(value, bool) or not isinstance(value, int | float | datetime):
            raise wrong_type("a timestamp (epoch seconds)")
        return value
    raise AssertionError(f"shape type {shape.type} is not implemented")


def _check_size(shape: Shape, size: int, violated: Any, what: str) -> None:
    if shape.min is not None and size < shape.min:
        raise violated(f"{what} greater than or equal to {shape.min}")
    if shape.max is not None and size > shape.max:
        raise violated(f"{what} less than or equal to {shape.max}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
