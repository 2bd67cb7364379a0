"""Registration API behind the listing's distribution.

    GET  /api/registration  the session's state, for the landing page
    POST /api/register      the buyer's contact details, as JSON (the page) or a form post (no JavaScript)

Errors are JSON `{"error": <code>, "message": <what is wrong and where>}` with the right status; a form post
gets the same answers as small HTML pages. Bad input never writes anything and never produces a 5xx.
A post from another site than the listing's own (its Origin, or Referer) is refused: 403 cross_site_request.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError

from marketplace_saas import deadline, pages
from marketplace_saas.http import (
    UnreadableBody,
    body_text,
    error_response,
    form_fields,
    html_response,
    json_response,
    json_value,
    media_type,
)
from marketplace_saas.marketplace import MarketplaceUnavailable
from marketplace_saas.models import Subscriber
from marketplace_saas.observability import logger, mask_email, metrics
from marketplace_saas.onboarding import NoPendingRegistration, RegisteredWithOtherDetails
from marketplace_saas.routing import Request, Response, Router
from marketplace_saas.seller_events import REGISTERED_EVENT, registered_detail
from marketplace_saas.session import registration_id_from
from marketplace_saas.settings import listing_settings
from marketplace_saas.store import StoreUnavailable
from marketplace_saas.wiring import onboarding, seller_events

if TYPE_CHECKING:  # loaded by the first form that arrives (see _validate), not by the state request
    from marketplace_saas.registration_form import RegistrationRequest

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 16 * 1024
# The form has four fields; a post of many more is not from it.
MAX_FORM_FIELDS = 50


def _not_found(_: Request) -> Response:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "There is no such API route.")


app = Router(not_found=_not_found)


class BadRequest(Exception):
    def __init__(
        self, status: HTTPStatus, code: str, message: str, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def _session(request: Request) -> str | None:
    return registration_id_from(request.headers.get("cookie"))


def _foreign_origin(request: Request) -> str | None:
    """The other site a state-changing request came from, or None if it came from the listing's own page.

    A browser names the page that made a POST in `Origin` (`null` when it hides it: refused too, as an
    attacker can make it do that); older browsers send only `Referer`, whose origin part is checked instead.
    A request with neither did not come from a browser's page (every current browser sends `Origin` on a
    POST), so it is no cross-site forgery: a script holding the buyer's cookie could set either header as it
    liked anyway. The pending-registration cookie is also SameSite=Lax, so other sites' posts do not carry it.
    """
    headers = request.headers
    origin = headers.get("origin")
    if origin is None:
        referer = headers.get("referer")
        if referer is None:
            return None
        try:
            parts = urlsplit(referer.strip())
            origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else referer
        except ValueError:
            origin = referer
    if origin.strip().rstrip("/").lower() in listing_settings().site_origins:
        return None
    return origin[:200]


def _registered_body(subscriber: Subscriber) -> dict[str, Any]:
    return {"state": "registered", "subscriber": subscriber.public_view()}


@app.get("/api/registration")
def registration(request: Request) -> Response:
    state = onboarding().state(_session(request))
    if state.subscriber is not None:
        return json_response(HTTPStatus.OK, _registered_body(state.subscriber))
    return json_response(HTTPStatus.OK, {"state": "unregistered", "offerType": state.pending.offer_type})


def _parse_body(request: Request) -> tuple[dict[str, Any], bool]:
    """The submitted fields, and whether they came as a plain form post."""
    kind = media_type(request.headers.get("content-type"))
    if kind not in (JSON, FORM):
        raise BadRequest(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            f"Content-Type must be {JSON} or {FORM}, not {kind or 'missing'}",
        )
    try:
        raw = body_text(request)
        if len(raw.encode()) > MAX_BODY_BYTES:
            raise BadRequest(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "body_too_large",
                f"the body exceeds {MAX_BODY_BYTES} bytes",
            )
        if kind == FORM:
            form = form_fields(raw, max_fields=MAX_FORM_FIELDS, keep_blank_values=True)
            return {key: values[-1] for key, values in form.items()}, True
        data = json_value(raw)
    except UnreadableBody as problem:
        raise BadRequest(HTTPStatus.BAD_REQUEST, problem.code, problem.message) from None
    if not isinstance(data, dict):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "invalid_json", "the body must be a JSON object")
    return data, False


def _validate(data: dict[str, Any]) -> RegistrationRequest:
    # pydantic and email_validator load here, on the first submitted form: the page's state request, which
    # usually starts a new execution environment, does not wait for them.
    from pydantic import ValidationError

    from marketplace_saas.registration_form import RegistrationRequest

    try:
        return RegistrationRequest.model_validate(data)
    except ValidationError as error:
        fields: dict[str, str] = {}
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "body"
            fields.setdefault(name, _in_the_forms_words(item))
        message = "; ".join(f"{name}: {text}" for name, text in fields.items())
        raise BadRequest(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_fields", message, fields) from None


# The form's labels (site/index.html), for the page a form post without JavaScript gets back.
FIELD_LABELS = {
    "companyName": "Company name",
    "contactPerson": "Your name",
    "contactEmail": "Work e-mail",
    "contactPhone": "Phone, with country code",
}
EMAIL_WANTED = "enter an e-mail address such as name@example.com"


def _in_the_forms_words(item: Any) -> str:
    """What is wrong with a field, as the form would say it: never pydantic's or email_validator's text
    ("String should have at least 1 character"), which the buyer would see on the page."""
    kind = item["type"]
    context = item.get("ctx") or {}
    if kind == "extra_forbidden":
        return "is not a field of the registration form"
    if kind == "missing" or (kind == "string_too_short" and context.get("min_length") == 1):
        return "is required"
    if kind == "string_type":
        return "must be text"
    if kind == "string_too_short":
        return f"must be at least {context['min_length']} characters"
    if kind == "string_too_long":
        return f"must be at most {context['max_length']} characters"
    if "reason" in context:  # EmailStr: email_validator's own explanation
        too_long = "too long" in str(context["reason"])
        return "must be at most 254 characters" if too_long else EMAIL_WANTED
    if isinstance(context.get("error"), ValueError):  # the form's own validators say it in its words
        return str(context["error"])
    return "is not valid"


def _announce(subscriber: Subscriber) -> None:
    """Tell the seller's product who the buyer is. The registration is stored whatever happens here: a
    buyer is never turned away because the event bus hiccupped (an alarm watches the metric instead)."""
    settings = onboarding().settings
    if not settings.seller_bus:
        return
    try:
        seller_events().publish(REGISTERED_EVENT, registered_detail(settings, subscriber))
    except StoreUnavailable as error:
        metrics.add_metric(name="SellerEventsUnsent", unit=MetricUnit.Count, value=1)
        logger.warning("subscriber.registered not published", extra={"reason": str(error)})


@app.post("/api/register")
def register(request: Request) -> Response:
    # A form post gets HTML answers, whatever is wrong with it (even a form that cannot be parsed).
    as_form = media_type(request.headers.get("content-type")) == FORM
    foreign = _foreign_origin(request)
    if foreign is not None:
        metrics.add_metric(name="RegistrationFailures", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="RegistrationRejectedCrossSite", unit=MetricUnit.Count, value=1)
        logger.warning("cross-site registration refused", extra={"origin": foreign})
        message = (
            f"This registration was sent from {foreign}, not from this product's own page: register on the "
            "page AWS Marketplace sent you to."
        )
        if as_form:
            return html_response(HTTPStatus.FORBIDDEN, pages.page("We could not register you", message))
        return error_response(HTTPStatus.FORBIDDEN, "cross_site_request", message)
    try:
        data, as_form = _parse_body(request)
        form = _validate(data)
        created, subscriber = onboarding().register(_session(request), form)
    except BadRequest as problem:
        metrics.add_metric(name="RegistrationFailures", unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name=f"RegistrationRejected{problem.code.title().replace('_', '')}",
            unit=MetricUnit.Count,
            value=1,
        )
        if as_form:
            if problem.fields:
                labelled = {FIELD_LABELS.get(name, name): text for name, text in problem.fields.items()}
                return html_response(problem.status, pages.field_errors("Please check the form", labelled))
            return html_response(
                problem.status, pages.page("We could not register you", problem.message, link=("/", "Back"))
            )
        extra = {"fields": problem.fields} if problem.fields else {}
        return error_response(problem.status, problem.code, problem.message, **extra)
    except NoPendingRegistration:
        if as_form:
            return html_response(
                HTTPStatus.UNAUTHORIZED, pages.page("Your set-up link has expired", pages.START_AGAIN)
            )
        raise
    status = HTTPStatus.CREATED if created else HTTPStatus.OK
    if created:
        metrics.add_metric(name="Registrations", unit=MetricUnit.Count, value=1)
        logger.info("buyer registered", extra={"contactEmail": mask_email(subscriber.contact_email)})
        _announce(subscriber)
    if as_form:
        return html_response(
            status,
            pages.page(
                "You are registered",
                f"Thank you. {subscriber.company_name} is registered; we will contact "
                f"{subscriber.contact_email} when your account is ready.",
            ),
        )
    return json_response(status, _registered_body(subscriber))


@app.on_error(NoPendingRegistration)
def no_registration(_: Request, __: Exception) -> Response:
    metrics.add_metric(name="RegistrationFailures", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RegistrationRejectedNoSession", unit=MetricUnit.Count, value=1)
    return error_response(
        HTTPStatus.UNAUTHORIZED,
        "no_registration",
        "There is no registration in progress in this browser. Start again from AWS Marketplace: open the "
        "product's page and choose the set-up button.",
    )


@app.on_error(RegisteredWithOtherDetails)
def registered_differently(_: Request, __: Exception) -> Response:
    return error_response(
        HTTPStatus.CONFLICT,
        "already_registered",
        "This AWS account is already registered for this product with other contact details. "
        "Contact support to change them.",
    )


@app.on_error(MarketplaceUnavailable, StoreUnavailable, BotoCoreError)  # BotoCoreError: out of time
def unavailable(_: Request, error: Exception) -> Response:
    logger.warning("registration unavailable", extra={"cause": str(error)})
    metrics.add_metric(name="RegistrationFailures", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RegistrationUnavailable", unit=MetricUnit.Count, value=1)
    return error_response(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "unavailable",
        "The service is busy; please try again in a minute.",
        headers={"Retry-After": "30"},
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with deadline.invocation(context):  # every AWS call ends in time to answer
        return app.resolve(event)
