"""GetEntitlements over both protocols, fault injection, and the admin API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import cbor2
import pytest
from botocore.config import Config

from tests.integration.emulator.conftest import Emulator

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def contract_buyers(emulator: Emulator) -> list[dict[str, Any]]:
    emulator.product("CONTRACT", ("seats", "tier"), pricingModel="contract")
    many = [{"dimension": "seats", "value": n} for n in range(30)]
    return [
        emulator.subscribe("CONTRACT", customerAWSAccountId="111122223333", entitlements=many),
        emulator.subscribe(
            "CONTRACT",
            customerAWSAccountId="444455556666",
            entitlements=[{"dimension": "tier", "value": "gold"}],
        ),
    ]


@pytest.mark.parametrize("protocol", ["json", "smithy-rpc-v2-cbor"])
def test_entitlements_by_account_are_paginated_over_both_protocols(
    request: pytest.FixtureRequest, emulator: Emulator, contract_buyers: list[dict[str, Any]], protocol: str
) -> None:
    # boto3 picks AWS JSON 1.1 (first in botocore's priority list); others rpc-v2-cbor (the model's first).
    client = request.getfixturevalue("entitlement" if protocol == "json" else "cbor_entitlement")
    assert client.meta.service_model.resolved_protocol == protocol
    pages = list(
        client.get_paginator("get_entitlements").paginate(
            ProductCode="CONTRACT", Filter={"CUSTOMER_AWS_ACCOUNT_ID": ["111122223333"]}
        )
    )
    assert len(pages) == 2
    values = [item["Value"]["IntegerValue"] for page in pages for item in page["Entitlements"]]
    assert values == list(range(30))
    assert {call.protocol for call in emulator.server.calls} == {protocol}


def test_entitlements_by_customer_identifier(
    emulator: Emulator, entitlement: Any, contract_buyers: list[dict[str, Any]]
) -> None:
    identifier = next(
        s["customerIdentifier"]
        for s in emulator.admin("GET", "/_emulator/subscriptions?productCode=CONTRACT")[1]["subscriptions"]
        if s["customerAWSAccountId"] == "444455556666"
    )
    result = entitlement.get_entitlements(
        ProductCode="CONTRACT", Filter={"CUSTOMER_IDENTIFIER": [identifier]}
    )
    (only,) = result["Entitlements"]
    assert only["Value"] == {"StringValue": "gold"}
    assert only["CustomerAWSAccountId"] == "444455556666"


def test_entitlements_also_speak_aws_json(emulator: Emulator, contract_buyers: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(  # noqa: S310
        emulator.url,
        data=json.dumps(
            {"ProductCode": "CONTRACT", "Filter": {"CUSTOMER_AWS_ACCOUNT_ID": ["444455556666"]}}
        ).encode(),
        headers={
            "X-Amz-Target": "AWSMPEntitlementService.GetEntitlements",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        body = json.loads(response.read())
    assert body["Entitlements"][0]["Value"] == {"StringValue": "gold"}


def test_cbor_errors_carry_the_modeled_type(emulator: Emulator, cbor_entitlement: Any) -> None:
    with pytest.raises(cbor_entitlement.exceptions.InvalidParameterException):
        cbor_entitlement.get_entitlements(ProductCode="NOPE", MaxResults=50)
    assert [(call.protocol, call.status) for call in emulator.server.calls] == [("smithy-rpc-v2-cbor", 400)]


def test_an_unknown_product_is_an_invalid_parameter(emulator: Emulator, entitlement: Any) -> None:
    # GetEntitlements declares no InvalidProductCodeException: InvalidParameterException is its client error.
    with pytest.raises(entitlement.exceptions.InvalidParameterException) as refused:
        entitlement.get_entitlements(ProductCode="NOPE")
    assert "NOPE" in str(refused.value)


@pytest.mark.parametrize("max_results", [0, 26])
def test_max_results_outside_1_to_25_is_an_invalid_parameter(
    emulator: Emulator, contract_buyers: list[dict[str, Any]], max_results: int
) -> None:
    # botocore itself would refuse 0 (min 1); the emulator must too, for SDKs that do not check.
    unchecked = boto3.client("marketplace-entitlement", config=Config(parameter_validation=False))
    with pytest.raises(unchecked.exceptions.InvalidParameterException) as refused:
        unchecked.get_entitlements(ProductCode="CONTRACT", MaxResults=max_results)
    assert "MaxResults" in str(refused.value)


def test_entitlements_by_license_arn_under_concurrent_agreements(
    emulator: Emulator, entitlement: Any
) -> None:
    emulator.product("CONTRACT", ("seats",), pricingModel="contract")
    first = emulator.subscribe(
        "CONTRACT", customerAWSAccountId="111122223333", entitlements=[{"dimension": "seats", "value": 10}]
    )
    second = emulator.subscribe(
        "CONTRACT",
        customerAWSAccountId="111122223333",
        newAgreement=True,
        entitlements=[{"dimension": "seats", "value": 50}],
    )
    by_account = entitlement.get_entitlements(
        ProductCode="CONTRACT", Filter={"CUSTOMER_AWS_ACCOUNT_ID": ["111122223333"]}
    )["Entitlements"]
    assert sorted(item["Value"]["IntegerValue"] for item in by_account) == [10, 50]
    for buyer, seats in ((first, 10), (second, 50)):
        (only,) = entitlement.get_entitlements(
            ProductCode="CONTRACT", Filter={"LICENSE_ARN": [buyer["licenseArn"]]}
        )["Entitlements"]
        assert only["LicenseArn"] == buyer["licenseArn"] and only["Value"] == {"IntegerValue": seats}
    assert (
        entitlement.get_entitlements(
            ProductCode="CONTRACT",
            Filter={"LICENSE_ARN": [first["licenseArn"]], "DIMENSION": ["other"]},
        )["Entitlements"]
        == []
    )


def test_each_license_keeps_its_own_entitlements(emulator: Emulator, entitlement: Any) -> None:
    emulator.product("CONTRACT", ("seats",), pricingModel="contract")
    first = emulator.subscribe(
        "CONTRACT", customerAWSAccountId="111122223333", entitlements=[{"dimension": "seats", "value": 10}]
    )
    second = emulator.subscribe(
        "CONTRACT",
        customerAWSAccountId="111122223333",
        newAgreement=True,
        entitlements=[{"dimension": "seats", "value": 50}],
    )

    def seats(license_arn: str) -> list[int]:
        found = entitlement.get_entitlements(ProductCode="CONTRACT", Filter={"LICENSE_ARN": [license_arn]})
        assert all(item["LicenseArn"] == license_arn for item in found["Entitlements"])
        return [item["Value"]["IntegerValue"] for item in found["Entitlements"]]

    # Subscribing again without newAgreement changes the account's newest license only.
    emulator.subscribe(
        "CONTRACT", customerAWSAccountId="111122223333", entitlements=[{"dimension": "seats", "value": 75}]
    )
    assert (seats(first["licenseArn"]), seats(second["licenseArn"])) == ([10], [75])
    # A renewal keeps the license's entitlements; a cancelled license has none, the other keeps its own.
    assert emulator.event("renew", "CONTRACT", licenseArn=first["licenseArn"])[0] == 200
    assert seats(first["licenseArn"]) == [10]
    status, _ = emulator.event(
        "unsubscribe-success", "CONTRACT", licenseArn=second["licenseArn"], endedToDeprovisionedSeconds=0
    )
    assert status == 200
    assert (seats(first["licenseArn"]), seats(second["licenseArn"])) == ([10], [])
    by_account = entitlement.get_entitlements(
        ProductCode="CONTRACT", Filter={"CUSTOMER_AWS_ACCOUNT_ID": ["111122223333"]}
    )["Entitlements"]
    assert [(item["LicenseArn"], item["Value"]) for item in by_account] == [
        (first["licenseArn"], {"IntegerValue": 10})
    ]


def test_raw_cbor_requests_get_cbor_answers(
    emulator: Emulator, contract_buyers: list[dict[str, Any]]
) -> None:
    request = urllib.request.Request(  # noqa: S310
        f"{emulator.url}/service/AWSMPEntitlementService/operation/GetEntitlements",
        data=cbor2.dumps({"ProductCode": "CONTRACT", "MaxResults": 5}),
        headers={"Smithy-Protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Authorization": "x"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert response.headers["Smithy-Protocol"] == "rpc-v2-cbor"
        body = cbor2.loads(response.read())
    assert len(body["Entitlements"]) == 5 and body["NextToken"]


def test_a_throttled_call_is_retried_by_botocore_standard_mode(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    emulator.product()
    buyer = emulator.subscribe()
    emulator.admin("POST", "/_emulator/faults", {"throttleCalls": [1, 2]})
    client = boto3.client(
        "meteringmarketplace", config=Config(retries={"mode": "standard", "max_attempts": 3})
    )
    result = client.resolve_customer(RegistrationToken=buyer["token"])
    assert result["ProductCode"] == "PROD"
    assert result["ResponseMetadata"]["RetryAttempts"] == 2


def test_a_throttled_call_without_retries_raises_throttling(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyer = emulator.subscribe()
    emulator.admin("POST", "/_emulator/faults", {"throttleEvery": 1})
    with pytest.raises(metering.exceptions.ThrottlingException):
        metering.resolve_customer(RegistrationToken=buyer["token"])


def test_a_share_of_records_comes_back_unprocessed(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyers = [emulator.subscribe() for _ in range(10)]
    emulator.admin("POST", "/_emulator/faults", {"unprocessedShare": 0.3})
    now = datetime.now(UTC) - timedelta(minutes=1)
    records = [
        {
            "Timestamp": now,
            "CustomerAWSAccountId": b["customerAWSAccountId"],
            "LicenseArn": b["licenseArn"],
            "Dimension": "users",
            "Quantity": 1,
        }
        for b in buyers
    ]
    result = metering.batch_meter_usage(UsageRecords=records)
    assert len(result["Results"]) == 7 and len(result["UnprocessedRecords"]) == 3
    assert len(emulator.billed()) == 7


def test_latency_is_added(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyer = emulator.subscribe()
    emulator.admin("POST", "/_emulator/faults", {"latencyMs": 300})
    started = time.monotonic()
    metering.resolve_customer(RegistrationToken=buyer["token"])
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/_emulator/products", {"dimensions": ["a"]}, "productCode"),
        ("/_emulator/products", {"productCode": "X", "dimensions": "users"}, "dimensions"),
        (
            "/_emulator/products",
            {"productCode": "X", "dimensions": [{"name": "a", "types": ["Metered"]}]},
            "types",
        ),
        ("/_emulator/products", {"productCode": "X", "dimensions": [{"name": "a", "types": []}]}, "types"),
        ("/_emulator/products", {"productCode": "X", "dimensions": ["a", {"name": "a"}]}, "twice"),
        ("/_emulator/products", {"productCode": "X", "dimensions": [{"types": ["Entitled"]}]}, "name"),
        (
            "/_emulator/products",
            {"productCode": "X", "dimensions": ["a"], "pricingModel": "free"},
            "pricingModel",
        ),
        ("/_emulator/subscriptions", {"productCode": "MISSING"}, "no product"),
        ("/_emulator/subscriptions", {"productCode": "PROD", "customerAWSAccountId": "12"}, "12 digits"),
        ("/_emulator/subscriptions", {"productCode": "PROD", "newAgreement": "yes"}, "newAgreement"),
        (
            "/_emulator/events",
            {"productCode": "PROD", "customerAWSAccountId": "123456789012", "type": "explode"},
            "type",
        ),
        ("/_emulator/events", {"productCode": "PROD", "type": "subscribe-success"}, "customerAWSAccountId"),
        (
            "/_emulator/events",
            {"productCode": "PROD", "customerAWSAccountId": "123456789012", "type": "subscribe-fail"},
            "no subscription",
        ),
        (
            "/_emulator/events",
            {
                "productCode": "PROD",
                "licenseArn": "arn:aws:license-manager::1:license:l-0",
                "type": "subscribe-fail",
            },
            "no license",
        ),
        ("/_emulator/faults", {"unprocessedShare": 2}, "between 0 and 1"),
        ("/_emulator/faults", {"throttleEvery": "often"}, "ValueError"),
        ("/_emulator/nothing", {}, "no admin route"),
    ],
)
def test_bad_admin_requests_get_a_clear_4xx(
    emulator: Emulator, path: str, body: dict[str, Any], says: str
) -> None:
    emulator.product()
    status, answer = emulator.admin("POST", path, body)
    assert 400 <= status < 500
    assert says in answer["message"]


def test_reset_forgets_everything(emulator: Emulator) -> None:
    emulator.product()
    emulator.subscribe()
    assert emulator.admin("POST", "/_emulator/reset", {})[0] == 200
    assert emulator.admin("GET", "/_emulator/subscriptions")[1]["subscriptions"] == []


def test_runs_standalone_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "marketplace-config.json"
    config.write_text(
        json.dumps(
            {
                "marketplaceListings": {
                    "a": {"productCode": "SEEDED", "enabled": True, "dimensions": [{"name": "users"}]},
                    # A listing that declares no dimensions (yet) is seeded too.
                    "b": {"productCode": "NO_DIMENSIONS", "enabled": True},
                    "c": {"productCode": "OFF", "enabled": False},
                }
            }
        )
    )
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "local.marketplace_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            str(config),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "seeded 2 product" in process.stdout.readline()
        url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/_emulator/health", timeout=5) as response:  # noqa: S310
            assert json.loads(response.read()) == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
