"""The HTTP side of the emulator: AWS wire protocols for the APIs, JSON for the admin API.

- Metering (`AWSMPMeteringService.*`): AWS JSON 1.1, `POST /` routed by `X-Amz-Target`.
- Entitlement (`AWSMPEntitlementService.GetEntitlements`): both protocols its model offers,
  smithy-rpc-v2-cbor (`POST /service/AWSMPEntitlementService/operation/GetEntitlements`, the model's first)
  and AWS JSON 1.1, which botocore 1.44 picks (json comes first in botocore's own protocol priority).
- Agreement (`AWSMPCommerceService_v20200301.*`: SearchAgreements, DescribeAgreement,
  GetAgreementEntitlements): both protocols its model offers, smithy-rpc-v2-cbor
  (`POST /service/AWSMPCommerceService_v20200301/operation/<Operation>`) and AWS JSON 1.0 (`POST /` with
  `X-Amz-Target`), which boto3 picks; rules: agreements.py.
- Catalog (`marketplace-catalog`): REST-JSON on its own paths (`POST /StartChangeSet`,
  `GET /DescribeEntity?…`, `PATCH /CancelChangeSet?…`), errors as the `x-amzn-ErrorType` header with
  `{"Message": …}` and the model's HTTP status (422 validation, 404 not found, 423 in use); rules:
  catalog.py.
- Admin: `/_emulator/...`, documented in local/README.md.

Every request is read against its shape (shapes.py) before the rules run: a body that cannot be read gets
`SerializationException`, a value outside its constraints a modeled error or `ValidationException`, and an
unexpected failure `InternalServiceErrorException` (500), so a caller always gets an answer AWS could give.
`EmulatorServer(record_calls=True)` keeps every API call (request and answer, as bytes) in `calls`, for
tests that check the emulator against botocore's service model.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import cbor2

from local.http_server import BodyRefused, LocalHTTPServer, LocalRequestHandler, request_path, split_target
from local.marketplace_emulator import agreements, shapes
from local.marketplace_emulator.catalog import DEFAULT_DELAY_SECONDS, Catalog, check_url_with_get
from local.marketplace_emulator.notifications import Notifier, iso_ms, render
from local.marketplace_emulator.state import (
    DEFAULT_ENDED_TO_DEPROVISIONED_SECONDS,
    LIFECYCLE_EVENTS,
    MAX_ENDED_TO_DEPROVISIONED_SECONDS,
    AdminError,
    ApiError,
    Marketplace,
    Notice,
    Subscription,
)

JSON_10 = "application/x-amz-json-1.0"
JSON_11 = "application/x-amz-json-1.1"
CBOR = "application/cbor"
MAX_BODY_BYTES = 1024 * 1024  # BatchMeterUsage's documented request limit
OPERATIONS: dict[str, tuple[Callable[[Marketplace, dict[str, Any]], dict[str, Any]], shapes.Shape]] = {
    "AWSMPMeteringService.ResolveCustomer": (Marketplace.resolve_customer, shapes.RESOLVE_CUSTOMER_REQUEST),
    "AWSMPMeteringService.BatchMeterUsage": (Marketplace.batch_meter_usage, shapes.BATCH_METER_USAGE_REQUEST),
    "AWSMPEntitlementService.GetEntitlements": (
        Marketplace.get_entitlements,
        shapes.GET_ENTITLEMENTS_REQUEST,
    ),
    "AWSMPCommerceService_v20200301.SearchAgreements": (
        agreements.search_agreements,
        shapes.SEARCH_AGREEMENTS_REQUEST,
    ),
    "AWSMPCommerceService_v20200301.DescribeAgreement": (
        agreements.describe_agreement,
        shapes.DESCRIBE_AGREEMENT_REQUEST,
    ),
    "AWSMPCommerceService_v20200301.GetAgreementEntitlements": (
        agreements.get_agreement_entitlements,
        shapes.GET_AGREEMENT_ENTITLEMENTS_REQUEST,
    ),
}


@dataclass(frozen=True)
class Service:
    """What differs between the services on the wire: their AWS JSON version, the Smithy namespace of their
    modeled errors (rpc-v2-cbor's `__type`), the errors their models declare for a throttle and a fault."""

    json_content_type: str
    namespace: str
    internal_error: str
    throttling_status: int
    unmodeled: frozenset[str]  # generic errors not in the model: sent without a namespace


SERVICES = {
    "AWSMPMeteringService": Service(
        JSON_11,
        "com.amazonaws.marketplacemetering",
        "InternalServiceErrorException",
        400,
        frozenset({shapes.SERIALIZATION, "ValidationException"}),
    ),
    "AWSMPEntitlementService": Service(
        JSON_11,
        "com.amazonaws.marketplaceentitlementservice",
        "InternalServiceErrorException",
        400,
        frozenset({shapes.SERIALIZATION, "ValidationException"}),
    ),
    "AWSMPCommerceService_v20200301": Service(
        JSON_10,
        "com.amazonaws.marketplaceagreement",
        "InternalServerException",
        429,  # ThrottlingException is modeled with HTTP 429 here
        frozenset({shapes.SERIALIZATION}),
    ),
}


def service_of(target: str) -> Service:
    """The service a target (`Prefix.Operation`) belongs to; an unknown one is answered like metering."""
    return SERVICES.get(target.split(".", 1)[0], SERVICES["AWSMPMeteringService"])


UNSUPPORTED = {"AWSMPMeteringService.MeterUsage", "AWSMPMeteringService.RegisterUsage"}
# The Catalog API's REST routes: (method, path) → operation, and whether its input is in the query string.
CATALOG_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/ListEntities"): "ListEntities",
    ("GET", "/DescribeEntity"): "DescribeEntity",
    ("POST", "/StartChangeSet"): "StartChangeSet",
    ("GET", "/DescribeChangeSet"): "DescribeChangeSet",
    ("POST", "/ListChangeSets"): "ListChangeSets",
    ("PATCH", "/CancelChangeSet"): "CancelChangeSet",
}
CATALOG_PATHS = {path for _, path in CATALOG_ROUTES}
EVENT_FIELDS = (
    "productCode",
    "customerAWSAccountId",
    "licenseArn",
    "type",
    "endedToDeprovisionedSeconds",
    "deliver",
)


