"""Registration API: `POST /api/register` and `GET /api/registration` behind the listing's distribution.

Buyer onboarding is not built yet, so every route answers 501 with a JSON explanation rather than
pretending to register anyone.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from marketplace_saas.http import error_response

logger = Logger()
tracer = Tracer()
app = APIGatewayRestResolver()

NOT_AVAILABLE = "Registration is not available yet for this listing."


@app.post("/api/register")
def register() -> Response[dict[str, str]]:
    return error_response(HTTPStatus.NOT_IMPLEMENTED, "not_implemented", NOT_AVAILABLE)


@app.get("/api/registration")
def registration() -> Response[dict[str, str]]:
    return error_response(HTTPStatus.NOT_IMPLEMENTED, "not_implemented", NOT_AVAILABLE)


@app.not_found
def not_found(_: Exception) -> Response[dict[str, str]]:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "There is no such API route.")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
