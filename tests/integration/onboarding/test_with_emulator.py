"""Onboarding over the wire: the handlers as deployed (wired from their environment alone), DynamoDB on
moto's server and AWS Marketplace played by the emulator, both on 127.0.0.1."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from handlers import fulfillment, registration
from local.marketplace_emulator import EmulatorServer
from local.stack_template import ListingTemplate
from marketplace_saas import wiring
from marketplace_saas.models import license_id
from marketplace_saas.settings import listing_settings
from tests.integration.conftest import CONTRACT_PRODUCT, PRODUCT
from tests.integration.emulator.conftest import Emulator
from tests.support.events import (
    FakeLambdaContext,
    fulfillment_post,
    register_post,
    registration_get,
    session_cookie,
)

CONTEXT = FakeLambdaContext()
DETAILS = {
    "companyName": "Acme Learning Ltd",
    "contactPerson": "Jane Doe",
    "contactEmail": "jane.doe@example.com",
    "contactPhone": "+1 555 010 2030",
}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, EmulatorServer]]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    with EmulatorServer() as emulator:
        yield f"http://{host}:{port}", emulator
    moto.stop()


def _deployed(
    template: ListingTemplate, servers: tuple[str, EmulatorServer], monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    moto_url, server = servers
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",  # a listing outside us-east-1
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": server.url,
        "AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE": server.url,
        **next(iter(template.functions.values())).environment,
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    dynamodb = boto3.client("dynamodb")
    for table in template.tables:
        name = table.create_request["TableName"]
        if name in dynamodb.list_tables()["TableNames"]:
            dynamodb.delete_table(TableName=name)
        dynamodb.create_table(**table.create_request)
    server.marketplace.reset()
    listing_settings.cache_clear()
    wiring.use(None)  # the handlers build their service from the environment, as in Lambda
    emulator = Emulator(server)
    emulator.product(PRODUCT, ("users",))
    emulator.product(CONTRACT_PRODUCT, ("seats",), pricingModel="contract")
    emulator.product("SOMEONE_ELSES", ("users",))
    return emulator


@pytest.fixture
def deployed(
    templates: dict[str, ListingTemplate], servers: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Emulator]:
    yield _deployed(templates["onboard"], servers, monkeypatch)
    wiring.use(None)
    listing_settings.cache_clear()


@pytest.fixture
def deployed_contract(
    templates: dict[str, ListingTemplate], servers: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Emulator]:
    yield _deployed(templates["contract"], servers, monkeypatch)
    wiring.use(None)
    listing_settings.cache_clear()


def fulfil(token: str, offer_type: str | None = None) -> dict[str, Any]:
    return fulfillment.handler(fulfillment_post(token, offer_type), CONTEXT)


def subscribers() -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(listing_settings().subscribers_table)
    return list(table.scan()["Items"])


def test_a_minted_token_becomes_one_subscriber_with_the_resolved_identity(deployed: Emulator) -> None:
    minted = deployed.subscribe(PRODUCT, customerAWSAccountId="210987654321", offerType="free-trial")
    arrived = fulfil(minted["token"], "free-trial")  # Marketplace posts the offer type beside the token
    assert arrived["statusCode"] == 303
    cookie = session_cookie(arrived)
    assert (
        json.loads(registration.handler(registration_get(cookie), CONTEXT)["body"])["offerType"]
        == "free-trial"
    )
    assert registration.handler(register_post(DETAILS, cookie), CONTEXT)["statusCode"] == 201
    (item,) = subscribers()
    assert item["customerAWSAccountId"] == "210987654321"
    assert item["licenseArn"] == minted["licenseArn"]
    assert item["subscriptionKey"] == license_id(minted["licenseArn"])
    assert item["freeTrial"] is True
    assert minted["token"] not in json.dumps(item, default=str)


def test_an_expired_token_is_refused(deployed: Emulator) -> None:
    minted = deployed.subscribe(PRODUCT)
    deployed.shift_clock(3601)
    response = fulfil(minted["token"])
    assert response["statusCode"] == 400
    assert "expired" in response["body"]


def test_a_token_of_another_product_is_refused(deployed: Emulator) -> None:
    response = fulfil(deployed.subscribe("SOMEONE_ELSES")["token"])
    assert response["statusCode"] == 403
    assert subscribers() == []


def test_marketplace_throttling_past_the_sdk_retries_is_a_503(deployed: Emulator) -> None:
    minted = deployed.subscribe(PRODUCT)
    deployed.admin("POST", "/_emulator/faults", {"throttleEvery": 1})
    response = fulfil(minted["token"])
    assert response["statusCode"] == 503
    assert deployed.server.marketplace.calls == 3  # the SDK's standard mode tried three times


def test_a_throttled_call_that_succeeds_on_retry_is_invisible_to_the_buyer(deployed: Emulator) -> None:
    minted = deployed.subscribe(PRODUCT)
    deployed.admin("POST", "/_emulator/faults", {"throttleCalls": [1]})
    assert fulfil(minted["token"])["statusCode"] == 303


def test_contract_entitlements_are_read_over_cbor_across_pages(deployed_contract: Emulator) -> None:
    entitlements = [{"dimension": "seats", "value": n} for n in range(30)]
    minted = deployed_contract.subscribe(CONTRACT_PRODUCT, entitlements=entitlements)
    cookie = session_cookie(fulfil(minted["token"]))
    assert registration.handler(register_post(DETAILS, cookie), CONTEXT)["statusCode"] == 201
    (item,) = subscribers()
    assert [entry["value"] for entry in item["entitlements"]] == list(range(30))


def _register(token: str) -> None:
    cookie = session_cookie(fulfil(token))
    assert registration.handler(register_post(DETAILS, cookie), CONTEXT)["statusCode"] == 201


def test_the_agreement_resolve_customer_names_is_kept_with_the_subscriber(deployed: Emulator) -> None:
    minted = deployed.subscribe(PRODUCT, customerAWSAccountId="210987654321")
    _register(minted["token"])
    (item,) = subscribers()
    assert item["agreementId"] == minted["agreementId"]  # ResolveCustomer's Metadata.AgreementId


def test_two_licenses_of_one_account_register_with_their_own_entitlements(
    deployed_contract: Emulator,
) -> None:
    account = "210987654321"
    first = deployed_contract.subscribe(
        CONTRACT_PRODUCT, customerAWSAccountId=account, entitlements=[{"dimension": "seats", "value": 5}]
    )
    second = deployed_contract.subscribe(
        CONTRACT_PRODUCT,
        customerAWSAccountId=account,
        newAgreement=True,
        entitlements=[{"dimension": "seats", "value": 50}],
    )
    _register(first["token"])
    _register(second["token"])
    by_license = {item["licenseArn"]: item for item in subscribers()}
    assert set(by_license) == {first["licenseArn"], second["licenseArn"]}
    assert [e["value"] for e in by_license[first["licenseArn"]]["entitlements"]] == [5]
    assert [e["value"] for e in by_license[second["licenseArn"]]["entitlements"]] == [50]
