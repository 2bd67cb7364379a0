"""Fulfillment URL: AWS Marketplace sends the buyer's browser here by POST with a registration token.

The token is resolved at once and goes no further: it is never logged, stored or put in a URL. The browser
gets only a random pending-registration id in an HttpOnly cookie, and a 303 to the landing page.
A GET (a visitor who typed the address, or AWS Marketplace checking the URL when it is set through the
Catalog API, which fails the change set with INVALID_FULFILLMENT_URL unless the URL answers 200) gets a
short page saying to start from AWS Marketplace.
Reference: https://docs.aws.amazon.com/marketplace/latest/userguide/saas-product-customer-setup.html
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError

from marketplace_saas import deadline, pages
from marketplace_saas.http import (
    UnreadableBody,
    body_text,
    form_fields,
    html_response,
    media_type,
    redirect,
)
from marketplace_saas.marketplace import MarketplaceUnavailable, TokenRejected
from marketplace_saas.observability import logger, metrics
from marketplace_saas.onboarding import PENDING_REGISTRATION_SECONDS, BadToken, ForeignProduct
from marketplace_saas.routing import Request, Response, Router
from marketplace_saas.session import registration_cookie
from marketplace_saas.store import StoreUnavailable
from marketplace_saas.wiring import onboarding

TOKEN_FIELD = "x-amzn-marketplace-token"  # noqa: S105 - a form field name, not a secret
OFFER_TYPE_FIELD = "x-amzn-marketplace-offer-type"
MAX_FORM_BYTES = 8192
# AWS Marketplace posts two fields; a form of many more is not from it (and parsing it costs).
MAX_FORM_FIELDS = 20
FORM = "application/x-www-form-urlencoded"


def _not_found(_: Request) -> Response:
    return html_response(HTTPStatus.NOT_FOUND, pages.page("Not found", "There is nothing at this address."))


app = Router(not_found=_not_found)


def _failed(reason: str, status: HTTPStatus, title: str, *text: str, retry: bool = False) -> Response:
    metrics.add_metric(name=f"FulfillmentRejected{reason}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="FulfillmentFailures", unit=MetricUnit.Count, value=1)  # what the alarm watches
    logger.info("fulfillment refused", extra={"reason": reason, "status": status.value})
    headers = {"Retry-After": "30"} if retry else None
    return html_response(status, pages.page(title, *text), headers)


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


@app.get("/marketplace/fulfillment")
def fulfillment_visited(_: Request) -> Response:
    """200 with a page: AWS Marketplace validates the fulfillment URL with a GET before it accepts it."""
    return html_response(
        HTTPStatus.OK,
        pages.page(
            "Start from AWS Marketplace",
            "This is the set-up address of a product sold on AWS Marketplace. To subscribe, or to set up an "
            "account for a subscription you already have, open the product's page on AWS Marketplace and "
            "choose its set-up button (for example \u201cSet up your account\u201d).",
        ),
    )


@app.post("/marketplace/fulfillment")
def fulfillment(request: Request) -> Response:
    if media_type(request.headers.get("content-type")) != FORM:
        return _failed(
            "ContentType",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "This address is for AWS Marketplace",
            "AWS Marketplace sends buyers here with a form post. " + pages.START_AGAIN,
        )
    try:
        body = body_text(request)
        if len(body.encode()) > MAX_FORM_BYTES:
            return _failed(
                "TooLarge", HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request too large", pages.START_AGAIN
            )
        form = form_fields(body, max_fields=MAX_FORM_FIELDS)
    except UnreadableBody as problem:
        return _failed(
            "BadForm",
            HTTPStatus.BAD_REQUEST,
            "This set-up link is incomplete",
            f"The request could not be read: {problem.message}. " + pages.START_AGAIN,
        )
    token = _first(form, TOKEN_FIELD)
    offer_type = _first(form, OFFER_TYPE_FIELD)
    try:
        registration_id = onboarding().accept_buyer(token, offer_type)
    except BadToken:
        return _failed("NoToken", HTTPStatus.BAD_REQUEST, "This set-up link is incomplete", pages.START_AGAIN)
    except TokenRejected as rejection:
        title = (
            "This set-up link has expired"
            if rejection.reason == "expired"
            else "This set-up link is not valid"
        )
        return _failed(rejection.reason.capitalize(), HTTPStatus.BAD_REQUEST, title, pages.START_AGAIN)
    except ForeignProduct:
        return _failed(
            "ForeignProduct",
            HTTPStatus.FORBIDDEN,
            "This link belongs to another product",
            "The subscription you arrived with is for a different product than this page serves. "
            + pages.START_AGAIN,
        )
    except (MarketplaceUnavailable, StoreUnavailable, BotoCoreError) as error:  # BotoCoreError: out of time
        logger.warning("fulfillment unavailable", extra={"cause": str(error)})
        return _failed(
            "Unavailable",
            HTTPStatus.SERVICE_UNAVAILABLE,
            "We could not complete the set-up just now",
            "AWS Marketplace or our service is busy. Please go back to AWS Marketplace and choose the set-up "
            "button again in a minute; your subscription is safe.",
            retry=True,
        )
    metrics.add_metric(name="BuyersArrived", unit=MetricUnit.Count, value=1)
    logger.info("buyer arrived from AWS Marketplace", extra={"offerType": offer_type or "standard"})
    return redirect("/", cookies=(registration_cookie(registration_id, PENDING_REGISTRATION_SECONDS),))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with deadline.invocation(context):  # every AWS call ends in time to answer
        return app.resolve(event)
