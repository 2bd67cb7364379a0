"""The config fits the AWS Marketplace Catalog API's rules, so a sync is never refused by AWS for its form."""

from __future__ import annotations

import pytest

from stacks.config import DIMENSION_UNITS, parse_config
from tests.unit.test_config import config, listing, only_problem


@pytest.mark.parametrize("unit", DIMENSION_UNITS)
def test_every_unit_aws_offers_is_accepted(unit: str) -> None:
    item = parse_config(config(listing(dimensions=[{"name": "u", "description": "d", "unit": unit}])))
    assert item.marketplace_listings["ai-skills"].dimensions[0].unit == unit


@pytest.mark.parametrize("unit", ["Learners", "Hours", "users", ""])
def test_a_unit_aws_does_not_offer_is_refused_naming_the_field(unit: str) -> None:
    message = only_problem(config(listing(dimensions=[{"name": "u", "description": "d", "unit": unit}])))
    assert message.startswith("marketplaceListings.ai-skills.dimensions[0].unit: ")
    assert "HostHrs" in message and repr(unit) in message


def test_the_listing_name_is_the_catalog_title_of_at_most_72_characters() -> None:
    assert parse_config(config(listing(name="x" * 72)))
    message = only_problem(config(listing(name="x" * 73)))
    assert message.startswith("marketplaceListings.ai-skills.name: ") and "72" in message


def test_entity_id_is_optional_and_has_the_catalog_form() -> None:
    plain = parse_config(config(listing())).marketplace_listings["ai-skills"]
    assert plain.entity_id is None
    given = parse_config(config(listing(entityId="prod-abc123def456"))).marketplace_listings["ai-skills"]
    assert given.entity_id == "prod-abc123def456"
    message = only_problem(config(listing(entityId="prod abc")))
    assert message.startswith("marketplaceListings.ai-skills.entityId: ") and "prod-" in message


def test_a_dimension_display_name_defaults_to_its_api_name() -> None:
    dimensions = [
        {"name": "users", "description": "d"},
        {"name": "seats", "description": "d", "displayName": "Seats"},
    ]
    loaded = parse_config(config(listing(dimensions=dimensions))).marketplace_listings["ai-skills"]
    assert [item.catalog_name for item in loaded.dimensions] == ["users", "Seats"]