def _to_cbor_value(value: Any) -> Any:
    """Timestamps travel as CBOR tag 1 (epoch seconds), as smithy-rpc-v2-cbor requires."""
    if isinstance(value, datetime):
        return cbor2.CBORTag(1, value.timestamp())
    if isinstance(value, dict):
        return {key: _to_cbor_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_cbor_value(item) for item in value]
    return value


def _to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {key: _to_json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json_value(item) for item in value]
    return value


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


@dataclass(frozen=True)
class RecordedCall:
    """One API call as it went over the wire (kept when the server records calls)."""

    protocol: str  # "json" (AWS JSON 1.1) or "smithy-rpc-v2-cbor"
    target: str  # e.g. "AWSMPMeteringService.BatchMeterUsage"
    request_body: bytes
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def operation(self) -> str:
        return self.target.rsplit(".", 1)[-1]


class EmulatorServer:
    """The emulator on 127.0.0.1 in a background thread; `with EmulatorServer() as emulator: emulator.url`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        marketplace: Marketplace | None = None,
        notifier: Notifier | None = None,
        record_calls: bool = False,
        ended_to_deprovisioned_seconds: float = DEFAULT_ENDED_TO_DEPROVISIONED_SECONDS,
        catalog_delay_seconds: float = DEFAULT_DELAY_SECONDS,
        check_url: Callable[[str], str | None] = check_url_with_get,
        after_change: Callable[[], None] | None = None,
    ) -> None:
        self.marketplace = marketplace or Marketplace()
        # Called before a call that may have changed the state is answered (local mode saves it then).
        self.after_change = after_change
        # One SaaSProduct entity per product, those already put (a seeded marketplace) and those to come.
        self.catalog = Catalog(
            self.marketplace.now,
            delay_seconds=_catalog_delay(catalog_delay_seconds),
            check_url=check_url,
            on_dimensions=self._catalog_dimensions,
        )
        for product in list(self.marketplace.products.values()):
            self.catalog.ensure_entity(product)
        self.catalog_calls: list[RecordedCall] = []
        self.notifier = notifier or Notifier()
        self.record_calls = record_calls
        self.ended_to_deprovisioned_seconds = _gap(ended_to_deprovisioned_seconds)
        self.calls: list[RecordedCall] = []
        self._calls_lock = threading.Lock()
        self._events_lock = threading.Lock()
        self._timers = _Timers(self.marketplace.now)
        self._server = LocalHTTPServer((host, port), _handler_class(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self.serve_forever, name="marketplace-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._timers.cancel_all()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def record(self, call: RecordedCall) -> None:
        if self.record_calls:
            with self._calls_lock:
                (self.catalog_calls if call.protocol == "rest-json" else self.calls).append(call)

    def _catalog_dimensions(self, product_code: str, dimensions: list[dict[str, Any]]) -> None:
        """A dimension the Catalog added can be metered at once (it is the product's, as on AWS)."""
        product = self.marketplace.products.get(product_code)
        if product is None:
            return
        declared = {**product.dimensions}
        for item in dimensions:
            declared.setdefault(item["Key"], tuple(item["Types"]))
        self.marketplace.products[product_code] = replace(product, dimensions=declared)

    # --- the admin API -----------------------------------------------------------------------------

    def admin(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, Any]:
        marketplace = self.marketplace
        route = (method, path)
        if route == ("GET", "/_emulator/health"):
            return 200, {"status": "ok"}
        if route == ("POST", "/_emulator/products"):
            product = marketplace.put_product(body)
            self.catalog.ensure_entity(product)
            return 201, product.view()
        if route == ("GET", "/_emulator/catalog"):
            return 200, {
                "delaySeconds": self.catalog.delay_seconds,
                "entities": self.catalog.entity_views(),
                # Newest first, as ListChangeSets answers: the console shows each product's last one.
                "changeSets": self.catalog.list_change_sets({"Catalog": "AWSMarketplace"})[
                    "ChangeSetSummaryList"
                ],
            }
        if route == ("POST", "/_emulator/catalog"):
            unknown = sorted(set(body) - {"delaySeconds"})
            if unknown or "delaySeconds" not in body:
                raise AdminError("POST /_emulator/catalog takes delaySeconds (seconds per change set step)")
            self.catalog.delay_seconds = _catalog_delay(body["delaySeconds"])
            return 200, {"delaySeconds": self.catalog.delay_seconds}
        if route == ("POST", "/_emulator/subscriptions"):
            deliver = _deliver_flag(body)
            subscription, token = marketplace.subscribe(body)
            announced = None
            if subscription.status == "active":
                # Marketplace tells the seller as the buyer is sent to the fulfillment URL (for a license
                # whose agreement ended, about the new agreement).
                notices = marketplace.lifecycle_event(subscription, "subscribe-success")
                announced = self._announce("subscribe-success", subscription, notices, deliver=deliver)
            answer: dict[str, Any] = {
                "token": token,
                "customerAWSAccountId": subscription.customer_aws_account_id,
                "licenseArn": subscription.license_arn,
                "agreementId": subscription.agreement_id,
                "productCode": subscription.product_code,
                "status": subscription.status,
            }
            if marketplace.products[subscription.product_code].legacy:
                answer["customerIdentifier"] = subscription.customer_identifier
            if announced is not None:
                answer["deliveries"] = announced["deliveries"]
                if not deliver:
                    answer["withheld"] = _withheld(announced)
            return 201, answer
        if route == ("GET", "/_emulator/subscriptions"):
            code = _first(query, "productCode")
            # One entry per license: an account with concurrent agreements appears once for each.
            return 200, {
                "subscriptions": [
                    s.view()
                    for s in list(marketplace.subscriptions)
                    if code is None or s.product_code == code
                ]
            }
        if route == ("POST", "/_emulator/events"):
            return self._event(body)
        if route == ("GET", "/_emulator/events"):
            with self._events_lock:
                return 200, {"events": copy.deepcopy(marketplace.events)}
        if route == ("GET", "/_emulator/metering"):
            code = _first(query, "productCode")
            return 200, {"records": marketplace.billed_records(code)}
        if route == ("POST", "/_emulator/faults"):
            faults = marketplace.set_faults(body)
            return 200, {
                "throttleCalls": sorted(faults.throttle_calls),
                "throttleEvery": faults.throttle_every,
                "unprocessedShare": faults.unprocessed_share,
                "latencyMs": faults.latency_ms,
                "operations": sorted(faults.operations),
            }
        if route == ("POST", "/_emulator/clock"):
            now = self._set_clock(body)
            self._timers.clock_changed()  # a notification whose time the clock passed is delivered now
            return 200, {"now": now}
        if route == ("POST", "/_emulator/reset"):
            self._timers.cancel_all()  # a notification still to come belongs to what is forgotten
            with self._events_lock:
                marketplace.reset()
            self.catalog.reset()
            return 200, {"status": "reset"}
        raise AdminError(f"no admin route {method} {path}", 404)

    def _set_clock(self, body: dict[str, Any]) -> str:
        """Shift the clock by `offsetSeconds`, or set it to `now` (ISO 8601, with an offset); it runs on."""
        marketplace = self.marketplace
        offset, now = body.get("offsetSeconds"), body.get("now")
        if (offset is None) == (now is None):
            raise AdminError("clock: give offsetSeconds (a number) or now (an ISO 8601 time), not both")
        if now is not None:
            try:
                moment = datetime.fromisoformat(str(now))
            except ValueError:
                raise AdminError(f"now: {now!r} is not an ISO 8601 time") from None
            if moment.tzinfo is None:
                raise AdminError("now: give a UTC offset, e.g. 2026-11-01T05:59:00+00:00")
            offset = moment.timestamp() - marketplace.now()
        if not isinstance(offset, int | float) or isinstance(offset, bool):
            raise AdminError("offsetSeconds: a number of seconds to shift the emulator's clock by")
        marketplace.clock_offset += float(offset)
        return datetime.fromtimestamp(marketplace.now(), UTC).isoformat()

    def _event(self, body: dict[str, Any]) -> tuple[int, Any]:
        unknown = sorted(set(body) - set(EVENT_FIELDS))
        if unknown:
            raise AdminError(
                f"unknown field {', '.join(map(repr, unknown))}: POST /_emulator/events takes "
                + ", ".join(EVENT_FIELDS)
            )
        kind = body.get("type")
        if kind not in LIFECYCLE_EVENTS:
            raise AdminError(f"type: one of {', '.join(LIFECYCLE_EVENTS)}")
        code, account, license_arn = (
            body.get("productCode"),
            body.get("customerAWSAccountId"),
            body.get("licenseArn"),
        )
        if not isinstance(code, str) or not (isinstance(account, str) or isinstance(license_arn, str)):
            raise AdminError("productCode and customerAWSAccountId (or licenseArn) are required")
        if account is not None and not isinstance(account, str):
            raise AdminError("customerAWSAccountId: a string")
        if license_arn is not None and not isinstance(license_arn, str):
            raise AdminError("licenseArn: a string")
        gap = _gap(body.get("endedToDeprovisionedSeconds", self.ended_to_deprovisioned_seconds))
        deliver = _deliver_flag(body)
        # Without licenseArn the account's only license; several → 409 naming them.
        subscription = self.marketplace.find_subscription(code, account, license_arn)
        notices = self.marketplace.lifecycle_event(subscription, kind, gap)
        entry = self._announce(kind, subscription, notices, deliver=deliver)
        answer: dict[str, Any] = {
            "status": subscription.status,
            "licenseArn": subscription.license_arn,
            "agreementId": subscription.agreement_id,
            "deliveries": entry["deliveries"],
            "notifications": entry["notifications"],
        }
        if not deliver:
            answer["withheld"] = _withheld(entry)
        return 200, answer

    def _announce(
        self, kind: str, subscription: Subscription, notices: list[Notice], *, deliver: bool = True
    ) -> dict[str, Any]:
        """Log the event and send its notifications: now, or (License Deprovisioned after the gap) later.

        A deferred notification is delivered by a timer thread when the emulator's clock reaches its time
        (or when POST /_emulator/clock passes it), so the answer never waits for it; until then the log shows
        it `scheduled`. With a gap of 0 nothing is deferred. Returns a copy of the log entry once the others
        are delivered. `deliver=False` loses them on purpose: logged `withheld`, sent nowhere, never later.
        """
        product = self.marketplace.products[subscription.product_code]
        entry: dict[str, Any] = {
            "type": kind,
            "productCode": subscription.product_code,
            "customerAWSAccountId": subscription.customer_aws_account_id,
            "licenseArn": subscription.license_arn,
            "agreementId": subscription.agreement_id,
            "time": iso_ms(int(self.marketplace.now() * 1000)),
            "notifications": [],
            "deliveries": [],
        }
        with self._events_lock:
            self.marketplace.events.append(entry)
        for notice in notices:
            sent = render(notice, product)
            record = {
                "channel": notice.channel,
                "name": notice.name,
                "time": iso_ms(notice.at_ms),
                "state": "scheduled",
                "deliveries": [],
                **{key: value for key, value in sent.items() if key != "channel"},
            }
            if not deliver:
                record["state"] = "withheld"
            with self._events_lock:
                entry["notifications"].append(record)
            if not deliver:
                continue
            send = functools.partial(self._deliver, entry, record, sent)
            if notice.deferred:
                self._timers.at(notice.at_ms / 1000, send)
            else:
                send()
        with self._events_lock:
            return copy.deepcopy(entry)

    def _deliver(self, entry: dict[str, Any], record: dict[str, Any], sent: dict[str, Any]) -> None:
        deliveries = self.notifier.deliver(sent)
        with self._events_lock:
            record["deliveries"] = deliveries
            record["state"] = "delivered"
            entry["deliveries"] = entry["deliveries"] + deliveries


class _Timers:
    """Deliveries that wait for their time (the emulator's clock), each on a daemon timer thread.

    Setting the clock delivers those whose time has come (and re-times the others); reset and stop cancel
    them all.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[threading.Timer, tuple[float, Callable[[], None]]] = {}

    def at(self, moment: float, action: Callable[[], None]) -> None:
        """Run `action` when the clock reaches `moment` (epoch seconds); at once if it has."""
        delay = moment - self._clock()
        if delay <= 0:
            action()
            return

        def run() -> None:
            with self._lock:
                if self._pending.pop(timer, None) is None:
                    return  # cancelled (or re-timed) meanwhile
            action()

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self._lock:
            self._pending[timer] = (moment, action)
        timer.start()

    def clock_changed(self) -> None:
        for moment, action in self._take_all():
            self.at(moment, action)

    def cancel_all(self) -> None:
        self._take_all()

    def _take_all(self) -> list[tuple[float, Callable[[], None]]]:
        with self._lock:
            pending, self._pending = self._pending, {}
        for timer in pending:
            timer.cancel()
        return sorted(pending.values(), key=lambda item: item[0])


def _deliver_flag(body: dict[str, Any]) -> bool:
    """`deliver` of an admin request: false loses the notifications on purpose (the change still happens)."""
    deliver = body.get("deliver", True)
    if not isinstance(deliver, bool):
        raise AdminError("deliver: true (send the notifications, the default) or false (withhold them)")
    return deliver


def _withheld(entry: dict[str, Any]) -> list[dict[str, str]]:
    """The notifications an event did not deliver, in order: {channel, name, time}."""
    return [
        {"channel": n["channel"], "name": n["name"], "time": n["time"]}
        for n in entry["notifications"]
        if n["state"] == "withheld"
    ]


def _gap(value: Any) -> float:
    """`endedToDeprovisionedSeconds`: seconds from Purchase Agreement Ended to License Deprovisioned."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdminError(
            "endedToDeprovisionedSeconds: a number of seconds from Purchase Agreement Ended to License "
            "Deprovisioned"
        )
    if not 0 <= value <= MAX_ENDED_TO_DEPROVISIONED_SECONDS:
        raise AdminError(
            f"endedToDeprovisionedSeconds: between 0 and {MAX_ENDED_TO_DEPROVISIONED_SECONDS:g} (AWS sends "
            "License Deprovisioned seconds to minutes after Purchase Agreement Ended)"
        )
    return float(value)


