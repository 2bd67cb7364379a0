"""The emulated AWS Marketplace Catalog API (`marketplace-catalog`) for `SaaSProduct@1.0` entities.

What it keeps per product: its title and descriptions, its dimensions and its fulfillment URL (one `SaaSUrl`
delivery option), the things a listing's config says. Change sets run as AWS runs them (see
../../../shared/MARKETPLACE.md, "Listing management", and botocore's marketplace-catalog 2018-09-17 model):

- `StartChangeSet` checks the request (catalog, entity, change types, `Details` xor `DetailsDocument`, one
  change type per entity) and answers at once; an entity already in a running change set is locked
  (`ResourceInUseException`, HTTP 423). The same `ClientRequestToken` with the same request is the same
  change set.
- The change set then moves PREPARING → APPLYING → SUCCEEDED | FAILED on its own thread, `delay_seconds`
  per step. Every change is validated first; a change that fails gets its own `ErrorDetailList` and the
  whole change set fails (`FailureCode` CLIENT_ERROR), changing nothing. A dimension's `Key` and `Types`
  cannot change; the fulfillment URL must be https (http only to a loopback host, for local mode) and
  answer a real GET with 200, else `INVALID_FULFILLMENT_URL`.
- `CancelChangeSet` cancels a change set that is still PREPARING.

Assumption (no page shows a SaaS product's full `DetailsDocument`): `Description` holds `ProductTitle`,
`ProductCode`, `ShortDescription`, `LongDescription`; `Dimensions` the dimensions as AddDimensions takes
them; `DeliveryOptions` the URL option as `{Id, Type: "SaaSUrl", FulfillmentUrl}`.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.marketplace_emulator.state import SELLER_ACCOUNT, ApiError, Product

CATALOG = "AWSMarketplace"
ENTITY_TYPE = "SaaSProduct"
ENTITY_TYPE_VERSION = "SaaSProduct@1.0"
REGION = "us-east-1"
DEFAULT_DELAY_SECONDS = 2.0
CHANGE_TYPES = (
    "AddDeliveryOptions",
    "UpdateDeliveryOptions",
    "AddDimensions",
    "UpdateDimensions",
    "UpdateInformation",
)
# MARKETPLACE.md, "Listing management" (AddDimensions).
DIMENSION_UNITS = (
    "GB", "Gbps", "HostHrs", "Hosts", "MB", "Mbps", "Requests", "TaskHrs", "TB", "TierHrs", "UnitHrs",
    "Units", "UserHrs", "Users",
)  # fmt: skip
DIMENSION_TYPES = ("ExternallyMetered", "Entitled")
DIMENSION_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_DIMENSIONS = 200
MAX_URL_LENGTH = 2048
# UpdateInformation's text fields and their limits (MARKETPLACE.md).
INFORMATION_LIMITS = {"ProductTitle": 72, "ShortDescription": 1000, "LongDescription": 5000}
RUNNING = ("PREPARING", "APPLYING")
_IDENTIFIER = re.compile(r"^[\w\-@]+$")
_TOKEN = re.compile(r"^[!-~]{1,64}$")
_CHANGE_TYPE = re.compile(r"^[A-Z][\w]*$")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def iso(moment: float) -> str:
    """The model's DateTimeISO8601: exactly `2018-02-27T13:45:22Z`."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _random_id(prefix: str, length: int = 25) -> str:
    digest = uuid.uuid4().bytes + uuid.uuid4().bytes
    return prefix + "".join(_ID_ALPHABET[byte % len(_ID_ALPHABET)] for byte in digest[:length])


def check_url_with_get(url: str) -> str | None:
    """GET the URL as AWS does; None when it answers 200, else what went wrong."""
    try:
        request = urllib.request.Request(  # noqa: S310 - checked before: https, or http to a loopback host
            url, method="GET", headers={"User-Agent": "aws-marketplace-emulator"}
        )
        with urllib.request.urlopen(  # noqa: S310
            request,
            timeout=10,
        ) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"a GET of {url} failed ({getattr(error, 'reason', error)})"
    return None if status == 200 else f"a GET of {url} answered {status}, not 200"


