"""Responses in the shapes every endpoint uses: JSON errors `{"error", "message"}` and HTML pages."""

from __future__ import annotations

import binascii
import json
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

NO_STORE = {"Cache-Control": "no-store"}


def error_response(status: HTTPStatus, code: str, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body={"error": code, "message": message, **extra},
        headers=NO_STORE,
    )


def json_response(status: HTTPStatus, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(
        status_code=status.value, content_type=content_types.APPLICATION_JSON, body=body, headers=NO_STORE
    )


def html_response(status: HTTPStatus, html: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status.value,
        content_type="text/html; charset=utf-8",
        body=html,
        headers={**NO_STORE, **(headers or {})},
    )


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` → `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class UnreadableBody(ValueError):
    """The request body cannot be read as what the route takes; `message` says what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def body_text(event: APIGatewayProxyEvent) -> str:
    """The body as text: API Gateway sends text, or base64 when it is flagged so (binary media types)."""
    body = event.body or ""
    if event.is_base64_encoded and body:
        try:
            return binascii.a2b_base64(body.encode("ascii"), strict_mode=True).decode()
        except (binascii.Error, UnicodeError):
            raise UnreadableBody("invalid_body", "the body is not base64-encoded UTF-8 text") from None
    try:
        body.encode()
    except UnicodeEncodeError:  # a lone surrogate: not text any client could have sent as UTF-8
        raise UnreadableBody("invalid_body", "the body is not UTF-8 text") from None
    return body


def form_fields(text: str, *, max_fields: int, keep_blank_values: bool = False) -> dict[str, list[str]]:
    """An `application/x-www-form-urlencoded` body; more than `max_fields` fields is refused, not parsed."""
    try:
        return parse_qs(text, keep_blank_values=keep_blank_values, max_num_fields=max_fields)
    except ValueError:  # "Max number of fields exceeded"
        raise UnreadableBody("too_many_fields", f"the form has more than {max_fields} fields") from None


def json_value(text: str, **options: Any) -> Any:
    """A JSON body; what Python cannot read (nesting too deep, an integer of thousands of digits) is bad
    input like any other malformed JSON."""
    try:
        return json.loads(text, **options)
    except json.JSONDecodeError as error:
        raise UnreadableBody("invalid_json", f"the body is not valid JSON ({error})") from None
    except RecursionError:
        raise UnreadableBody("invalid_json", "the body is not valid JSON (nested too deeply)") from None
    except ValueError as error:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise UnreadableBody("invalid_json", f"the body is not JSON this API can read ({error})") from None
