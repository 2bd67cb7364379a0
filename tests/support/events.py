"""API Gateway REST proxy events and Lambda contexts, shaped as API Gateway sends them."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode


@dataclass
class FakeLambdaContext:
    function_name: str = "CodioMarketplace-test-Handler"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:CodioMarketplace-test-Handler"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def api_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    content_type: str | None = None,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_headers = {"Host": "d111111abcdef8.cloudfront.net", "User-Agent": "test", **(headers or {})}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    if cookie is not None:
        all_headers["Cookie"] = cookie
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    request_id = str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {key: [value] for key, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/live{path}",
            "stage": "live",
            "requestId": request_id,
            "identity": {"sourceIp": "203.0.113.10"},
            "accountId": "123456789012",
            "apiId": "test",
        },
        "body": text,
        "isBase64Encoded": False,
    }


def fulfillment_post(token: str | None, offer_type: str | None = None) -> dict[str, Any]:
    fields = {}
    if token is not None:
        fields["x-amzn-marketplace-token"] = token
    if offer_type is not None:
        fields["x-amzn-marketplace-offer-type"] = offer_type
    return api_event(
        "POST",
        "/marketplace/fulfillment",
        body=urlencode(fields),
        content_type="application/x-www-form-urlencoded",
    )


def register_post(
    fields: dict[str, Any] | str, cookie: str | None, content_type: str = "application/json"
) -> dict[str, Any]:
    body = fields if isinstance(fields, str) else json.dumps(fields)
    return api_event("POST", "/api/register", body=body, content_type=content_type, cookie=cookie)


def registration_get(cookie: str | None) -> dict[str, Any]:
    return api_event("GET", "/api/registration", cookie=cookie)


def set_cookies(response: dict[str, Any]) -> list[str]:
    headers = response.get("multiValueHeaders") or {}
    found = list(headers.get("Set-Cookie", []))
    single = (response.get("headers") or {}).get("Set-Cookie")
    if single and single not in found:
        found.append(single)
    return found


def session_cookie(response: dict[str, Any]) -> str:
    """The `name=value` pair a browser would send back."""
    (cookie,) = set_cookies(response)
    return cookie.split(";", 1)[0]


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header as a browser would see it, from `headers` or `multiValueHeaders`."""
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower() and values:
            return str(values[0])
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


@dataclass
class ShortLambdaContext(FakeLambdaContext):
    """An invocation with `seconds` left from its creation, as Lambda counts them down."""

    seconds: float = 3.0

    def __post_init__(self) -> None:
        self._ends = time.monotonic() + self.seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))
