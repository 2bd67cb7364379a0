"""A product's dimensions have types (ExternallyMetered and/or Entitled, as the Catalog API's AddDimensions
sets them): only ExternallyMetered dimensions can be metered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.emulator.conftest import Emulator


def meter(metering: Any, buyer: dict[str, Any], dimension: str) -> Any:
    return metering.batch_meter_usage(
        UsageRecords=[
            {
                "Timestamp": datetime.now(UTC) - timedelta(minutes=3),
                "CustomerAWSAccountId": buyer["customerAWSAccountId"],
                "LicenseArn": buyer["licenseArn"],
                "Dimension": dimension,
                "QuantityAsDecimal": "1",
            }
        ]
    )


@pytest.mark.parametrize(
    ("pricing_model", "types"),
    [
        ("subscription", ["ExternallyMetered"]),
        ("contract", ["Entitled"]),
        ("contract-with-consumption", ["ExternallyMetered", "Entitled"]),
    ],
)
def test_types_default_by_pricing_model(emulator: Emulator, pricing_model: str, types: list[str]) -> None:
    product = emulator.product("P", ("users",), pricingModel=pricing_model)
    assert product["dimensions"] == [{"name": "users", "types": types}]


def test_names_and_typed_dimensions_can_be_mixed(emulator: Emulator) -> None:
    product = emulator.product(
        "P", ("users", {"name": "seats", "types": ["Entitled", "ExternallyMetered"]}, {"name": "gb"})
    )
    assert product["dimensions"] == [
        {"name": "users", "types": ["ExternallyMetered"]},
        {"name": "seats", "types": ["ExternallyMetered", "Entitled"]},
        {"name": "gb", "types": ["ExternallyMetered"]},
    ]


def test_an_entitled_only_dimension_is_not_metered(emulator: Emulator, metering: Any) -> None:
    emulator.product("P", ("users", {"name": "seats", "types": ["Entitled"]}))
    buyer = emulator.subscribe("P")
    assert meter(metering, buyer, "users")["Results"][0]["Status"] == "Success"
    with pytest.raises(metering.exceptions.InvalidUsageDimensionException) as refused:
        meter(metering, buyer, "seats")
    assert "not ExternallyMetered" in str(refused.value)


def test_a_pure_contract_is_not_metered(emulator: Emulator, metering: Any) -> None:
    emulator.product("C", ("seats",), pricingModel="contract")
    buyer = emulator.subscribe("C")
    with pytest.raises(metering.exceptions.InvalidUsageDimensionException):
        meter(metering, buyer, "seats")
    assert emulator.billed("C") == []


def test_a_contract_with_consumption_meters_its_dimensions(emulator: Emulator, metering: Any) -> None:
    emulator.product("CC", ("seats",), pricingModel="contract-with-consumption")
    buyer = emulator.subscribe("CC")
    assert meter(metering, buyer, "seats")["Results"][0]["Status"] == "Success"


def test_a_listing_without_dimensions_onboards_but_meters_nothing(emulator: Emulator, metering: Any) -> None:
    emulator.product("EMPTY", ())
    status, body = emulator.admin("POST", "/_emulator/products", {"productCode": "ALSO_EMPTY"})
    assert status == 201 and body["dimensions"] == []
    buyer = emulator.subscribe("EMPTY")
    assert metering.resolve_customer(RegistrationToken=buyer["token"])["ProductCode"] == "EMPTY"
    with pytest.raises(metering.exceptions.InvalidUsageDimensionException) as refused:
        meter(metering, buyer, "users")
    assert "its dimensions: none" in str(refused.value)
