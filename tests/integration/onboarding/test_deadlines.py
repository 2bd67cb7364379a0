"""A slow AWS Marketplace or DynamoDB never outlasts the function: the buyer (or the seller's product) gets
the documented 503 before the invocation's deadline, however little of it is left."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from handlers import fulfillment, registration, usage
from marketplace_saas import wiring
from tests.integration.conftest import CONTRACT_PRODUCT, PRODUCT
from tests.integration.emulator.conftest import Emulator
from tests.integration.onboarding.test_with_emulator import (  # noqa: F401 - fixtures
    DETAILS,
    deployed,
    deployed_contract,
    fulfil,
    servers,
    subscribers,
)
from tests.support.events import (
    ShortLambdaContext,
    api_event,
    fulfillment_post,
    register_post,
    session_cookie,
)

SLOW_MS = 9000  # ResolveCustomer answering after 9 s: longer than what is left of any invocation below


def test_a_slow_resolve_customer_gets_the_503_page_before_the_deadline(deployed: Emulator) -> None:  # noqa: F811
    minted = deployed.subscribe(PRODUCT)
    deployed.admin("POST", "/_emulator/faults", {"latencyMs": SLOW_MS})
    context = ShortLambdaContext(seconds=4)
    response = fulfillment.handler(fulfillment_post(minted["token"]), context)
    assert response["statusCode"] == 503
    assert "We could not complete the set-up just now" in response["body"]
    assert context.get_remaining_time_in_millis() > 0  # answered before the function would have timed out
    deployed.admin("POST", "/_emulator/faults", {"latencyMs": 0})


def test_a_slow_get_entitlements_gets_a_503_before_the_deadline_and_registers_nothing(
    deployed_contract: Emulator,  # noqa: F811
) -> None:
    minted = deployed_contract.subscribe(CONTRACT_PRODUCT, entitlements=[{"dimension": "seats", "value": 5}])
    cookie = session_cookie(fulfil(minted["token"]))
    deployed_contract.admin("POST", "/_emulator/faults", {"latencyMs": SLOW_MS})
    context = ShortLambdaContext(seconds=4)
    response = registration.handler(register_post(DETAILS, cookie), context)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "unavailable"
    assert context.get_remaining_time_in_millis() > 0
    deployed_contract.admin("POST", "/_emulator/faults", {"latencyMs": 0})
    assert subscribers() == []


def test_with_time_to_spare_a_throttled_call_is_still_retried(deployed: Emulator) -> None:  # noqa: F811
    minted = deployed.subscribe(PRODUCT)
    deployed.admin("POST", "/_emulator/faults", {"throttleCalls": [1]})
    assert (
        fulfillment.handler(fulfillment_post(minted["token"]), ShortLambdaContext(seconds=14))["statusCode"]
        == 303
    )


@pytest.fixture
def silent_dynamodb(deployed: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # noqa: F811
    """DynamoDB that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{listener.getsockname()[1]}")
        wiring.use(None)
        yield
        wiring.use(None)


def test_a_silent_dynamodb_gets_the_usage_api_a_503_before_the_deadline(silent_dynamodb: None) -> None:
    context = ShortLambdaContext(seconds=3)
    body = json.dumps({"customerAWSAccountId": "123456789012", "dimension": "users", "quantity": 1})
    response = usage.handler(
        api_event("POST", "/api/usage", body=body, content_type="application/json"), context
    )
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "unavailable"
    assert context.get_remaining_time_in_millis() > 0


def test_a_silent_dynamodb_gets_the_buyer_the_503_page_before_the_deadline(
    deployed: Emulator,  # noqa: F811
    silent_dynamodb: None,
) -> None:
    minted = deployed.subscribe(PRODUCT)
    context = ShortLambdaContext(seconds=3)
    response = fulfillment.handler(fulfillment_post(minted["token"]), context)
    assert response["statusCode"] == 503
    assert context.get_remaining_time_in_millis() > 0
