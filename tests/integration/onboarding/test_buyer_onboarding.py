"""A buyer's way from AWS Marketplace to one subscriber item, through the real handlers."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import DynamoDBBackend

from handlers import fulfillment, registration
from marketplace_saas.marketplace import MarketplaceUnavailable, TokenRejected
from marketplace_saas.models import license_id
from marketplace_saas.onboarding import PENDING_REGISTRATION_SECONDS
from marketplace_saas.settings import listing_settings
from tests.integration.conftest import CONTRACT_PRODUCT
from tests.integration.onboarding.conftest import Listing
from tests.support.events import (
    FakeLambdaContext,
    fulfillment_post,
    header,
    register_post,
    registration_get,
    session_cookie,
    set_cookies,
)

CONTEXT = FakeLambdaContext()
DETAILS = {
    "companyName": "Acme Learning Ltd",
    "contactPerson": "Jane Doe",
    "contactEmail": "jane.doe@example.com",
    "contactPhone": "+44 20 7946 0958",
}


def arrive(listing: Listing, token: str = "tok-valid", **buyer: Any) -> str:
    listing.marketplace.buyer(token, **buyer)
    response = fulfillment.handler(fulfillment_post(token), CONTEXT)
    assert response["statusCode"] == 303, response
    return session_cookie(response)


def body(response: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response["body"])
    return parsed


def test_fulfillment_resolves_the_token_and_hands_the_browser_only_a_session_cookie(onboard: Listing) -> None:
    onboard.marketplace.buyer("tok-secret-123")
    response = fulfillment.handler(fulfillment_post("tok-secret-123", "free-trial"), CONTEXT)

    assert response["statusCode"] == 303
    assert header(response, "Location") == "/"
    (cookie,) = set_cookies(response)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith("__Host-registration=")
    assert {"path", "secure", "httponly", "samesite", "max-age"} <= attributes
    assert "SameSite=Lax" in cookie and f"Max-Age={PENDING_REGISTRATION_SECONDS}" in cookie
    registration_id = cookie.split(";")[0].split("=", 1)[1]
    assert len(registration_id) >= 22  # at least 128 random bits, URL-safe base64

    # The token goes no further: not in the response, not in the table; the table holds only a hash of the id
    assert "tok-secret-123" not in json.dumps(response)
    (pending,) = onboard.pending
    assert "tok-secret-123" not in json.dumps(pending, default=str)
    assert registration_id not in json.dumps(pending, default=str)
    assert pending["customerAWSAccountId"] == "111122223333"
    assert pending["offerType"] == "free-trial"
    assert int(pending["expiresAt"]) == int(onboard.clock[0]) + PENDING_REGISTRATION_SECONDS


def test_the_token_never_reaches_the_logs(onboard: Listing, capsys: pytest.CaptureFixture[str]) -> None:
    onboard.marketplace.buyer("tok-must-not-be-logged")
    fulfillment.handler(fulfillment_post("tok-must-not-be-logged"), CONTEXT)
    onboard.marketplace.fail("tok-bad-must-not-be-logged", TokenRejected("expired"))
    fulfillment.handler(fulfillment_post("tok-bad-must-not-be-logged"), CONTEXT)
    output = capsys.readouterr()
    assert "must-not-be-logged" not in output.out + output.err


def test_the_page_learns_the_session_state_without_seeing_the_cookie(onboard: Listing) -> None:
    cookie = arrive(onboard)
    response = registration.handler(registration_get(cookie), CONTEXT)
    assert response["statusCode"] == 200
    assert body(response) == {"state": "unregistered", "offerType": None}


def test_registration_stores_one_subscriber_with_the_seed_attribute_names(onboard: Listing) -> None:
    cookie = arrive(onboard)
    response = registration.handler(register_post(DETAILS, cookie), CONTEXT)

    assert response["statusCode"] == 201
    assert body(response)["state"] == "registered"
    assert body(response)["subscriber"]["companyName"] == "Acme Learning Ltd"
    (item,) = onboard.subscribers
    assert item["customerAWSAccountId"] == "111122223333"
    # The sort key is the license id: events about the license (which name it) find the subscriber.
    assert item["subscriptionKey"] == license_id(item["licenseArn"]) == item["licenseArn"].rsplit(":", 1)[1]
    assert item["productCode"] == "PROD_ONBOARD"
    assert {key: item[key] for key in DETAILS} == DETAILS
    assert datetime.fromisoformat(item["registrationDate"]).utcoffset() is not None
    assert item["status"] == "pending"
    assert item["freeTrial"] is False

    again = registration.handler(registration_get(cookie), CONTEXT)
    assert body(again)["state"] == "registered"
    assert body(again)["subscriber"]["status"] == "pending"


def test_repeated_registration_is_idempotent_and_conflicting_details_are_refused(onboard: Listing) -> None:
    cookie = arrive(onboard)
    first = registration.handler(register_post(DETAILS, cookie), CONTEXT)
    second = registration.handler(register_post(DETAILS, cookie), CONTEXT)
    assert (first["statusCode"], second["statusCode"]) == (201, 200)
    assert body(first) == body(second)

    # The same buyer opening the product again from Marketplace gets a new session but the same identity
    other_session = arrive(onboard, token="tok-again")
    changed = registration.handler(
        register_post({**DETAILS, "contactPerson": "John Roe"}, other_session), CONTEXT
    )
    assert changed["statusCode"] == 409
    assert body(changed)["error"] == "already_registered"
    (item,) = onboard.subscribers
    assert item["contactPerson"] == "Jane Doe"


@pytest.fixture
def atomic_item_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies a conditional write to an item atomically; moto's in-memory backend does not
    under threads. Serializing its writes restores the real guarantee the code relies on (and nothing more:
    the reads, and the code between read and write, still interleave freely)."""
    lock = threading.Lock()
    for name in ("update_item", "put_item"):
        original = getattr(DynamoDBBackend, name)

        def atomic(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, atomic)


