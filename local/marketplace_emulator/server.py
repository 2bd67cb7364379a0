"""The HTTP side of the emulator: AWS wire protocols for the APIs, JSON for the admin API.

- Metering (`AWSMPMeteringService.*`): AWS JSON 1.1, `POST /` routed by `X-Amz-Target`.
- Entitlement (`AWSMPEntitlementService.GetEntitlements`): smithy-rpc-v2-cbor
  (`POST /service/AWSMPEntitlementService/operation/GetEntitlements`), which current botocore picks, and
  AWS JSON 1.1, which it may pick instead.
- Admin: `/_emulator/...`, documented in local/README.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cbor2

from local.marketplace_emulator.notifications import Notifier
from local.marketplace_emulator.state import AdminError, ApiError, Marketplace, Subscription

JSON_11 = "application/x-amz-json-1.1"
CBOR = "application/cbor"
MAX_BODY_BYTES = 1024 * 1024  # BatchMeterUsage's documented request limit
OPERATIONS: dict[str, Callable[[Marketplace, dict[str, Any]], dict[str, Any]]] = {
    "AWSMPMeteringService.ResolveCustomer": Marketplace.resolve_customer,
    "AWSMPMeteringService.BatchMeterUsage": Marketplace.batch_meter_usage,
    "AWSMPEntitlementService.GetEntitlements": Marketplace.get_entitlements,
}
UNSUPPORTED = {"AWSMPMeteringService.MeterUsage", "AWSMPMeteringService.RegisterUsage"}
EVENT_STATUS = {
    "subscribe-success": "active",
    "subscribe-fail": "failed",
    "unsubscribe-pending": "cancel-pending",
    "unsubscribe-success": "cancelled",
    "entitlement-updated": None,
}


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


class EmulatorServer:
    """The emulator on 127.0.0.1 in a background thread; `with EmulatorServer() as emulator: emulator.url`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        marketplace: Marketplace | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.marketplace = marketplace or Marketplace()
        self.notifier = notifier or Notifier()
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
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
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

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
            return 201, {
                "productCode": product.product_code,
                "dimensions": sorted(product.dimensions),
                "pricingModel": product.pricing_model,
                "legacy": product.legacy,
            }
        if route == ("POST", "/_emulator/subscriptions"):
            subscription, token = marketplace.subscribe(body)
            answer: dict[str, Any] = {
                "token": token,
                "customerAWSAccountId": subscription.customer_aws_account_id,
                "licenseArn": subscription.license_arn,
                "productCode": subscription.product_code,
                "status": subscription.status,
            }
            if marketplace.products[subscription.product_code].legacy:
                answer["customerIdentifier"] = subscription.customer_identifier
            if subscription.status == "active":
                # Marketplace tells the seller as the buyer is sent to the fulfillment URL.
                answer["deliveries"] = self._notify("subscribe-success", subscription)
            return 201, answer
        if route == ("GET", "/_emulator/subscriptions"):
            code = _first(query, "productCode")
            return 200, {
                "subscriptions": [
                    {
                        "productCode": s.product_code,
                        "customerAWSAccountId": s.customer_aws_account_id,
                        "licenseArn": s.license_arn,
                        "customerIdentifier": s.customer_identifier,
                        "status": s.status,
                        "offerType": s.offer_type,
                        "entitlements": s.entitlements,
                    }
                    for s in list(marketplace.subscriptions.values())
                    if code is None or s.product_code == code
                ]
            }
        if route == ("POST", "/_emulator/events"):
            return self._event(body)
        if route == ("GET", "/_emulator/events"):
            return 200, {"events": list(marketplace.events)}
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
            offset = body.get("offsetSeconds")
            if not isinstance(offset, int | float):
                raise AdminError("offsetSeconds: a number of seconds to shift the emulator's clock by")
            marketplace.clock_offset += float(offset)
            return 200, {"now": datetime.fromtimestamp(marketplace.now(), UTC).isoformat()}
        if route == ("POST", "/_emulator/reset"):
            marketplace.reset()
            return 200, {"status": "reset"}
        raise AdminError(f"no admin route {method} {path}", 404)

    def _event(self, body: dict[str, Any]) -> tuple[int, Any]:
        kind = body.get("type")
        if kind not in EVENT_STATUS:
            raise AdminError(f"type: one of {', '.join(EVENT_STATUS)}")
        code, account = body.get("productCode"), body.get("customerAWSAccountId")
        if not isinstance(code, str) or not isinstance(account, str):
            raise AdminError("productCode and customerAWSAccountId are required")
        status = EVENT_STATUS[kind]
        subscription = (
            self.marketplace.set_status(code, account, status)
            if status
            else self._subscription(code, account)
        )
        return 200, {"status": subscription.status, "deliveries": self._notify(kind, subscription)}

    def _notify(self, kind: str, subscription: Subscription) -> list[dict[str, Any]]:
        product = self.marketplace.products[subscription.product_code]
        deliveries = self.notifier.deliver(kind, subscription, product, self.marketplace.now())
        self.marketplace.events.append(
            {
                "type": kind,
                "productCode": subscription.product_code,
                "customerAWSAccountId": subscription.customer_aws_account_id,
                "deliveries": deliveries,
            }
        )
        return deliveries

    def _subscription(self, code: str, account: str) -> Subscription:
        subscription = self.marketplace.subscriptions.get((code, account))
        if subscription is None:
            raise AdminError(f"no subscription of {account} to {code}", 404)
        return subscription


