"""The AWS Marketplace Agreement API (`marketplace-agreement` 2020-03-01) over the emulator's agreements.

`SearchAgreements`, `DescribeAgreement` and `GetAgreementEntitlements`, as the seller (the proposer of its
agreements, SELLER_ACCOUNT) calls them, answered from the agreements the emulator's subscriptions and
lifecycle events made (`Marketplace.agreements`). Requests arrive already checked against their shape
(shapes.py); these are the rules the shape cannot say, from the model's documentation (botocore 1.44.8,
SearchAgreementsInput.filters and Sort) and AWS's reference code (aws-samples/aws-marketplace-reference-code,
python/src/agreements_api/seller/):

- `catalog` is `AWSMarketplace`; `filters` hold `PartyType` (`Proposer` or `Acceptor`) and `AgreementType`
  (required: "A proposer can use any combination of the preceding filters along with AgreementType, which is
  required"), each filter once, with one value (the shape allows one).
- The time filters (`Before/AfterLastUpdateTime`, `Before/AfterStartTime`, `Before/AfterEndTime`) take
  "ISO 8601 format. i.e. 'YYYY-MM-DDThh:mm:ssZ'" ("Make sure to use the same date format as below",
  search_agreements_by_lastUpdateDate); any other form is refused. No page says whether a bound is inclusive:
  the emulator reads `After` as at-or-after and `Before` as strictly before, so consecutive windows
  [After, Before) cover time exactly once. An agreement without an end date matches no EndTime filter.
- Filters and sorts only a proposer may use (LastUpdateTime, StartTime, AcceptorAccountId, LicenseArn, ...)
  with `PartyType=Acceptor` → ValidationException `UNSUPPORTED_FILTERS` / `INVALID_SORT_BY`, as the
  reference code says of them.
- `sort.sortBy` is `EndTime` (the default), `StartTime` or `LastUpdateTime`; `sortOrder` ASCENDING (the
  default) or DESCENDING. An agreement without an end date sorts after every dated one (it never ends).
- `nextToken` is opaque: it names where the previous page stopped (the sort key of its last agreement, not a
  position, so an agreement updated between pages of a LastUpdateTime search is seen again rather than
  another skipped) and is signed with the search it belongs to; a token that was altered or belongs to
  another search → ValidationException `INVALID_NEXT_TOKEN`.
- Errors are the model's: ValidationException (`message`, `reason` from ValidationExceptionReason,
  `fields: [{name, message}]` naming the member), ResourceNotFoundException (`resourceId`, `resourceType:
  Agreement`) for an unknown agreement, AccessDeniedException for an agreement the seller is not a party to
  (a resold product's agreements are proposed by the channel partner: the seller, only their manufacturer,
  does not see them as proposer).

Where no page tells, the emulator's reading: the default page size is 50 (the maximum); DescribeAgreement has
no `estimatedCharges` (the emulator knows no prices); an entitlement has no `type` and no `registrationToken`
(acceptors only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.marketplace_emulator.state import SELLER_ACCOUNT, AgreementView, ApiError, Marketplace

CATALOG = "AWSMarketplace"
AGREEMENT_TYPES = ("PurchaseAgreement", "VendorInsightsAgreement")  # the model's agreementType values
PURCHASE_AGREEMENT = "PurchaseAgreement"
RESOURCE_TYPE = "SaaSProduct"
RESOURCE_TYPES = (
    "AmiProduct",
    "ContainerProduct",
    "SaaSProduct",
    "ProfessionalServicesProduct",
    "MachineLearningProduct",
)
PARTY_TYPES = ("Proposer", "Acceptor")
AGREEMENT_STATUSES = (
    "ACTIVE",
    "ARCHIVED",
    "CANCELLED",
    "EXPIRED",
    "RENEWED",
    "REPLACED",
    "ROLLED_BACK",
    "SUPERSEDED",
    "TERMINATED",
)
END_TIME_BEHAVIOR_TYPES = ("RENEW", "REPLACE", "EXPIRE")
END_TIME_BEHAVIOR_REASON_CODES = (
    "PROPOSER_RENEW_OPTED_OUT",
    "ACCEPTOR_RENEW_OPTED_OUT",
    "NO_RENEWAL_TERM",
    "RENEWAL_LIMIT_EXHAUSTED",
)
CONTACT_TYPES = ("ACCEPTOR",)
TIME_FORMAT = "YYYY-MM-DDThh:mm:ssZ"
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_ACCOUNT = re.compile(r"\d{12}")
_LICENSE_ARN = re.compile(r"arn:aws[a-zA-Z-]*:license-manager:[^:]*:\d*:license[:/]l-[0-9a-zA-Z]+")
# The time filters: which time of the agreement they bound, and from which side.
TIME_FILTERS: dict[str, tuple[str, str]] = {
    "AfterLastUpdateTime": ("last_update_ms", "after"),
    "BeforeLastUpdateTime": ("last_update_ms", "before"),
    "AfterStartTime": ("acceptance_ms", "after"),
    "BeforeStartTime": ("acceptance_ms", "before"),
    "AfterEndTime": ("end_ms", "after"),
    "BeforeEndTime": ("end_ms", "before"),
}
# Filters matched by equality: the value a filter must be one of (None: any), and the agreement's field.
EQUALITY_FILTERS: dict[str, tuple[tuple[str, ...] | None, Callable[[AgreementView], str | None]]] = {
    "ResourceIdentifier": (None, lambda view: view.product_id),
    "ResourceType": (RESOURCE_TYPES, lambda view: RESOURCE_TYPE),
    "OfferId": (None, lambda view: view.offer_id),
    "AcceptorAccountId": (None, lambda view: view.acceptor_account_id),
    "Status": (AGREEMENT_STATUSES, lambda view: view.status),
    "LicenseArn": (None, lambda view: view.license_arn),
    "InitialAgreementId": (None, lambda view: view.initial_agreement_id),
    "EndTimeBehaviorType": (END_TIME_BEHAVIOR_TYPES, lambda view: view.end_time_behavior),
    # The emulator's agreements have no offer set, no reason not to renew, no contact on file: these filters
    # are accepted and match none of them.
    "EndTimeBehaviorReasonCode": (END_TIME_BEHAVIOR_REASON_CODES, lambda view: None),
    "OfferSetId": (None, lambda view: None),
    "IncludesContactOfType": (CONTACT_TYPES, lambda view: None),
}
FILTER_NAMES = ("PartyType", "AgreementType", *EQUALITY_FILTERS, *TIME_FILTERS)
# What an acceptor may filter by (SearchAgreementsInput.filters: "The following filter combinations are
# supported when the PartyType is Acceptor").
ACCEPTOR_FILTERS = frozenset(
    {
        "PartyType",
        "AgreementType",
        "Status",
        "ResourceIdentifier",
        "ResourceType",
        "OfferId",
        "OfferSetId",
        "BeforeEndTime",
        "AfterEndTime",
    }
)
SORT_KEYS = {"EndTime": "end_ms", "StartTime": "acceptance_ms", "LastUpdateTime": "last_update_ms"}
PROPOSER_ONLY_SORTS = frozenset({"StartTime", "LastUpdateTime"})
DEFAULT_PAGE_SIZE = 50
_NO_END = 2**62  # an agreement without an end date sorts as if it ended after every other


def invalid(reason: str, field: str, message: str) -> ApiError:
    """A ValidationException as the model shapes it: the message, why, and the member at fault."""
    return ApiError(
        "ValidationException",
        message,
        400,
        members={"reason": reason, "fields": [{"name": field, "message": message}]},
    )


def search_agreements(marketplace: Marketplace, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("catalog") != CATALOG:
        raise invalid(
            "INVALID_CATALOG", "catalog", f"catalog must be {CATALOG}, got {request.get('catalog')!r}"
        )
    filters = _filters(request.get("filters", []))
    party = filters["PartyType"]
    sort = request.get("sort", {})
    sort_by, descending = sort.get("sortBy", "EndTime"), sort.get("sortOrder", "ASCENDING") == "DESCENDING"
    if sort_by not in SORT_KEYS:
        raise invalid(
            "INVALID_SORT_BY",
            "sort.sortBy",
            f"sort.sortBy must be one of {', '.join(SORT_KEYS)}, got {sort_by!r}",
        )
    if party == "Acceptor" and sort_by in PROPOSER_ONLY_SORTS:
        raise invalid(
            "INVALID_SORT_BY",
            "sort.sortBy",
            f"sorting by {sort_by} is supported only when PartyType is Proposer",
        )
    # The search a page token belongs to: everything but the page size and the token.
    search = json.dumps(
        {"catalog": CATALOG, "filters": filters, "sortBy": sort_by, "descending": descending}, sort_keys=True
    ).encode()
    start = None
    if "nextToken" in request:
        start = _read_token(marketplace.page_token_key, search, request["nextToken"])
    page_size = request.get("maxResults", DEFAULT_PAGE_SIZE)

    caller = "proposer_account_id" if party == "Proposer" else "acceptor_account_id"
    found = [
        view
        for view in marketplace.agreement_views()
        if getattr(view, caller) == SELLER_ACCOUNT and _matches(view, filters)
    ]

    def key(view: AgreementView) -> tuple[int, int]:
        value = getattr(view, SORT_KEYS[sort_by])
        return (_NO_END if value is None else value, view.sequence)

    found.sort(key=key, reverse=descending)
    if start is not None:
        found = [view for view in found if (key(view) < start if descending else key(view) > start)]
    page = found[:page_size]
    result: dict[str, Any] = {"agreementViewSummaries": [_summary(view) for view in page]}
    if len(found) > page_size:
        result["nextToken"] = _token(marketplace.page_token_key, search, key(page[-1]))
    return result


def describe_agreement(marketplace: Marketplace, request: dict[str, Any]) -> dict[str, Any]:
    view = _agreement(marketplace, request["agreementId"])
    result: dict[str, Any] = {
        "agreementId": view.agreement_id,
        "acceptor": {"accountId": view.acceptor_account_id},
        "proposer": {"accountId": view.proposer_account_id},
        "startTime": _time(view.acceptance_ms),
        "acceptanceTime": _time(view.acceptance_ms),
        "agreementType": PURCHASE_AGREEMENT,
        "proposalSummary": _proposal(view),
        "status": view.status,
        "initialAgreementId": view.initial_agreement_id,
    }
    if view.end_ms is not None:
        result["endTime"] = _time(view.end_ms)
    # "present for every active agreement that has an end date ... not present for an agreement that is no
    # longer active"; renewalSummary "is present when Type is RENEW" (it renews from the same offer).
    if view.status == "ACTIVE" and view.end_ms is not None and view.end_time_behavior is not None:
        behavior: dict[str, Any] = {"type": view.end_time_behavior}
        if view.end_time_behavior == "RENEW":
            behavior["renewalSummary"] = {"offerId": view.offer_id}
        result["endTimeBehavior"] = behavior
    return result


def get_agreement_entitlements(marketplace: Marketplace, request: dict[str, Any]) -> dict[str, Any]:
    view = _agreement(marketplace, request["agreementId"])
    scope = f"entitlements:{view.agreement_id}".encode()
    start = -1
    if "nextToken" in request:
        start = _read_token(marketplace.page_token_key, scope, request["nextToken"])[0]
    entitlements = [
        {
            "resource": {"id": view.product_id, "type": RESOURCE_TYPE},
            "status": view.entitlement_status,
            "statusReasonCode": view.entitlement_reason,
            "licenseArn": view.license_arn,
        }
    ]
    page_size = request.get("maxResults", DEFAULT_PAGE_SIZE)
    remaining = list(enumerate(entitlements))[start + 1 :]
    page = remaining[:page_size]
    result: dict[str, Any] = {"agreementEntitlements": [item for _, item in page]}
    if len(remaining) > page_size:
        result["nextToken"] = _token(marketplace.page_token_key, scope, (page[-1][0], 0))
    return result


def _agreement(marketplace: Marketplace, agreement_id: str) -> AgreementView:
    view = next((v for v in marketplace.agreement_views() if v.agreement_id == agreement_id), None)
    if view is None:
        raise ApiError(
            "ResourceNotFoundException",
            f"Agreement {agreement_id} was not found",
            404,
            members={"resourceId": agreement_id, "resourceType": "Agreement"},
        )
    if SELLER_ACCOUNT not in (view.proposer_account_id, view.acceptor_account_id):
        raise ApiError(
            "AccessDeniedException",
            f"Account {SELLER_ACCOUNT} is neither the proposer nor the acceptor of agreement {agreement_id}",
            403,
            members={"reason": "INVALID_ACCESS"},
        )
    return view


def _filters(given: list[dict[str, Any]]) -> dict[str, str]:
    """The filters by name, each checked; PartyType and AgreementType present."""
    filters: dict[str, str] = {}
    for index, item in enumerate(given):
        where = f"filters[{index}]"
        name, values = item.get("name"), item.get("values")
        if name is None:
            raise invalid("MISSING_FILTER_NAME", f"{where}.name", f"{where}.name is required")
        if name not in FILTER_NAMES:
            raise invalid(
                "INVALID_FILTER_NAME",
                f"{where}.name",
                f"{where}.name: {name!r} is not a filter of SearchAgreements (one of "
                f"{', '.join(FILTER_NAMES)})",
            )
        if not values:
            raise invalid(
                "MISSING_FILTER_VALUES", f"{where}.values", f"{where}.values: the {name} filter needs a value"
            )
        if name in filters:
            raise invalid(
                "INVALID_FILTERS", f"{where}.name", f"{where}.name: the {name} filter is given twice"
            )
        filters[name] = _filter_value(name, values[0], f"{where}.values[0]")
    if "PartyType" not in filters:
        raise invalid(
            "MISSING_PARTY_TYPE", "filters", "filters: PartyType (Proposer or Acceptor) is required"
        )
    if "AgreementType" not in filters:
        raise invalid("INVALID_FILTERS", "filters", "filters: AgreementType (PurchaseAgreement) is required")
    if filters["PartyType"] == "Acceptor":
        unsupported = sorted(set(filters) - ACCEPTOR_FILTERS)
        if unsupported:
            raise invalid(
                "UNSUPPORTED_FILTERS",
                "filters",
                f"filters: {', '.join(unsupported)} supported only when PartyType is Proposer",
            )
    for bound in ("LastUpdateTime", "StartTime", "EndTime"):
        after, before = filters.get(f"After{bound}"), filters.get(f"Before{bound}")
        if after is not None and before is not None and _ms(after) >= _ms(before):
            raise invalid(
                "INVALID_FILTER_VALUES",
                f"Before{bound}",
                f"filters: After{bound} {after} is not before Before{bound} {before}",
            )
    return filters


def _filter_value(name: str, value: str, where: str) -> str:
    def refuse(expected: str) -> ApiError:
        return invalid(
            "INVALID_PARTY_TYPE" if name == "PartyType" else "INVALID_FILTER_VALUES",
            where,
            f"{where}: {value!r} is not a valid {name}: {expected}",
        )

    if name == "PartyType" and value not in PARTY_TYPES:
        raise refuse(" or ".join(PARTY_TYPES))
    if name == "AgreementType" and value not in AGREEMENT_TYPES:
        raise invalid(
            "INVALID_AGREEMENT_TYPE",
            where,
            f"{where}: {value!r} is not an agreement type ({', '.join(AGREEMENT_TYPES)})",
        )
    if name in TIME_FILTERS:
        if not _TIME.fullmatch(value):
            raise refuse(f"a UTC time in ISO 8601 format {TIME_FORMAT}, e.g. 2026-11-18T00:00:00Z")
        try:
            _ms(value)
        except ValueError:
            raise refuse(f"a UTC time in ISO 8601 format {TIME_FORMAT} that exists") from None
    if name == "AcceptorAccountId" and not _ACCOUNT.fullmatch(value):
        raise refuse("an AWS account id of 12 digits")
    if name == "LicenseArn" and not _LICENSE_ARN.fullmatch(value):
        raise refuse("the ARN of an AWS License Manager license (arn:aws:license-manager::…:license:l-…)")
    if name in EQUALITY_FILTERS:
        allowed = EQUALITY_FILTERS[name][0]
        if allowed is not None and value not in allowed:
            raise refuse("one of " + ", ".join(allowed))
    return value


def _matches(view: AgreementView, filters: dict[str, str]) -> bool:
    if filters["AgreementType"] != PURCHASE_AGREEMENT:
        return False  # the emulator's agreements are all purchase agreements
    for name, value in filters.items():
        if name in EQUALITY_FILTERS and EQUALITY_FILTERS[name][1](view) != value:
            return False
        if name in TIME_FILTERS:
            attribute, side = TIME_FILTERS[name]
            moment: int | None = getattr(view, attribute)
            if moment is None:
                return False
            bound = _ms(value)
            if (side == "after" and moment < bound) or (side == "before" and moment >= bound):
                return False
    return True


def _summary(view: AgreementView) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "agreementId": view.agreement_id,
        "acceptanceTime": _time(view.acceptance_ms),
        "startTime": _time(view.acceptance_ms),
        "lastUpdateTime": _time(view.last_update_ms),
        "agreementType": PURCHASE_AGREEMENT,
        "acceptor": {"accountId": view.acceptor_account_id},
        "proposer": {"accountId": view.proposer_account_id},
        "proposalSummary": _proposal(view),
        "status": view.status,
        "entitlements": [{"licenseArn": view.license_arn}],
        "initialAgreementId": view.initial_agreement_id,
    }
    if view.end_ms is not None:
        summary["endTime"] = _time(view.end_ms)
    if view.end_time_behavior is not None:
        summary["endTimeBehaviorType"] = view.end_time_behavior
    return summary


def _proposal(view: AgreementView) -> dict[str, Any]:
    return {"resources": [{"id": view.product_id, "type": RESOURCE_TYPE}], "offerId": view.offer_id}


def _time(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _ms(value: str) -> int:
    return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)


# --- page tokens ---------------------------------------------------------------------------------------

_POSITION = struct.Struct(">qq")
_SCOPE_BYTES = 8
_MAC_BYTES = 16


def _token(key: bytes, scope: bytes, position: tuple[int, int]) -> str:
    """Where the next page starts, bound to the search it belongs to and signed (NextToken's alphabet)."""
    body = _POSITION.pack(*position) + hashlib.sha256(scope).digest()[:_SCOPE_BYTES]
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).decode()


def _read_token(key: bytes, scope: bytes, token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except ValueError:
        raw = b""
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(body) != _POSITION.size + _SCOPE_BYTES or not hmac.compare_digest(
        mac, hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    ):
        raise invalid("INVALID_NEXT_TOKEN", "nextToken", "nextToken is not a token this API issued")
    if body[_POSITION.size :] != hashlib.sha256(scope).digest()[:_SCOPE_BYTES]:
        raise invalid(
            "INVALID_NEXT_TOKEN",
            "nextToken",
            "nextToken belongs to another request: send it with the same catalog, filters and sort "
            "(or agreementId) as the request that returned it",
        )
    first, second = _POSITION.unpack(body[: _POSITION.size])
    return first, second
