"""The buyer-facing functions' routing: an API Gateway REST proxy event in, its proxy response out.

Each function serves one to three fixed routes, and a buyer's request is nearly always a cold start (a
listing sees a few buyers a day). A general web framework's import is most of such a function's own start-up
time, so the few things these functions need from one are here: routes by method and exact path, one
handler per exception type, a not-found answer, and responses in the shape API Gateway's proxy integration
reads (`multiValueHeaders`, so that several cookies can be set).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any, TypeVar

JSON = "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    # Names in lower case: HTTP header names are case-insensitive, and API Gateway passes them as sent.
    headers: Mapping[str, str]
    body: str | None
    is_base64_encoded: bool

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        """The request API Gateway's REST proxy integration describes (its `headers` hold one value each)."""
        headers = event.get("headers") or {}
        return cls(
            method=str(event.get("httpMethod") or "").upper(),
            path=str(event.get("path") or "/"),
            headers={str(name).lower(): str(value) for name, value in headers.items()},
            body=event.get("body"),
            is_base64_encoded=bool(event.get("isBase64Encoded")),
        )


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    # Text is sent as it is; a dict is sent as compact JSON (Decimal as its exact text).
    body: str | dict[str, Any]
    content_type: str | None  # None: no body (a redirect)
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: tuple[str, ...] = ()

    def proxy_result(self) -> dict[str, Any]:
        body = self.body if isinstance(self.body, str) else _json(self.body)
        headers: dict[str, list[str]] = {"Content-Type": [self.content_type]} if self.content_type else {}
        headers.update({name: [value] for name, value in self.headers.items()})
        if self.cookies:
            headers["Set-Cookie"] = list(self.cookies)
        return {
            "statusCode": self.status.value,
            "body": body,
            "isBase64Encoded": False,
            "multiValueHeaders": headers,
        }


def _json(body: dict[str, Any]) -> str:
    def exact(value: object) -> str:
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(f"{type(value).__name__} is not JSON")

    return json.dumps(body, separators=(",", ":"), default=exact)


Route = Callable[[Request], Response]
ErrorHandler = Callable[[Request, Exception], Response]
RouteT = TypeVar("RouteT", bound=Route)
ErrorHandlerT = TypeVar("ErrorHandlerT", bound=ErrorHandler)


class Router:
    """Routes by method and exact path (one trailing slash ignored, as API Gateway's resources do)."""

    def __init__(self, not_found: Route) -> None:
        self._routes: dict[tuple[str, str], Route] = {}
        self._errors: dict[type[Exception], ErrorHandler] = {}
        self._not_found = not_found

    def route(self, method: str, path: str) -> Callable[[RouteT], RouteT]:
        def register(function: RouteT) -> RouteT:
            self._routes[(method.upper(), path)] = function
            return function

        return register

    def get(self, path: str) -> Callable[[RouteT], RouteT]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[RouteT], RouteT]:
        return self.route("POST", path)

    def on_error(self, *errors: type[Exception]) -> Callable[[ErrorHandlerT], ErrorHandlerT]:
        """The answer to a request whose route raised one of `errors` (or a subclass of one)."""

        def register(function: ErrorHandlerT) -> ErrorHandlerT:
            for error in errors:
                self._errors[error] = function
            return function

        return register

    def resolve(self, event: Mapping[str, Any]) -> dict[str, Any]:
        request = Request.from_event(event)
        path = request.path[:-1] if len(request.path) > 1 and request.path.endswith("/") else request.path
        route = self._routes.get((request.method, path), self._not_found)
        try:
            response = route(request)
        except Exception as error:
            handler = next((self._errors[kind] for kind in type(error).__mro__ if kind in self._errors), None)
            if handler is None:
                raise  # Lambda reports the failure; API Gateway answers its own 502
            response = handler(request, error)
        return response.proxy_result()
