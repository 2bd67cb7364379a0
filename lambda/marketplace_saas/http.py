"""JSON error responses in the one shape every endpoint uses: {"error": <code>, "message": <text>}."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response, content_types


def error_response(status: HTTPStatus, code: str, message: str) -> Response[dict[str, str]]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body={"error": code, "message": message},
        headers={"Cache-Control": "no-store"},
    )
