"""`POST /api/usage`: the seller's product backend records usage (IAM-authorized: SigV4-signed requests only).

Body: `{"customerAWSAccountId", "licenseArn"?, "dimension", "quantity", "time"?, "allocations"?: [{"quantity",
"tags"}]}`; quantities are decimals (`17.42` or `"17.42"`, up to 6 places). `licenseArn` may be left out only
while the account holds one billable license of the listing.
Answers `201 {"customerAWSAccountId", "licenseArn", "dimension", "usageHour", "hourTotal"}` (`hourTotal` a
decimal string), or a JSON error.
"""

from __future__ import annotations

from decimal import Decimal
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError

from marketplace_saas import deadline
from marketplace_saas.http import (
    UnreadableBody,
    body_text,
    error_response,
    json_response,
    json_value,
    media_type,
)
from marketplace_saas.observability import logger, metrics
from marketplace_saas.routing import Request, Response, Router
from marketplace_saas.store import StoreUnavailable
from marketplace_saas.usage import UsageRejected
from marketplace_saas.usage_request import InvalidUsage, UsageRecord
from marketplace_saas.wiring import usage_recorder

MAX_BODY_BYTES = 256 * 1024


def _not_found(_: Request) -> Response:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "There is no such API route.")


app = Router(not_found=_not_found)


def _validation_message(error: InvalidUsage) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


@app.post("/api/usage")
def record_usage(request: Request) -> Response:
    if media_type(request.headers.get("content-type")) != "application/json":
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json"
        )
    try:
        raw = body_text(request)
        if len(raw.encode()) > MAX_BODY_BYTES:
            return error_response(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body_too_large", "the body is too large"
            )
        # Numbers as Decimal: 17.42 stays 17.42 (never a float), and a huge integer is just a large number.
        body = json_value(raw, parse_float=Decimal, parse_int=Decimal)
    except UnreadableBody as problem:
        return error_response(HTTPStatus.BAD_REQUEST, problem.code, problem.message)
    try:
        usage = UsageRecord.validate(body)
    except InvalidUsage as error:
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_usage", _validation_message(error))
    try:
        recorded = usage_recorder().record(usage)
    except UsageRejected as rejection:
        metrics.add_metric(name="UsageRejected", unit=MetricUnit.Count, value=1)
        return error_response(HTTPStatus(rejection.status), rejection.code, rejection.message)
    except (StoreUnavailable, BotoCoreError):  # BotoCoreError: DynamoDB unreachable in the time left
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "try again in a moment")
    metrics.add_metric(name="UsageRecorded", unit=MetricUnit.Count, value=1)
    return json_response(HTTPStatus.CREATED, recorded.view())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with deadline.invocation(context):  # every AWS call ends in time to answer
        return app.resolve(event)
