"""Responses in the shapes every endpoint uses: JSON errors `{"error", "message"}` and HTML pages."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

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