@dataclass
class Entity:
    entity_id: str
    product_code: str
    title: str
    short_description: str = ""
    long_description: str = ""
    dimensions: list[dict[str, Any]] = field(default_factory=list)
    delivery_options: list[dict[str, Any]] = field(default_factory=list)
    revision: int = 1
    last_modified: float = 0.0

    @property
    def arn(self) -> str:
        return f"arn:aws:aws-marketplace:{REGION}:{SELLER_ACCOUNT}:{CATALOG}/{ENTITY_TYPE}/{self.entity_id}"

    def details(self) -> dict[str, Any]:
        return {
            "Description": {
                "ProductTitle": self.title,
                "ProductCode": self.product_code,
                "ShortDescription": self.short_description,
                "LongDescription": self.long_description,
                "Visibility": "Limited",
            },
            "Dimensions": copy.deepcopy(self.dimensions),
            "DeliveryOptions": copy.deepcopy(self.delivery_options),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "Name": self.title,
            "EntityType": ENTITY_TYPE,
            "EntityId": self.entity_id,
            "EntityArn": self.arn,
            "LastModifiedDate": iso(self.last_modified),
            "Visibility": "Limited",
            "SaaSProductSummary": {"ProductTitle": self.title, "Visibility": "Limited"},
        }


@dataclass
class Change:
    change_type: str
    entity_id: str
    details: Any
    as_document: bool  # sent as DetailsDocument (answered the same way), else as the Details string
    name: str | None
    errors: list[dict[str, str]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "ChangeType": self.change_type,
            "Entity": {"Type": ENTITY_TYPE_VERSION, "Identifier": self.entity_id},
            "ErrorDetailList": list(self.errors),
        }
        if self.as_document:
            view["DetailsDocument"] = self.details
        else:
            view["Details"] = json.dumps(self.details)
        if self.name:
            view["ChangeName"] = self.name
        return view


@dataclass
class ChangeSet:
    change_set_id: str
    name: str | None
    changes: list[Change]
    start: float
    status: str = "PREPARING"
    end: float | None = None
    failure_code: str | None = None
    failure_description: str | None = None
    cancel_requested: bool = False

    @property
    def arn(self) -> str:
        return f"arn:aws:aws-marketplace:{REGION}:{SELLER_ACCOUNT}:{CATALOG}/ChangeSet/{self.change_set_id}"

    @property
    def entity_ids(self) -> list[str]:
        return list(dict.fromkeys(change.entity_id for change in self.changes))

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "ChangeSetId": self.change_set_id,
            "ChangeSetArn": self.arn,
            "StartTime": iso(self.start),
            "Status": self.status,
            "ChangeSet": [change.view() for change in self.changes],
        }
        if self.name:
            view["ChangeSetName"] = self.name
        if self.end is not None:
            view["EndTime"] = iso(self.end)
        if self.failure_code:
            view["FailureCode"] = self.failure_code
            view["FailureDescription"] = self.failure_description or ""
        return view

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "ChangeSetId": self.change_set_id,
            "ChangeSetArn": self.arn,
            "StartTime": iso(self.start),
            "Status": self.status,
            "EntityIdList": self.entity_ids,
        }
        if self.name:
            summary["ChangeSetName"] = self.name
        if self.end is not None:
            summary["EndTime"] = iso(self.end)
        if self.failure_code:
            summary["FailureCode"] = self.failure_code
        return summary


def _validation(message: str) -> ApiError:
    return ApiError("ValidationException", message, 422)


def _not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFoundException", message, 404)


def _catalog(value: Any) -> None:
    if value != CATALOG:
        raise _validation(f"Catalog: must be {CATALOG}")


