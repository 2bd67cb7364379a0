"""ResolveCustomer: minted tokens resolve to the buyer's identity; bad and old tokens get AWS's errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.emulator.conftest import Emulator


def test_a_minted_token_resolves_to_account_product_and_license(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyer = emulator.subscribe(customerAWSAccountId="123456789012")
    result = metering.resolve_customer(RegistrationToken=buyer["token"])
    assert result["CustomerAWSAccountId"] == "123456789012"
    assert result["ProductCode"] == "PROD"
    assert result["LicenseArn"] == buyer["licenseArn"]
    assert "CustomerIdentifier" not in result  # not populated for new SaaS integrations


def test_legacy_products_also_return_the_customer_identifier(emulator: Emulator, metering: Any) -> None:
    emulator.product(legacy=True)
    buyer = emulator.subscribe()
    result = metering.resolve_customer(RegistrationToken=buyer["token"])
    assert result["CustomerIdentifier"] == buyer["customerIdentifier"]


def test_an_unknown_token_is_invalid(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    with pytest.raises(metering.exceptions.InvalidTokenException):
        metering.resolve_customer(RegistrationToken="made-up")


def test_a_token_past_its_lifetime_has_expired(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    buyer = emulator.subscribe()
    emulator.shift_clock(3600)
    with pytest.raises(metering.exceptions.ExpiredTokenException):
        metering.resolve_customer(RegistrationToken=buyer["token"])


def test_tokens_are_opaque_and_unique(emulator: Emulator) -> None:
    emulator.product()
    tokens = {emulator.subscribe()["token"] for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(token) >= 22 and "PROD" not in token for token in tokens)


def test_opening_the_product_again_keeps_the_same_identity(emulator: Emulator, metering: Any) -> None:
    emulator.product()
    first = emulator.subscribe(customerAWSAccountId="123456789012")
    again = emulator.subscribe(customerAWSAccountId="123456789012")
    assert first["token"] != again["token"]
    assert metering.resolve_customer(RegistrationToken=again["token"])["LicenseArn"] == first["licenseArn"]


def test_requests_without_a_signature_are_refused(emulator: Emulator) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310
        emulator.url,
        data=b'{"RegistrationToken": "x"}',
        headers={
            "X-Amz-Target": "AWSMPMeteringService.ResolveCustomer",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    assert refused.value.code == 403