MAX_CATALOG_DELAY_SECONDS = 3600.0


def _catalog_delay(value: Any) -> float:
    """Seconds each change-set step (PREPARING, APPLYING) takes in the emulator."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdminError("delaySeconds: a number of seconds each change set step takes")
    if not 0 <= value <= MAX_CATALOG_DELAY_SECONDS:
        raise AdminError(f"delaySeconds: between 0 and {MAX_CATALOG_DELAY_SECONDS:g}")
    return float(value)


def _handler_class(emulator: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(LocalRequestHandler):
        server_version = "marketplace-emulator"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests carry tokens; the emulator keeps no access log

        def _read(self) -> bytes | None:
            """The body, or None when it was refused (the connection then closes: its bytes are unread)."""
            try:
                return self.read_body(MAX_BODY_BYTES)
            except BodyRefused as refused:
                message = "Request too large" if refused.status == 413 else refused.message
                self._send(refused.status, "application/json", json.dumps({"message": message}).encode())
                return None

        def _send(
            self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
        ) -> None:
            if self.command != "GET" and emulator.after_change is not None:
                emulator.after_change()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", str(time.time_ns()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if request_path(self.path) in CATALOG_PATHS:
                self._rest_json()
            else:
                self._admin()

        def do_PATCH(self) -> None:
            self._rest_json()

        def do_POST(self) -> None:
            path = request_path(self.path)
            if path in CATALOG_PATHS:
                self._rest_json()
            elif path.startswith("/_emulator/"):
                self._admin()
            elif path.startswith("/service/"):
                self._cbor(path)
            else:
                self._json_11()

        def _admin(self) -> None:
            url = split_target(self.path)
            raw = self._read() if self.command == "POST" else b""
            if raw is None:
                return
            try:
                try:
                    body = json.loads((raw or b"{}").decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    raise AdminError(f"the body is not JSON: {error}") from None
                if not isinstance(body, dict):
                    raise AdminError("the body must be a JSON object")
                status, answer = emulator.admin(self.command, url.path, parse_qs(url.query), body)
            except AdminError as error:
                status, answer = error.status, {"error": "invalid_request", "message": error.message}
            except (TypeError, ValueError) as error:  # e.g. a string where the admin API wants a number
                status, answer = (
                    400,
                    {"error": "invalid_request", "message": f"{type(error).__name__}: {error}"},
                )
            self._send(status, "application/json", json.dumps(answer, default=str).encode())

        def _call(self, target: str, raw: bytes, decode: Callable[[bytes], Any]) -> dict[str, Any]:
            """Authenticate, route, read the body against the operation's shape, then run it."""
            if "Authorization" not in self.headers:
                raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
            if target in UNSUPPORTED:
                raise ApiError(
                    "UnsupportedOperation", f"{target} is not for SaaS products and is not emulated"
                )
            found = OPERATIONS.get(target)
            if found is None:
                raise ApiError("UnknownOperationException", f"Unknown operation {target}")
            operation, shape = found
            request = shapes.read(shape, decode(raw))
            try:
                latency = emulator.marketplace.before_call(target.split(".", 1)[1])
            except ApiError as error:
                if error.code == "ThrottlingException":
                    error.status = service_of(target).throttling_status
                raise
            if latency:
                time.sleep(latency)
            return operation(emulator.marketplace, request)

        def _json_11(self) -> None:
            """AWS JSON 1.1 (metering, entitlement) or 1.0 (agreement): `POST /`, the target in a header."""
            raw = self._read()
            if raw is None:
                return
            target = self.headers.get("X-Amz-Target", "")
            service = service_of(target)
            headers: dict[str, str] = {}
            try:
                result = self._call(target, raw, _decode_json)
                status, body, headers = 200, json.dumps(_to_json_value(result)).encode(), {}
            except ApiError as error:
                status, body, headers = _json_error(error)
            except Exception as error:  # a bug in the emulator: still an answer AWS could give
                status, body, headers = _json_error(_internal(error, service))
            content_type = service.json_content_type
            # Recorded before it is sent, so a caller that got the answer finds the call recorded.
            emulator.record(
                RecordedCall("json", target, raw, status, {"Content-Type": content_type, **headers}, body)
            )
            self._send(status, content_type, body, headers)

        def _rest_json(self) -> None:
            """The Catalog API: REST-JSON, the operation named by method and path."""
            raw = self._read()
            if raw is None:
                return
            url = split_target(self.path)
            operation = CATALOG_ROUTES.get((self.command, url.path))
            headers: dict[str, str] = {}
            try:
                if "Authorization" not in self.headers:
                    raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
                if operation is None:
                    raise ApiError(
                        "UnknownOperationException", f"Unknown operation {self.command} {url.path}", 404
                    )
                query = {name: values[0] for name, values in parse_qs(url.query).items()}
                result = _catalog_call(emulator.catalog, operation, query, raw)
                status, body = 200, json.dumps(result).encode()
            except ApiError as error:
                status, body, headers = _rest_json_error(error)
            except Exception as error:  # a bug in the emulator: still an answer AWS could give
                status, body, headers = _rest_json_error(
                    ApiError("InternalServiceException", _internal(error).message, 500)
                )
            emulator.record(
                RecordedCall(
                    "rest-json",
                    f"MarketplaceCatalog.{operation or url.path}",
                    raw if self.command != "GET" else url.query.encode(),
                    status,
                    {"Content-Type": "application/json", **headers},
                    body,
                )
            )
            self._send(status, "application/json", body, headers)

        def _cbor(self, path: str) -> None:
            raw = self._read()
            if raw is None:
                return
            parts = path.strip("/").split("/")
            headers = {"Smithy-Protocol": "rpc-v2-cbor"}
            target = f"{parts[1]}.{parts[3]}" if len(parts) == 4 else path
            try:
                if len(parts) != 4 or parts[0] != "service" or parts[2] != "operation":
                    raise ApiError("UnknownOperationException", f"Unknown path {path}", 404)
                result = self._call(target, raw, _decode_cbor)
                status, body = 200, cbor2.dumps(_to_cbor_value(result))
            except ApiError as error:
                status, body = _cbor_error(error, service_of(target))
            except Exception as error:  # a bug in the emulator: still an answer AWS could give
                status, body = _cbor_error(_internal(error, service_of(target)), service_of(target))
            emulator.record(
                RecordedCall(
                    "smithy-rpc-v2-cbor", target, raw, status, {"Content-Type": CBOR, **headers}, body
                )
            )
            self._send(status, CBOR, body, headers)

    return Handler


