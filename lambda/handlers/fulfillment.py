"""Fulfillment endpoint: AWS Marketplace POSTs the buyer's browser here with a registration token.

Customer resolution is not built yet, so the endpoint answers 501 with a JSON explanation. It never reads,
logs or echoes the token.
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


@app.post("/marketplace/fulfillment")
def fulfillment() -> Response[dict[str, str]]:
    return error_response(
        HTTPStatus.NOT_IMPLEMENTED,
        "not_implemented",
        "Account set-up is not available yet for this listing. Please try again later.",
    )


@app.not_found
def not_found(_: Exception) -> Response[dict[str, str]]:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "There is no such route.")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
