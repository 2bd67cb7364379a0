"""Plays CloudFront + API Gateway + Lambda for one listing on 127.0.0.1.

It serves the listing's `site/` with its generated `config.json` and `brand.css`, with the security headers
of the stack's response headers policy, and turns every request for an API route of the template into an
API Gateway REST proxy event for the real handler, called in this process with the environment the
template gives that function. AWS calls from the handler reach loopback only through
`AWS_ENDPOINT_URL_<SERVICE>`.

The site's own paths play the distribution, which adds its origin headers (the API key) to API requests;
`/live/...` plays API Gateway's own endpoint, where a buyer route without that key is refused (403) and the
usage API is called, as in AWS.

Run by `local.run` as one process per listing: `python -m local.gateway --spec FILE`.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import mimetypes
import os
import secrets
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from local.http_server import BodyRefused, LocalHTTPServer, LocalRequestHandler, request_path, split_target
from local.stack_template import EventSourceSpec, FunctionSpec, ListingTemplate, Route, load
from stacks.page_config import brand_stylesheet

# API Gateway's own limit on a request payload.
MAX_BODY_BYTES = 10 * 1024 * 1024
STAGE = "live"
# API Gateway's own endpoint (https://<api>.execute-api.<region>.amazonaws.com/live/...), played on this path.
API_ENDPOINT_PREFIX = f"/{STAGE}/"
API_KEY_HEADER = "x-api-key"
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/x-www-form-urlencoded")
# BatchMeterUsage calls the metering job makes at once in local mode (see Gateway.__init__).
LOCAL_METERING_CONCURRENCY = "1"
# Local mode's "Bill now" (the console's button): not part of the listing's API, and only on 127.0.0.1.
BILL_NOW_PATH = "/_local/bill-now"
# Runs the listing's reconciliation (the function its daily schedule invokes), with {"full", "dryRun"}.
RECONCILE_PATH = "/_local/reconcile"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class LambdaContext:
    """The attributes Powertools and handlers read from a Lambda context."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str
    invoked_function_arn: str
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @classmethod
    def for_function(cls, function: FunctionSpec, request_id: str) -> LambdaContext:
        return cls(
            function_name=function.name,
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
            aws_request_id=request_id,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{function.name}",
            log_group_name=f"/aws/lambda/{function.name}",
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class GatewaySpec:
    """What `local.run` hands each gateway process."""

    listing_path: str
    port: int
    template: Path
    site_root: Path
    page_config: dict[str, Any]
    aws_environment: dict[str, str]
    schedule_seconds: float = 60.0

    @classmethod
    def read(cls, file: Path) -> GatewaySpec:
        data = json.loads(file.read_text(encoding="utf-8"))
        return cls(
            listing_path=data["listingPath"],
            port=int(data["port"]),
            template=Path(data["template"]),
            site_root=Path(data["siteRoot"]),
            page_config=data["pageConfig"],
            aws_environment=data["awsEnvironment"],
            schedule_seconds=float(data.get("scheduleSeconds", 60)),
        )

    def write(self, file: Path) -> None:
        file.write_text(
            json.dumps(
                {
                    "listingPath": self.listing_path,
                    "port": self.port,
                    "template": str(self.template),
                    "siteRoot": str(self.site_root),
                    "pageConfig": self.page_config,
                    "awsEnvironment": self.aws_environment,
                    "scheduleSeconds": self.schedule_seconds,
                },
                indent=2,
            ),
            encoding="utf-8",
        )


class Gateway:
    def __init__(self, spec: GatewaySpec, template: ListingTemplate) -> None:
        self.spec = spec
        self.template = template
        self.routes = {(route.method, route.path): route for route in template.routes}
        self._handlers: dict[str, Handler] = {}
        self._import_lock = threading.Lock()
        functions = (
            [route.function for route in template.routes]
            + template.scheduled
            + template.on_demand
            + [source.function for source in template.event_sources]
        )
        environments = {function.logical_id: function.environment for function in functions}
        merged: dict[str, str] = {}
        for environment in environments.values():
            for key, value in environment.items():
                if merged.setdefault(key, value) != value:
                    # One process hosts all of a listing's functions, so they must agree on shared names.
                    raise SystemExit(f"functions disagree on environment variable {key}")
        os.environ.update(merged)
        os.environ.update(spec.aws_environment)
        # The gateway plays the listing's distribution: the site's origin is the gateway's own address.
        os.environ["SITE_ORIGINS"] = f"http://127.0.0.1:{spec.port},http://localhost:{spec.port}"
        # The metering job sends its batches one at a time here. Its workers' DynamoDB transactions rely on
        # DynamoDB applying each one whole; moto's server runs requests on threads with no lock around its
        # backends, so concurrent transactions could interleave (and bill a record twice or lose an answer).
        os.environ["METERING_CONCURRENCY"] = LOCAL_METERING_CONCURRENCY
        # CloudFormation resolves a dynamic reference (the Secrets Manager secret behind the API key and
        # the distribution's origin header) at deploy time; here each gets a fresh value per process.
        resolved: dict[str, str] = {}

        def resolve(value: Any) -> str:
            if isinstance(value, str) and "{{resolve:" not in value:
                return value
            return resolved.setdefault(json.dumps(value, sort_keys=True), secrets.token_urlsafe(36))

        self.api_keys = {resolve(value) for value in template.api_keys}
        self.origin_headers = {name: resolve(value) for name, value in template.origin_headers.items()}

    def handler(self, function: FunctionSpec) -> Handler:
        name = function.handler
        # One import at a time: request threads, schedules and event sources may all start cold at once.
        with self._import_lock:
            if name not in self._handlers:
                module_name, _, attribute = name.rpartition(".")
                module = importlib.import_module(module_name)
                self._handlers[name] = getattr(module, attribute)
            return self._handlers[name]

    def proxy_event(
        self, route: Route, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> dict[str, Any]:
        path, query_string = split_target(target)
        query = parse_qsl(query_string, keep_blank_values=True)
        content_type = headers.get("Content-Type", headers.get("content-type", ""))
        is_text = not body or content_type.startswith(TEXT_TYPES)
        multi_query: dict[str, list[str]] = {}
        for key, value in query:
            multi_query.setdefault(key, []).append(value)
        request_id = str(uuid.uuid4())
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {key: [value] for key, value in headers.items()},
            "queryStringParameters": {key: values[-1] for key, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{STAGE}{path}",
                "stage": STAGE,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTimeEpoch": int(time.time() * 1000),
                "protocol": "HTTP/1.1",
                "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent")},
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": headers.get("Host", "localhost"),
            },
            # API Gateway hands a text body to the function as a string; bytes that are not UTF-8 arrive as
            # U+FFFD, for the handler to refuse as it refuses any other bad value.
            "body": (body.decode("utf-8", "replace") if is_text else base64.b64encode(body).decode())
            if body
            else None,
            "isBase64Encoded": bool(body) and not is_text,
        }

    def invoke(self, route: Route, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext.for_function(route.function, event["requestContext"]["requestId"])
        return self.handler(route.function)(event, context)

    def bill_now(self) -> dict[str, Any]:
        """Local mode's "Bill now": the listing's metering job sends every billable license's usage, the
        current hour included, as if the hour were over (usage recorded later in the hour is refused, as for
        any hour already sent); then the subscriptions whose final hour is sent are closed, as after a run."""
        from marketplace_saas.wiring import lifecycle, metering_job

        report = metering_job().run(close_current_hour=True)
        closed = lifecycle().close_ended()
        return {**report.view(), "subscriptionsClosed": len(closed)}

    def reconcile(self, options: dict[str, Any]) -> dict[str, Any]:
        """What `--reconcile --local` asks: the scheduled function local mode runs only on demand, invoked
        as `--reconcile` invokes it in AWS."""
        if not self.template.on_demand:
            raise LookupError(f"{self.template.stack_name} has no reconciliation function")
        function = self.template.on_demand[0]
        context = LambdaContext.for_function(function, secrets.token_hex(16))
        result: dict[str, Any] = self.handler(function)(options, context)
        return result

    def run_schedules(self, stop: threading.Event) -> None:
        """Plays the EventBridge schedules: each scheduled function every `schedule_seconds`."""
        while not stop.wait(self.spec.schedule_seconds):
            for function in self.template.scheduled:
                context = LambdaContext.for_function(function, str(uuid.uuid4()))
                event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
                try:
                    self.handler(function)(event, context)
                except Exception:
                    traceback.print_exc()

    def run_event_source(self, source: EventSourceSpec, stop: threading.Event) -> None:
        """Plays one SQS event source mapping: poll, invoke with a batch, delete what succeeded.

        As in Lambda, a message the function reports in `batchItemFailures` (or every message of a batch
        whose invocation raised) stays in the queue, comes back after its visibility timeout, and goes to
        the dead-letter queue after the queue's maxReceiveCount.
        """
        import boto3  # the gateway's AWS environment is set by now

        sqs = boto3.client("sqs")
        queue = self.template.queues[source.queue]
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        while not stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(source.batch_size, 10),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:  # the local services are stopping, or hiccupped: try again shortly
                if stop.wait(1):
                    return
                continue
            if not messages:
                continue
            event = {"Records": [_sqs_record(message, arn) for message in messages]}
            context = LambdaContext.for_function(source.function, str(uuid.uuid4()))
            try:
                result = self.handler(source.function)(event, context) or {}
            except Exception:
                traceback.print_exc()
                continue  # every message comes back after its visibility timeout
            failed = (
                {item.get("itemIdentifier") for item in result.get("batchItemFailures", [])}
                if source.report_failures
                else set()
            )
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]}
                        for index, m in enumerate(done)
                    ],
                )