def _handler_class(emulator: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "marketplace-emulator"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests carry tokens; the emulator keeps no access log

        def _read(self) -> bytes | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(413, "application/json", b'{"message": "Request too large"}')
                return None
            return self.rfile.read(length) if length else b""

        def _send(
            self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", str(time.time_ns()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._admin()

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/_emulator/"):
                self._admin()
            elif path.startswith("/service/"):
                self._cbor(path)
            else:
                self._json_11()

        def _admin(self) -> None:
            url = urlsplit(self.path)
            raw = self._read() if self.command == "POST" else b""
            if raw is None:
                return
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise AdminError("the body must be a JSON object")
                status, answer = emulator.admin(self.command, url.path, parse_qs(url.query), body)
            except json.JSONDecodeError as error:
                status, answer = 400, {"error": "invalid_json", "message": str(error)}
            except AdminError as error:
                status, answer = error.status, {"error": "invalid_request", "message": error.message}
            self._send(status, "application/json", json.dumps(answer, default=str).encode())

        def _call(self, target: str, request: dict[str, Any]) -> dict[str, Any]:
            if "Authorization" not in self.headers:
                raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
            if target in UNSUPPORTED:
                raise ApiError(
                    "UnsupportedOperation", f"{target} is not for SaaS products and is not emulated"
                )
            operation = OPERATIONS.get(target)
            if operation is None:
                raise ApiError("UnknownOperationException", f"Unknown operation {target}")
            latency = emulator.marketplace.before_call(target.split(".", 1)[1])
            if latency:
                time.sleep(latency)
            return operation(emulator.marketplace, request)

        def _json_11(self) -> None:
            raw = self._read()
            if raw is None:
                return
            target = self.headers.get("X-Amz-Target", "")
            try:
                request = json.loads(raw or b"{}")
                result = self._call(target, request)
                self._send(200, JSON_11, json.dumps(_to_json_value(result)).encode())
            except json.JSONDecodeError:
                self._error_json(ApiError("SerializationException", "The request body is not valid JSON"))
            except ApiError as error:
                self._error_json(error)

        def _error_json(self, error: ApiError) -> None:
            body = json.dumps({"__type": error.code, "message": error.message}).encode()
            self._send(error.status, JSON_11, body, {"x-amzn-ErrorType": error.code})

        def _cbor(self, path: str) -> None:
            raw = self._read()
            if raw is None:
                return
            parts = path.strip("/").split("/")
            headers = {"Smithy-Protocol": "rpc-v2-cbor"}
            try:
                if len(parts) != 4 or parts[0] != "service" or parts[2] != "operation":
                    raise ApiError("UnknownOperationException", f"Unknown path {path}", 404)
                request = cbor2.loads(raw) if raw else {}
                result = self._call(f"{parts[1]}.{parts[3]}", request)
                self._send(200, CBOR, cbor2.dumps(_to_cbor_value(result)), headers)
            except ApiError as error:
                body = cbor2.dumps(
                    {
                        "__type": f"com.amazonaws.marketplaceentitlementservice#{error.code}",
                        "message": error.message,
                    }
                )
                self._send(error.status, CBOR, body, headers)
            except (cbor2.CBORDecodeError, ValueError):
                body = cbor2.dumps(
                    {"__type": "SerializationException", "message": "The body is not valid CBOR"}
                )
                self._send(400, CBOR, body, headers)

    return Handler