def _catalog_call(catalog: Catalog, operation: str, query: dict[str, str], raw: bytes) -> dict[str, Any]:
    if operation == "DescribeEntity":
        return catalog.describe_entity(query.get("catalog"), query.get("entityId"))
    if operation == "DescribeChangeSet":
        return catalog.describe_change_set(query.get("catalog"), query.get("changeSetId"))
    if operation == "CancelChangeSet":
        return catalog.cancel_change_set(query.get("catalog"), query.get("changeSetId"))
    body = _decode_json(raw)
    if not isinstance(body, dict):
        raise ApiError(shapes.SERIALIZATION, "The request body must be a JSON object")
    if operation == "ListEntities":
        return catalog.list_entities(body)
    if operation == "StartChangeSet":
        return catalog.start_change_set(body)
    return catalog.list_change_sets(body)


def _rest_json_error(error: ApiError) -> tuple[int, bytes, dict[str, str]]:
    # botocore's REST-JSON parser takes the code from the x-amzn-ErrorType header; the modeled member is
    # `Message`.
    body = json.dumps({"Message": error.message}).encode()
    return error.status, body, {"x-amzn-ErrorType": error.code}


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else {}
    except UnicodeDecodeError:
        raise ApiError(shapes.SERIALIZATION, "The request body is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise ApiError(shapes.SERIALIZATION, f"The request body is not valid JSON: {error}") from None


def _decode_cbor(raw: bytes) -> Any:
    try:
        return cbor2.loads(raw) if raw else {}
    except (cbor2.CBORDecodeError, ValueError) as error:
        raise ApiError(shapes.SERIALIZATION, f"The request body is not valid CBOR: {error}") from None


def _internal(error: Exception, service: Service | None = None) -> ApiError:
    return ApiError(
        service.internal_error if service is not None else "InternalServiceErrorException",
        f"The emulator failed ({type(error).__name__}: {error}); this is a bug in the emulator",
        500,
    )


def _json_error(error: ApiError) -> tuple[int, bytes, dict[str, str]]:
    # botocore's JSON parser takes the code from `__type` (dropping a `namespace#` prefix).
    body = json.dumps({"__type": error.code, "message": error.message, **error.members}).encode()
    return error.status, body, {"x-amzn-ErrorType": error.code}


def _cbor_error(error: ApiError, service: Service) -> tuple[int, bytes]:
    modeled = error.code not in service.unmodeled
    code = f"{service.namespace}#{error.code}" if modeled else error.code
    return error.status, cbor2.dumps({"__type": code, "message": error.message, **error.members})
