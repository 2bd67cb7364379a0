"""The emulated AWS Marketplace: products, subscriptions, tokens, billed usage, and the rules AWS applies.

Rules (see ../../../shared/MARKETPLACE.md and the API reference pages cited below):
- ResolveCustomer: https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_ResolveCustomer.html
- BatchMeterUsage: https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_BatchMeterUsage.html
- GetEntitlements: https://docs.aws.amazon.com/marketplaceentitlement/latest/APIReference/API_GetEntitlements.html
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_RECORDS_PER_CALL = 25
METERING_WINDOW_SECONDS = 6 * 3600
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
SELLER_ACCOUNT = "111111111111"
MAX_ALLOCATIONS = 500
MAX_TAGS = 5
TAG_PATTERN = re.compile(r"^[a-zA-Z0-9+ -=._:/@]+$")
ENTITLEMENTS_PAGE_SIZE = 25
BILLABLE = ("active", "cancel-pending")
SUBSCRIPTION_STATES = ("pending", "active", "cancel-pending", "cancelled", "failed")
PRICING_MODELS = ("subscription", "contract", "contract-with-consumption")


class ApiError(Exception):
    """An error AWS would return: `code` is the modeled exception name botocore maps to a class."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class AdminError(Exception):
    """Bad input to the admin API (a 4xx with a JSON body)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Product:
    product_code: str
    dimensions: set[str]
    pricing_model: str
    legacy: bool


@dataclass
class Subscription:
    product_code: str
    customer_aws_account_id: str
    license_arn: str
    customer_identifier: str
    status: str
    offer_type: str | None
    entitlements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Token:
    subscription: Subscription
    expires_at: float


@dataclass
class BilledRecord:
    product_code: str
    customer: str  # the identity the record named: account id, or customer identifier for legacy
    identity_type: str  # "CustomerAWSAccountId" or "CustomerIdentifier"
    license_arn: str | None
    dimension: str
    hour: int  # epoch seconds of the usage hour
    quantity: int
    allocations: list[dict[str, Any]]
    metering_record_id: str
    status: str
    timestamp: float

    def view(self) -> dict[str, Any]:
        return {
            "productCode": self.product_code,
            "identityType": self.identity_type,
            "customer": self.customer,
            "licenseArn": self.license_arn,
            "dimension": self.dimension,
            "hour": datetime.fromtimestamp(self.hour, UTC).isoformat(),
            "quantity": self.quantity,
            "allocations": self.allocations,
            "meteringRecordId": self.metering_record_id,
            "status": self.status,
        }


@dataclass
class Faults:
    throttle_calls: set[int] = field(default_factory=set)  # 1-based call numbers to throttle
    throttle_every: int = 0  # throttle every Nth call (0: never)
    unprocessed_share: float = 0.0
    latency_ms: int = 0
    operations: set[str] = field(default_factory=set)  # empty: every operation

    def applies_to(self, operation: str) -> bool:
        return not self.operations or operation in self.operations


class Marketplace:
    """Thread-safe state; every public method takes the lock."""

    def __init__(
        self,
        *,
        token_lifetime_seconds: float = DEFAULT_TOKEN_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.RLock()
        self._base_clock = clock
        self.clock_offset = 0.0
        self.token_lifetime_seconds = token_lifetime_seconds
        self.reset()

    def now(self) -> float:
        return self._base_clock() + self.clock_offset

    def reset(self) -> None:
        with self._lock:
            self.products: dict[str, Product] = {}
            self.subscriptions: dict[tuple[str, str], Subscription] = {}
            self.tokens: dict[str, Token] = {}
            self.billed: dict[tuple[str, str, str, int], BilledRecord] = {}
            self.faults = Faults()
            self.calls = 0
            self.events: list[dict[str, Any]] = []
            self.clock_offset = 0.0

    # --- admin -------------------------------------------------------------------------------------

    def put_product(self, data: dict[str, Any]) -> Product:
        code = _text(data, "productCode")
        dimensions = data.get("dimensions", [])
        if not isinstance(dimensions, list) or not dimensions:
            raise AdminError("dimensions: a non-empty list of dimension names is required")
        names = {item["name"] if isinstance(item, dict) else item for item in dimensions}
        if not all(isinstance(name, str) and 1 <= len(name) <= 255 for name in names):
            raise AdminError("dimensions: each name must be a string of 1-255 characters")
        pricing = data.get("pricingModel", "subscription")
        if pricing not in PRICING_MODELS:
            raise AdminError(f"pricingModel: one of {', '.join(PRICING_MODELS)}")
        product = Product(code, names, pricing, bool(data.get("legacy", False)))
        with self._lock:
            self.products[code] = product
        return product

    def subscribe(self, data: dict[str, Any]) -> tuple[Subscription, str]:
        """Create (or find) the buyer's subscription and mint a new registration token for it."""
        code = _text(data, "productCode")
        account = data.get("customerAWSAccountId") or f"{secrets.randbelow(10**12):012d}"
        if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
            raise AdminError("customerAWSAccountId: 12 digits")
        status = data.get("status", "active")
        if status not in ("active", "pending"):
            raise AdminError("status: active or pending")
        entitlements = data.get("entitlements", [])
        if not isinstance(entitlements, list) or not all(
            isinstance(item, dict) and isinstance(item.get("dimension"), str) for item in entitlements
        ):
            raise AdminError("entitlements: a list of {dimension, value, expirationDate?}")
        with self._lock:
            if code not in self.products:
                raise AdminError(
                    f"productCode: no product {code!r}; create it with POST /_emulator/products", 404
                )
            key = (code, account)
            subscription = self.subscriptions.get(key)
            if subscription is None:
                # A buyer who unsubscribes and subscribes again keeps the same identity.
                subscription = Subscription(
                    product_code=code,
                    customer_aws_account_id=account,
                    license_arn=f"arn:aws:license-manager::{SELLER_ACCOUNT}:license:l-{secrets.token_hex(16)}",
                    customer_identifier=secrets.token_urlsafe(8),
                    status=status,
                    offer_type=data.get("offerType"),
                    entitlements=entitlements,
                )
                self.subscriptions[key] = subscription
            else:
                if subscription.status in ("cancelled", "failed"):
                    subscription.status = status
                if "entitlements" in data:
                    subscription.entitlements = entitlements
                if "offerType" in data:
                    subscription.offer_type = data["offerType"]
            token = secrets.token_urlsafe(48)
            self.tokens[token] = Token(subscription, self.now() + self.token_lifetime_seconds)
            return subscription, token

    def set_status(self, product_code: str, account: str, status: str) -> Subscription:
        with self._lock:
            subscription = self.subscriptions.get((product_code, account))
            if subscription is None:
                raise AdminError(f"no subscription of {account} to {product_code}", 404)
            subscription.status = status
            return subscription

    def set_faults(self, data: dict[str, Any]) -> Faults:
        share = float(data.get("unprocessedShare", 0))
        if not 0 <= share <= 1:
            raise AdminError("unprocessedShare: between 0 and 1")
        faults = Faults(
            throttle_calls={int(n) for n in data.get("throttleCalls", [])},
            throttle_every=int(data.get("throttleEvery", 0)),
            unprocessed_share=share,
            latency_ms=int(data.get("latencyMs", 0)),
            operations=set(data.get("operations", [])),
        )
        with self._lock:
            self.faults = faults
            self.calls = 0
        return faults

    def billed_records(self, product_code: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                record.view()
                for record in self.billed.values()
                if product_code is None or record.product_code == product_code
            ]

    # --- the APIs ----------------------------------------------------------------------------------

    def before_call(self, operation: str) -> float:
        """Count the call, apply injected throttling; returns the latency to add, in seconds."""
        with self._lock:
            faults = self.faults
            if not faults.applies_to(operation):
                return 0.0
            self.calls += 1
            throttled = self.calls in faults.throttle_calls or (
                faults.throttle_every > 0 and self.calls % faults.throttle_every == 0
            )
        if throttled:
            raise ApiError("ThrottlingException", "Rate exceeded (injected by the emulator)")
        return faults.latency_ms / 1000

    def resolve_customer(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request.get("RegistrationToken")
        if not isinstance(token, str) or not token:
            raise ApiError("InvalidTokenException", "RegistrationToken is required")
        with self._lock:
            found = self.tokens.get(token)
            if found is None:
                raise ApiError("InvalidTokenException", "The registration token is invalid")
            if self.now() >= found.expires_at:
                raise ApiError("ExpiredTokenException", "The registration token has expired")
            subscription = found.subscription
            product = self.products[subscription.product_code]
        result = {
            "CustomerAWSAccountId": subscription.customer_aws_account_id,
            "ProductCode": subscription.product_code,
            "LicenseArn": subscription.license_arn,
        }
        if product.legacy:
            # "For new SaaS product integrations, the CustomerIdentifier field is not populated."
            result["CustomerIdentifier"] = subscription.customer_identifier
        return result

    def batch_meter_usage(self, request: dict[str, Any]) -> dict[str, Any]:
        records = request.get("UsageRecords")
        if not isinstance(records, list) or not records:
            raise ApiError("ValidationException", "UsageRecords: at least one record is required")
        if len(records) > MAX_RECORDS_PER_CALL:
            raise ApiError(
                "ValidationException",
                f"UsageRecords: at most {MAX_RECORDS_PER_CALL} records per call, got {len(records)}",
            )
        with self._lock:
            now = self.now()
            resolved = [self._identify(record, request.get("ProductCode")) for record in records]
            products = {product.product_code for product, _ in resolved}
            if len(products) > 1:
                raise ApiError("ValidationException", "All usage records of one call must be for one product")
            for record in records:
                self._check_timestamp(record, now)
            product = resolved[0][0]
            for record in records:
                _check_record(record, product)
            share = self.faults.unprocessed_share if self.faults.applies_to("BatchMeterUsage") else 0.0
            unprocessed_count = math.floor(share * len(records))
            processed = records[: len(records) - unprocessed_count]
            results = [
                self._bill(record, product, subscription, now)
                for record, (_, subscription) in zip(processed, resolved, strict=False)
            ]
            return {"Results": results, "UnprocessedRecords": records[len(processed) :]}

    def _identify(self, record: dict[str, Any], product_code: Any) -> tuple[Product, Subscription | None]:
        has_account = "CustomerAWSAccountId" in record
        has_identifier = "CustomerIdentifier" in record
        if has_account == has_identifier:
            raise ApiError(
                "ValidationException",
                "Each usage record names its customer by exactly one of CustomerAWSAccountId and "
                "CustomerIdentifier",
            )
        if has_identifier:
            if "LicenseArn" in record:
                raise ApiError(
                    "ValidationException",
                    "CustomerIdentifier records identify the product by ProductCode, not LicenseArn",
                )
            if not isinstance(product_code, str):
                raise ApiError("ValidationException", "ProductCode is required with CustomerIdentifier")
            product = self._product(product_code)
            subscription = next(
                (
                    s
                    for s in self.subscriptions.values()
                    if s.product_code == product_code
                    and s.customer_identifier == record["CustomerIdentifier"]
                ),
                None,
            )
            if subscription is None:
                raise ApiError("InvalidCustomerIdentifierException", "Unknown CustomerIdentifier")
            return product, subscription
        license_arn = record.get("LicenseArn")
        if product_code is not None:
            raise ApiError(
                "ValidationException",
                "ProductCode must not be given when records identify the buyer by LicenseArn",
            )
        if not isinstance(license_arn, str):
            raise ApiError("ValidationException", "LicenseArn is required with CustomerAWSAccountId")
        subscription = next((s for s in self.subscriptions.values() if s.license_arn == license_arn), None)
        if subscription is None:
            raise ApiError("InvalidLicenseException", "The LicenseArn does not belong to a subscription")
        if subscription.customer_aws_account_id != record["CustomerAWSAccountId"]:
            raise ApiError(
                "InvalidLicenseException", "The LicenseArn does not belong to this CustomerAWSAccountId"
            )
        return self._product(subscription.product_code), subscription

    def _product(self, product_code: str) -> Product:
        product = self.products.get(product_code)
        if product is None:
            raise ApiError("InvalidProductCodeException", f"Unknown product code {product_code}")
        return product

    @staticmethod
    def _check_timestamp(record: dict[str, Any], now: float) -> None:
        timestamp = _timestamp(record.get("Timestamp"))
        if timestamp > now or now - timestamp > METERING_WINDOW_SECONDS:
            raise ApiError(
                "TimestampOutOfBoundsException",
                "Timestamp must be in the past and no more than 6 hours old",
            )

    def _bill(
        self, record: dict[str, Any], product: Product, subscription: Subscription | None, now: float
    ) -> dict[str, Any]:
        timestamp = _timestamp(record["Timestamp"])
        hour = int(timestamp // 3600 * 3600)
        if subscription is None or subscription.status not in BILLABLE:
            return {"UsageRecord": record, "Status": "CustomerNotSubscribed"}
        identity_type = "CustomerAWSAccountId" if "CustomerAWSAccountId" in record else "CustomerIdentifier"
        customer = record[identity_type]
        key = (product.product_code, customer, record["Dimension"], hour)
        quantity = int(record.get("Quantity", 0))
        allocations = record.get("UsageAllocations", [])
        existing = self.billed.get(key)
        if existing is not None:
            if existing.quantity == quantity and existing.allocations == allocations:
                # An identical request is idempotent: same result, billed once.
                return {
                    "UsageRecord": record,
                    "MeteringRecordId": existing.metering_record_id,
                    "Status": "Success",
                }
            return {"UsageRecord": record, "Status": "DuplicateRecord"}
        billed = BilledRecord(
            product_code=product.product_code,
            customer=customer,
            identity_type=identity_type,
            license_arn=record.get("LicenseArn"),
            dimension=record["Dimension"],
            hour=hour,
            quantity=quantity,
            allocations=allocations,
            metering_record_id=str(uuid.uuid4()),
            status="Success",
            timestamp=timestamp,
        )
        self.billed[key] = billed
        return {"UsageRecord": record, "MeteringRecordId": billed.metering_record_id, "Status": "Success"}

    def get_entitlements(self, request: dict[str, Any]) -> dict[str, Any]:
        code = request.get("ProductCode")
        if not isinstance(code, str):
            raise ApiError("InvalidParameterException", "ProductCode is required")
        filters = request.get("Filter") or {}
        unknown = set(filters) - {"CUSTOMER_AWS_ACCOUNT_ID", "CUSTOMER_IDENTIFIER", "DIMENSION"}
        if unknown:
            raise ApiError("InvalidParameterException", f"Unknown filter {sorted(unknown)[0]}")
        max_results = int(request.get("MaxResults") or ENTITLEMENTS_PAGE_SIZE)
        if not 1 <= max_results <= 25:
            raise ApiError("InvalidParameterException", "MaxResults must be between 1 and 25")
        start = 0
        if request.get("NextToken"):
            try:
                start = int(str(request["NextToken"]).removeprefix("page-"))
            except ValueError:
                raise ApiError("InvalidParameterException", "NextToken is not valid") from None
        with self._lock:
            self._product(code)
            found = []
            for subscription in self.subscriptions.values():
                if subscription.product_code != code or subscription.status not in BILLABLE:
                    continue
                if (
                    "CUSTOMER_AWS_ACCOUNT_ID" in filters
                    and subscription.customer_aws_account_id not in filters["CUSTOMER_AWS_ACCOUNT_ID"]
                ):
                    continue
                if (
                    "CUSTOMER_IDENTIFIER" in filters
                    and subscription.customer_identifier not in filters["CUSTOMER_IDENTIFIER"]
                ):
                    continue
                for item in subscription.entitlements:
                    if "DIMENSION" in filters and item["dimension"] not in filters["DIMENSION"]:
                        continue
                    found.append(_entitlement(subscription, item))
        page = found[start : start + max_results]
        result: dict[str, Any] = {"Entitlements": page}
        if start + max_results < len(found):
            result["NextToken"] = f"page-{start + max_results}"
        return result


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(f"{name}: a non-empty string is required")
    return value


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    raise ApiError("ValidationException", "Timestamp is required")


def _check_record(record: dict[str, Any], product: Product) -> None:
    dimension = record.get("Dimension")
    if dimension not in product.dimensions:
        raise ApiError(
            "InvalidUsageDimensionException", f"Dimension {dimension!r} is not defined for the product"
        )
    quantity = record.get("Quantity", 0)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity <= 2147483647:
        raise ApiError("ValidationException", "Quantity must be an integer from 0 to 2147483647")
    allocations = record.get("UsageAllocations")
    if allocations is None:
        return
    if not isinstance(allocations, list) or not 1 <= len(allocations) <= MAX_ALLOCATIONS:
        raise ApiError(
            "InvalidUsageAllocationsException", f"UsageAllocations must have 1-{MAX_ALLOCATIONS} items"
        )
    total = 0
    for allocation in allocations:
        tags = allocation.get("Tags", [])
        if not isinstance(tags, list) or not 1 <= len(tags) <= MAX_TAGS:
            raise ApiError("InvalidTagException", f"Each usage allocation needs 1-{MAX_TAGS} tags")
        for tag in tags:
            key, value = tag.get("Key", ""), tag.get("Value", "")
            if not (1 <= len(key) <= 100 and TAG_PATTERN.match(key)):
                raise ApiError("InvalidTagException", f"Tag key {key!r} is not valid")
            if not (1 <= len(value) <= 256 and TAG_PATTERN.match(value)):
                raise ApiError("InvalidTagException", f"Tag value {value!r} is not valid")
        total += int(allocation.get("AllocatedUsageQuantity", 0))
    if total != quantity:
        raise ApiError(
            "InvalidUsageAllocationsException",
            f"Allocated quantities sum to {total}, not to the record's quantity {quantity}",
        )


def _entitlement(subscription: Subscription, item: dict[str, Any]) -> dict[str, Any]:
    value = item.get("value")
    typed: dict[str, Any]
    if isinstance(value, bool):
        typed = {"BooleanValue": value}
    elif isinstance(value, int):
        typed = {"IntegerValue": value}
    elif isinstance(value, float):
        typed = {"DoubleValue": value}
    else:
        typed = {"StringValue": str(value)}
    entitlement: dict[str, Any] = {
        "ProductCode": subscription.product_code,
        "Dimension": item["dimension"],
        "CustomerAWSAccountId": subscription.customer_aws_account_id,
        "CustomerIdentifier": subscription.customer_identifier,
        "LicenseArn": subscription.license_arn,
        "Value": typed,
    }
    if item.get("expirationDate"):
        entitlement["ExpirationDate"] = datetime.fromisoformat(str(item["expirationDate"]))
    return entitlement