def _sqs_record(message: Any, queue_arn: str) -> dict[str, Any]:
    """The record Lambda's SQS event source hands a function for one message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def make_request_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    site_root = gateway.spec.site_root.resolve()
    page_config = json.dumps(gateway.spec.page_config).encode()
    # The stack deploys the same stylesheet beside config.json (stacks/listing_stack.py).
    brand_css = brand_stylesheet(gateway.spec.page_config["branding"]["accentColor"]).encode()

    class RequestHandler(LocalRequestHandler):
        server_version = "local-gateway"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            # Access log without query strings: they are never needed and may carry data. Also called for
            # http.server's own error answers, before the request line is parsed (or when it cannot be).
            path = request_path(getattr(self, "path", ""))[:200].encode("unicode_escape").decode()
            status = args[1] if len(args) > 1 and format.startswith('"%s"') else " ".join(map(str, args))
            method = getattr(self, "command", "") or "-"
            sys.stderr.write(f"[{gateway.spec.listing_path}] {method} {path or '-'} {status}\n")

        def _send(self, status: int, body: bytes, headers: dict[str, str] | list[tuple[str, str]]) -> None:
            self.send_response(status)
            items = headers.items() if isinstance(headers, dict) else headers
            for key, value in items:
                self.send_header(key, value)
            for key, value in gateway.template.security_headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json_error(self, status: HTTPStatus, code: str, message: str) -> None:
            body = json.dumps({"error": code, "message": message}).encode()
            self._send(status, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})

        def _is_api_path(self) -> bool:
            return request_path(self.path).startswith(("/api/", "/marketplace/", API_ENDPOINT_PREFIX))

        def _api(self) -> None:
            direct = request_path(self.path).startswith(API_ENDPOINT_PREFIX)
            target = self.path[len(API_ENDPOINT_PREFIX) - 1 :] if direct else self.path
            route = gateway.routes.get((self.command, request_path(target)))
            if route is None:
                # API Gateway answers an unknown method or resource with 403 "Missing Authentication Token".
                self._json_error(
                    HTTPStatus.FORBIDDEN, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
                )
                return
            if route.iam_auth and "Authorization" not in self.headers:
                # Local mode checks that a request is signed, not the signature itself.
                self._json_error(
                    HTTPStatus.FORBIDDEN, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
                )
                return
            headers = dict(self.headers.items())
            if not direct:
                # The distribution adds its origin headers, replacing a viewer's header of the same name.
                added = {name.lower() for name in gateway.origin_headers}
                headers = {k: v for k, v in headers.items() if k.lower() not in added}
                headers.update(gateway.origin_headers)
            if route.api_key_required:
                key = next((v for k, v in headers.items() if k.lower() == API_KEY_HEADER), None)
                if key not in gateway.api_keys:
                    self._json_error(HTTPStatus.FORBIDDEN, "INVALID_API_KEY", "Forbidden")
                    return
            try:
                body = self.read_body(MAX_BODY_BYTES)
            except BodyRefused as refused:
                code = {413: "REQUEST_TOO_LARGE", 408: "REQUEST_TIMEOUT"}.get(refused.status, "BAD_REQUEST")
                self._json_error(refused.status, code, refused.message)
                return
            missing = [
                name for name in route.required_headers if name.lower() not in {h.lower() for h in headers}
            ]
            if missing:
                self._json_error(
                    HTTPStatus.BAD_REQUEST,
                    "BAD_REQUEST_PARAMETERS",
                    f"Missing required request parameters: [{', '.join(missing)}]",
                )
                return
            event = gateway.proxy_event(route, self.command, target, headers, body, self.client_address[0])
            try:
                result = gateway.invoke(route, event)
                status = int(result.get("statusCode", 200))
                raw = result.get("body") or ""
                payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
                response_headers: list[tuple[str, str]] = list((result.get("headers") or {}).items())
                for key, values in (result.get("multiValueHeaders") or {}).items():
                    response_headers += [
                        (key, value) for value in values if (key, value) not in response_headers
                    ]
            except Exception:
                traceback.print_exc()
                self._json_error(HTTPStatus.BAD_GATEWAY, "INTERNAL_SERVER_ERROR", "Internal server error")
                return
            self._send(status, payload, response_headers)

        def _static(self) -> None:
            path = request_path(self.path)
            if path == "/config.json":
                self._send(
                    200, page_config, {"Content-Type": "application/json", "Cache-Control": "no-cache"}
                )
                return
            if path == "/brand.css":
                self._send(
                    200, brand_css, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "no-cache"}
                )
                return
            relative = "index.html" if path in ("", "/") else path.lstrip("/")
            try:
                file = (site_root / relative).resolve()
                found = file.is_relative_to(site_root) and file.is_file()
            except (OSError, ValueError):  # a name too long for the file system, say: S3 has no such key
                found = False
            if not found:
                not_found = site_root / "404.html"
                body = not_found.read_bytes() if not_found.is_file() else b"Not found"
                self._send(404, body, {"Content-Type": "text/html; charset=utf-8"})
                return
            content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type in (
                "application/javascript",
                "image/svg+xml",
            ):
                content_type += "; charset=utf-8"
            self._send(200, file.read_bytes(), {"Content-Type": content_type, "Cache-Control": "no-cache"})

        def do_GET(self) -> None:
            self._api() if self._is_api_path() else self._static()

        def do_HEAD(self) -> None:
            self.do_GET()

        def _json_only(self) -> bool:
            # JSON only: a page on another site cannot post JSON here without a CORS preflight, which fails.
            if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
                self._json_error(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json"
                )
                return False
            return True

        def _reconcile(self) -> None:
            if not self._json_only():
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                options = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._json_error(HTTPStatus.BAD_REQUEST, "bad_request", "the body is not JSON")
                return
            try:
                report = gateway.reconcile(options)
            except Exception as error:  # the caller gets the reason; the log has the trace
                traceback.print_exc()
                self._json_error(
                    HTTPStatus.BAD_GATEWAY, "reconciliation_failed", f"the reconciliation failed: {error}"
                )
                return
            status = HTTPStatus.BAD_REQUEST if "error" in report else HTTPStatus.OK
            body = json.dumps(report, default=str).encode()
            self._send(status, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})

        def _bill_now(self) -> None:
            if not self._json_only():
                return
            try:
                report = gateway.bill_now()
            except Exception as error:  # the caller gets the reason; the log has the trace
                traceback.print_exc()
                self._json_error(
                    HTTPStatus.BAD_GATEWAY, "metering_failed", f"the metering job failed: {error}"
                )
                return
            body = json.dumps(report, default=str).encode()
            self._send(HTTPStatus.OK, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})

        def do_POST(self) -> None:
            if request_path(self.path) == BILL_NOW_PATH:
                self._bill_now()
            elif request_path(self.path) == RECONCILE_PATH:
                self._reconcile()
            elif self._is_api_path():
                self._api()
            else:
                # CloudFront's default behaviour allows only GET, HEAD and OPTIONS on the page.
                self._json_error(
                    HTTPStatus.FORBIDDEN, "METHOD_NOT_ALLOWED", "This distribution does not accept POST here"
                )

        do_PUT = do_DELETE = do_PATCH = do_POST

        def do_OPTIONS(self) -> None:
            if self._is_api_path():
                # No API resource has an OPTIONS method (page and API share one origin: no CORS), and API
                # Gateway answers a method a resource lacks as it answers an unknown resource.
                self._api()
                return
            # CloudFront passes OPTIONS on to the bucket, which has no CORS configuration.
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessForbidden</Code>'
                b"<Message>CORSResponse: CORS is not enabled for this bucket.</Message>"
                b"<Method>OPTIONS</Method><ResourceType>BUCKET</ResourceType></Error>"
            )
            self._send(HTTPStatus.FORBIDDEN, body, {"Content-Type": "application/xml"})

    return RequestHandler


def serve(spec: GatewaySpec) -> None:
    gateway = Gateway(spec, load(spec.template))
    server = LocalHTTPServer(("127.0.0.1", spec.port), make_request_handler(gateway))
    stop_schedules = threading.Event()
    threading.Thread(target=gateway.run_schedules, args=(stop_schedules,), daemon=True).start()
    for source in gateway.template.event_sources:
        threading.Thread(target=gateway.run_event_source, args=(source, stop_schedules), daemon=True).start()

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop_schedules.set()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="One listing's local CloudFront + API Gateway + Lambda")
    parser.add_argument("--spec", type=Path, required=True, help="the JSON file local.run wrote")
    args = parser.parse_args()
    serve(GatewaySpec.read(args.spec))


if __name__ == "__main__":
    main()