@pytest.mark.usefixtures("atomic_item_writes")
def test_twenty_concurrent_duplicate_registrations_leave_exactly_one_item(onboard: Listing) -> None:
    cookie = arrive(onboard)
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(
            pool.map(lambda _: registration.handler(register_post(DETAILS, cookie), CONTEXT), range(20))
        )
    statuses = sorted(response["statusCode"] for response in responses)
    assert statuses == [200] * 19 + [201]
    assert len({json.dumps(body(r), sort_keys=True) for r in responses}) == 1
    assert len(onboard.subscribers) == 1


def test_a_plain_form_post_works_without_javascript_and_escapes_what_it_shows(onboard: Listing) -> None:
    cookie = arrive(onboard)
    fields = {**DETAILS, "companyName": "<script>alert(1)</script> & Co"}
    from urllib.parse import urlencode

    response = registration.handler(
        register_post(urlencode(fields), cookie, content_type="application/x-www-form-urlencoded"), CONTEXT
    )
    assert response["statusCode"] == 201
    assert header(response, "Content-Type").startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in response["body"]
    assert "<script>" not in response["body"]
    (item,) = onboard.subscribers
    assert item["companyName"] == "<script>alert(1)</script> & Co"  # stored as given


def test_contract_registration_stores_every_page_of_entitlements(contract: Listing) -> None:
    contract.marketplace.entitlement_pages = [
        [{"dimension": "seats", "value": 25}],
        [{"dimension": "premium", "value": True, "expirationDate": "2027-11-23T00:00:00+00:00"}],
    ]
    cookie = arrive(contract, product=CONTRACT_PRODUCT)
    response = registration.handler(register_post(DETAILS, cookie), CONTEXT)
    assert response["statusCode"] == 201
    (item,) = contract.subscribers
    assert item["entitlements"] == [
        {"dimension": "seats", "value": 25},
        {"dimension": "premium", "value": True, "expirationDate": "2027-11-23T00:00:00+00:00"},
    ]


def test_entitlements_outage_registers_nothing_and_says_retry(contract: Listing) -> None:
    cookie = arrive(contract, product=CONTRACT_PRODUCT)

    def unavailable(*_: Any, **__: Any) -> list[dict[str, Any]]:
        raise MarketplaceUnavailable("GetEntitlements failed: ThrottlingException")

    contract.marketplace.entitlements = unavailable  # type: ignore[method-assign]
    response = registration.handler(register_post(DETAILS, cookie), CONTEXT)
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "30"
    assert contract.subscribers == []


def test_a_session_expires_after_an_hour(onboard: Listing) -> None:
    cookie = arrive(onboard)
    onboard.clock[0] += PENDING_REGISTRATION_SECONDS
    response = registration.handler(register_post(DETAILS, cookie), CONTEXT)
    assert response["statusCode"] == 401
    assert "Start again from AWS Marketplace" in body(response)["message"]
    assert onboard.subscribers == []


def _listen_to_seller_bus() -> str:
    """The seller's product: a rule on the listing's bus that copies every event to its queue."""
    settings = listing_settings()
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=settings.seller_bus)
    url: str = sqs.create_queue(QueueName="seller-product")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = json.dumps({"source": [settings.seller_event_source]})
    events.put_rule(Name="product", EventBusName=settings.seller_bus, EventPattern=pattern)
    events.put_targets(Rule="product", EventBusName=settings.seller_bus, Targets=[{"Id": "q", "Arn": arn}])
    return url


def test_registration_tells_the_sellers_product_who_the_buyer_is(onboard: Listing) -> None:
    queue = _listen_to_seller_bus()
    cookie = arrive(onboard, "tok-announce", account="444455556666")
    assert registration.handler(register_post(DETAILS, cookie), CONTEXT)["statusCode"] == 201
    assert registration.handler(register_post(DETAILS, cookie), CONTEXT)["statusCode"] == 200  # a repeat

    messages = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    (event,) = [json.loads(message["Body"]) for message in messages]  # once, not for the repeat
    assert event["detail-type"] == "subscriber.registered"
    detail = event["detail"]
    assert detail["customerAWSAccountId"] == "444455556666"
    assert {key: detail[key] for key in DETAILS} == DETAILS
    assert (detail["status"], detail["registered"]) == ("pending", True)
    assert "tok-announce" not in json.dumps(event)


def test_a_bus_failure_never_turns_the_buyer_away(
    onboard: Listing, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # No bus exists here: PutEvents fails.
    cookie = arrive(onboard)
    response = registration.handler(register_post(DETAILS, cookie), CONTEXT)
    assert response["statusCode"] == 201
    assert len(onboard.subscribers) == 1
    assert "subscriber.registered not published" in caplog.messages
    assert '"SellerEventsUnsent":[1.0]' in capsys.readouterr().out  # the metric the alarm watches