class Catalog:
    """The Catalog API's state and rules; thread-safe (change sets run on their own threads)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        delay_seconds: float = DEFAULT_DELAY_SECONDS,
        check_url: Callable[[str], str | None] = check_url_with_get,
        on_dimensions: Callable[[str, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self._clock = clock
        self.delay_seconds = delay_seconds
        self._check_url = check_url
        self._on_dimensions = on_dimensions
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.entities: dict[str, Entity] = {}
            self.change_sets: dict[str, ChangeSet] = {}
            self._tokens: dict[str, tuple[str, str]] = {}  # token → (request digest, change set id)

    # --- seeding (the admin side) --------------------------------------------------------------------

    def ensure_entity(self, product: Product) -> Entity:
        """One SaaSProduct per product, keyed by its id (`prod-…`); a new one has no URL and no dimensions."""
        with self._lock:
            entity = self.entities.get(product.product_id)
            if entity is None:
                entity = Entity(product.product_id, product.product_code, product.product_code)
                entity.last_modified = self._clock()
                self.entities[entity.entity_id] = entity
            return entity

    def entity_views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"entityId": entity.entity_id, "productCode": entity.product_code, **entity.details()}
                for entity in self.entities.values()
            ]

    # --- the API -------------------------------------------------------------------------------------

    def list_entities(self, request: dict[str, Any]) -> dict[str, Any]:
        _catalog(request.get("Catalog"))
        entity_type = request.get("EntityType")
        if not isinstance(entity_type, str) or not entity_type:
            raise _validation("EntityType: required")
        if entity_type != ENTITY_TYPE:
            return {"EntitySummaryList": []}  # the emulator keeps only SaaS products
        size = request.get("MaxResults", 20)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 50:
            raise _validation("MaxResults: an integer from 1 to 50")
        start = 0
        token = request.get("NextToken")
        if token is not None:
            if not isinstance(token, str) or not token.isdigit():
                raise _validation("NextToken: not a token this API gave")
            start = int(token)
        with self._lock:
            summaries = [entity.summary() for entity in self.entities.values()]
        page = summaries[start : start + size]
        answer: dict[str, Any] = {"EntitySummaryList": page}
        if start + size < len(summaries):
            answer["NextToken"] = str(start + size)
        return answer

    def describe_entity(self, catalog: Any, entity_id: Any) -> dict[str, Any]:
        _catalog(catalog)
        with self._lock:
            entity = self.entities.get(entity_id) if isinstance(entity_id, str) else None
            if entity is None:
                raise _not_found(f"Entity {entity_id} not found")
            details = entity.details()
            return {
                "EntityType": ENTITY_TYPE_VERSION,
                "EntityIdentifier": f"{entity.entity_id}@{entity.revision}",
                "EntityArn": entity.arn,
                "LastModifiedDate": iso(entity.last_modified),
                "Details": json.dumps(details),
                "DetailsDocument": details,
            }

    def start_change_set(self, request: dict[str, Any]) -> dict[str, Any]:
        _catalog(request.get("Catalog"))
        raw = request.get("ChangeSet")
        if not isinstance(raw, list) or not 1 <= len(raw) <= 20:
            raise _validation("ChangeSet: a list of 1 to 20 changes")
        token = request.get("ClientRequestToken")
        if token is not None and (not isinstance(token, str) or not _TOKEN.match(token)):
            raise _validation("ClientRequestToken: 1-64 printable characters")
        name = request.get("ChangeSetName")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 100):
            raise _validation("ChangeSetName: 1-100 characters")
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
        with self._lock:
            if token is not None and token in self._tokens:
                previous_digest, change_set_id = self._tokens[token]
                if previous_digest != digest:
                    raise _validation("ClientRequestToken: already used for another request; use a new token")
                return self._started(self.change_sets[change_set_id])
            changes = [self._change(index, item) for index, item in enumerate(raw)]
            seen: set[tuple[str, str]] = set()
            for change in changes:
                if (change.change_type, change.entity_id) in seen:
                    raise _validation(
                        f"ChangeSet: {change.change_type} targets entity {change.entity_id} more than once"
                    )
                seen.add((change.change_type, change.entity_id))
            for entity_id in {change.entity_id for change in changes}:
                busy = self._running_on(entity_id)
                if busy is not None:
                    raise ApiError(
                        "ResourceInUseException",
                        f"Entity {entity_id} is in use by change set {busy.change_set_id} ({busy.status}); "
                        "start a new change set when it has ended",
                        423,
                    )
            change_set = ChangeSet(_random_id(""), name, changes, self._clock())
            self.change_sets[change_set.change_set_id] = change_set
            if token is not None:
                self._tokens[token] = (digest, change_set.change_set_id)
        threading.Thread(
            target=self._run, args=(change_set,), name=f"change-set-{change_set.change_set_id}", daemon=True
        ).start()
        return self._started(change_set)

    def describe_change_set(self, catalog: Any, change_set_id: Any) -> dict[str, Any]:
        _catalog(catalog)
        with self._lock:
            return self._find(change_set_id).view()

    def list_change_sets(self, request: dict[str, Any]) -> dict[str, Any]:
        _catalog(request.get("Catalog"))
        filters = request.get("FilterList") or []
        if not isinstance(filters, list):
            raise _validation("FilterList: a list of {Name, ValueList}")
        wanted: dict[str, set[str]] = {}
        for item in filters:
            if not isinstance(item, dict) or not isinstance(item.get("ValueList", []), list):
                raise _validation("FilterList: each filter is {Name, ValueList}")
            wanted[str(item.get("Name"))] = {str(value) for value in item.get("ValueList", [])}
        unknown = sorted(set(wanted) - {"EntityId", "Status", "ChangeSetName"})
        if unknown:
            raise _validation(f"FilterList: unknown filter {', '.join(unknown)}")
        with self._lock:
            found = [
                change_set.summary()
                for change_set in sorted(self.change_sets.values(), key=lambda item: -item.start)
                if ("EntityId" not in wanted or wanted["EntityId"] & set(change_set.entity_ids))
                and ("Status" not in wanted or change_set.status in wanted["Status"])
                and ("ChangeSetName" not in wanted or (change_set.name or "") in wanted["ChangeSetName"])
            ]
        return {"ChangeSetSummaryList": found}

    def cancel_change_set(self, catalog: Any, change_set_id: Any) -> dict[str, Any]:
        _catalog(catalog)
        with self._lock:
            change_set = self._find(change_set_id)
            if change_set.status != "PREPARING":
                raise ApiError(
                    "ResourceInUseException",
                    f"Change set {change_set.change_set_id} is {change_set.status}; only a PREPARING change "
                    "set can be cancelled",
                    423,
                )
            change_set.cancel_requested = True
            change_set.status = "CANCELLED"
            change_set.end = self._clock()
            return {"ChangeSetId": change_set.change_set_id, "ChangeSetArn": change_set.arn}

    # --- inside ----------------------------------------------------------------------------------------

    @staticmethod
    def _started(change_set: ChangeSet) -> dict[str, Any]:
        return {"ChangeSetId": change_set.change_set_id, "ChangeSetArn": change_set.arn}

    def _find(self, change_set_id: Any) -> ChangeSet:
        change_set = self.change_sets.get(change_set_id) if isinstance(change_set_id, str) else None
        if change_set is None:
            raise _not_found(f"Change set {change_set_id} not found")
        return change_set

    def _running_on(self, entity_id: str) -> ChangeSet | None:
        return next(
            (
                change_set
                for change_set in self.change_sets.values()
                if change_set.status in RUNNING and entity_id in change_set.entity_ids
            ),
            None,
        )

    def _change(self, index: int, item: Any) -> Change:
        where = f"ChangeSet[{index}]"
        if not isinstance(item, dict):
            raise _validation(f"{where}: a change object")
        change_type = item.get("ChangeType")
        if not isinstance(change_type, str) or not _CHANGE_TYPE.match(change_type):
            raise _validation(f"{where}.ChangeType: required")
        if change_type not in CHANGE_TYPES:
            raise _validation(
                f"{where}.ChangeType: {change_type} is not a SaaSProduct change type the emulator supports "
                f"({', '.join(CHANGE_TYPES)})"
            )
        entity = item.get("Entity")
        if not isinstance(entity, dict):
            raise _validation(f"{where}.Entity: required")
        if entity.get("Type") != ENTITY_TYPE_VERSION:
            raise _validation(f"{where}.Entity.Type: {change_type} applies to {ENTITY_TYPE_VERSION}")
        identifier = entity.get("Identifier")
        if not isinstance(identifier, str) or not _IDENTIFIER.match(identifier):
            raise _validation(f"{where}.Entity.Identifier: required")
        entity_id = identifier.split("@", 1)[0]
        if entity_id not in self.entities:
            raise _not_found(f"Entity {entity_id} not found")
        has_details, has_document = "Details" in item, "DetailsDocument" in item
        if has_details == has_document:
            raise _validation(f"{where}: give exactly one of Details and DetailsDocument")
        if has_details:
            try:
                details = json.loads(item["Details"]) if isinstance(item["Details"], str) else None
            except json.JSONDecodeError:
                details = None
            if details is None:
                raise _validation(f"{where}.Details: a JSON object as a string")
        else:
            details = item["DetailsDocument"]
        name = item.get("ChangeName")
        return Change(change_type, entity_id, details, has_document, name if isinstance(name, str) else None)

    def _run(self, change_set: ChangeSet) -> None:
        time.sleep(self.delay_seconds)
        with self._lock:
            if change_set.status != "PREPARING":
                return  # cancelled
            if any(entity_id not in self.entities for entity_id in change_set.entity_ids):
                return  # the emulator was reset meanwhile: the change set went with its product
            change_set.status = "APPLYING"
            planned = {
                entity_id: copy.deepcopy(self.entities[entity_id]) for entity_id in change_set.entity_ids
            }
        # Validation runs outside the lock: it GETs the fulfillment URL, which may take seconds.
        urls_failed = False
        for change in change_set.changes:
            problems = _apply(change, planned[change.entity_id])
            for url in problems.pop("__urls__", []):
                failure = self._check_url(url)
                if failure is not None:
                    urls_failed = True
                    change.errors.append(
                        {
                            "ErrorCode": "INVALID_FULFILLMENT_URL",
                            "ErrorMessage": f"The fulfillment URL must render with a 200: {failure}",
                        }
                    )
            change.errors += [{"ErrorCode": code, "ErrorMessage": text} for code, text in problems.items()]
        time.sleep(self.delay_seconds)
        with self._lock:
            if self.change_sets.get(change_set.change_set_id) is not change_set:
                return  # reset meanwhile
            failed = [change for change in change_set.changes if change.errors]
            now = self._clock()
            if failed:
                change_set.status = "FAILED"
                change_set.failure_code = "CLIENT_ERROR"
                change_set.failure_description = (
                    "The fulfillment URL did not validate"
                    if urls_failed
                    else f"{len(failed)} change(s) failed validation"
                ) + "; see each change's ErrorDetailList"
            else:
                for entity_id, entity in planned.items():
                    entity.revision += 1
                    entity.last_modified = now
                    self.entities[entity_id] = entity
                    if self._on_dimensions is not None:
                        self._on_dimensions(entity.product_code, entity.dimensions)
                change_set.status = "SUCCEEDED"
            change_set.end = now


def _apply(change: Change, entity: Entity) -> dict[str, Any]:
    """Apply one change to (a copy of) its entity; return its problems by error code (and URLs to GET)."""
    details = change.details
    problems: dict[str, Any] = {}

    def problem(code: str, message: str) -> dict[str, Any]:
        problems[code] = f"{problems[code]}; {message}" if code in problems else message
        return problems

    if change.change_type in ("AddDeliveryOptions", "UpdateDeliveryOptions"):
        options = details.get("DeliveryOptions") if isinstance(details, dict) else None
        if not isinstance(options, list) or len(options) != 1 or not isinstance(options[0], dict):
            return problem("INVALID_INPUT", "DeliveryOptions: one SaaS URL delivery option")
        option = options[0]
        url = (option.get("Details") or {}).get("SaaSUrlDeliveryOptionDetails", {}).get("FulfillmentUrl")
        url_problem = _url_problem(url)
        if url_problem:
            return problem("INVALID_FULFILLMENT_URL", url_problem)
        if change.change_type == "AddDeliveryOptions":
            if entity.delivery_options:
                return problem(
                    "INVALID_INPUT",
                    "the product already has a SaaS URL delivery option "
                    f"({entity.delivery_options[0]['Id']}); change it with UpdateDeliveryOptions",
                )
            entity.delivery_options.append(
                {"Id": _random_id("do-", 13), "Type": "SaaSUrl", "FulfillmentUrl": url}
            )
        else:
            current = next((item for item in entity.delivery_options if item["Id"] == option.get("Id")), None)
            if current is None:
                return problem(
                    "INVALID_INPUT", f"DeliveryOptions[0].Id: no delivery option {option.get('Id')!r}"
                )
            current["FulfillmentUrl"] = url
        problems["__urls__"] = [url]
        return problems
    if change.change_type in ("AddDimensions", "UpdateDimensions"):
        if not isinstance(details, list) or not details:
            return problem("INVALID_INPUT", "Details: a list of dimensions")
        live = {item["Key"]: item for item in entity.dimensions}
        for index, item in enumerate(details):
            where = f"[{index}]"
            if not isinstance(item, dict):
                problem("INVALID_INPUT", f"{where}: a dimension object")
                continue
            key, types = item.get("Key"), item.get("Types")
            if not isinstance(key, str) or not DIMENSION_KEY.match(key):
                problem("INVALID_DIMENSION_KEY", f"{where}.Key: 1-100 characters of letters, digits, _ . -")
                continue
            if (
                not isinstance(types, list)
                or not types
                or any(kind not in DIMENSION_TYPES for kind in types)
                or len(set(types)) != len(types)
            ):
                problem("INVALID_DIMENSION_TYPES", f"{where}.Types: some of {', '.join(DIMENSION_TYPES)}")
                continue
            for text in ("Name", "Description"):
                value = item.get(text)
                if value is not None and (not isinstance(value, str) or not value):
                    problem("INVALID_INPUT", f"{where}.{text}: a non-empty string")
            if change.change_type == "AddDimensions":
                if key in live:
                    problem("DUPLICATE_DIMENSION_KEY", f"{where}.Key: {key!r} is already a dimension")
                    continue
                unit = item.get("Unit")
                if unit not in DIMENSION_UNITS:
                    problem("INVALID_DIMENSION_UNIT", f"{where}.Unit: one of {', '.join(DIMENSION_UNITS)}")
                    continue
                if not isinstance(item.get("Name"), str) or not isinstance(item.get("Description"), str):
                    problem("INVALID_INPUT", f"{where}: Name and Description are required")
                    continue
                live[key] = {
                    "Key": key,
                    "Name": item["Name"],
                    "Description": item["Description"],
                    "Unit": unit,
                    "Types": list(types),
                }
            else:
                current = live.get(key)
                if current is None:
                    problem("DIMENSION_NOT_FOUND", f"{where}.Key: no dimension {key!r} (a Key cannot change)")
                    continue
                if sorted(current["Types"]) != sorted(types):
                    problem(
                        "INVALID_DIMENSION_TYPES",
                        f"{where}.Types: dimension {key!r} is {current['Types']}; a dimension's Types "
                        "cannot change",
                    )
                    continue
                for text in ("Name", "Description"):
                    if isinstance(item.get(text), str):
                        current[text] = item[text]
        if len(live) > MAX_DIMENSIONS:
            problem("TOO_MANY_DIMENSIONS", f"a product has at most {MAX_DIMENSIONS} dimensions")
        if not problems:
            entity.dimensions = list(live.values())
        return problems
    if change.change_type == "UpdateInformation":
        if not isinstance(details, dict) or not details:
            return problem("INVALID_INPUT", "Details: the fields to change")
        for name, value in details.items():
            limit = INFORMATION_LIMITS.get(name)
            if limit is None:
                problem(
                    "INVALID_INPUT",
                    f"{name}: not a field the emulator keeps ({', '.join(INFORMATION_LIMITS)})",
                )
            elif not isinstance(value, str) or not 1 <= len(value) <= limit:
                problem("INVALID_INPUT", f"{name}: 1 to {limit} characters")
        if not problems:
            entity.title = details.get("ProductTitle", entity.title)
            entity.short_description = details.get("ShortDescription", entity.short_description)
            entity.long_description = details.get("LongDescription", entity.long_description)
        return problems
    return problem("INVALID_INPUT", f"{change.change_type}: not supported")


def _url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return "DeliveryOptions[0].Details.SaaSUrlDeliveryOptionDetails.FulfillmentUrl: required"
    if len(url) > MAX_URL_LENGTH:
        return f"FulfillmentUrl: at most {MAX_URL_LENGTH} characters"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return None
    if parsed.scheme == "http" and _loopback(parsed.hostname):
        return None  # local mode's gateways speak http on 127.0.0.1
    return f"FulfillmentUrl: {url!r} must be an https:// URL"


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
