"""The plan `--sync-listings` makes from a live listing and the config, change by change."""

from __future__ import annotations

from typing import Any

import pytest

from operations.sync_listings import SyncRefused, plan_listing
from stacks.config import Listing

URL = "https://d111.cloudfront.net/marketplace/fulfillment"


def listing(**changes: Any) -> Listing:
    return Listing.model_validate(
        {
            "name": "AI Skills",
            "description": "Learn AI.",
            "productCode": "PROD",
            "path": "ai-skills",
            "dimensions": [{"name": "users", "description": "Active users", "unit": "Users"}],
            **changes,
        }
    )


def live(dimensions: list[dict[str, Any]] | None = None, url: str | None = URL) -> dict[str, Any]:
    return {
        "Description": {"ProductTitle": "AI Skills", "ShortDescription": "Learn AI.", "ProductCode": "PROD"},
        "Dimensions": dimensions
        if dimensions is not None
        else [
            {
                "Key": "users",
                "Name": "users",
                "Description": "Active users",
                "Unit": "Users",
                "Types": ["ExternallyMetered"],
            }
        ],
        "DeliveryOptions": [] if url is None else [{"Id": "do-1", "Type": "SaaSUrl", "FulfillmentUrl": url}],
    }


def test_a_listing_that_matches_plans_nothing() -> None:
    plan = plan_listing("ai", listing(), "prod-1", live(), URL)
    assert plan.differences == [] and plan.changes() == [] and plan.notes == []


def test_only_the_changed_information_fields_are_sent() -> None:
    plan = plan_listing("ai", listing(description="Learn AI fast."), "prod-1", live(), URL)
    assert plan.changes() == [
        {
            "ChangeType": "UpdateInformation",
            "Entity": {"Type": "SaaSProduct@1.0", "Identifier": "prod-1"},
            "DetailsDocument": {"ShortDescription": "Learn AI fast."},
        }
    ]


def test_dimension_types_follow_the_pricing_model() -> None:
    plan = plan_listing("ai", listing(pricingModel="contract-with-consumption"), "prod-1", live([]), URL)
    (change,) = plan.changes()
    assert change["ChangeType"] == "AddDimensions"
    assert change["DetailsDocument"] == [
        {
            "Key": "users",
            "Name": "users",
            "Description": "Active users",
            "Unit": "Users",
            "Types": ["Entitled", "ExternallyMetered"],
        }
    ]


def test_a_new_display_name_is_one_update_dimensions_keeping_key_and_types() -> None:
    configured = listing(
        dimensions=[{"name": "users", "description": "Active users", "unit": "Users", "displayName": "Users"}]
    )
    (change,) = plan_listing("ai", configured, "prod-1", live(), URL).changes()
    assert change["ChangeType"] == "UpdateDimensions"
    assert change["DetailsDocument"] == [{"Key": "users", "Types": ["ExternallyMetered"], "Name": "Users"}]


def test_a_moved_url_updates_the_existing_option_by_its_id() -> None:
    (change,) = plan_listing("ai", listing(), "prod-1", live(), URL + "/v2").changes()
    assert change == {
        "ChangeType": "UpdateDeliveryOptions",
        "Entity": {"Type": "SaaSProduct@1.0", "Identifier": "prod-1"},
        "DetailsDocument": {
            "DeliveryOptions": [
                {"Id": "do-1", "Details": {"SaaSUrlDeliveryOptionDetails": {"FulfillmentUrl": URL + "/v2"}}}
            ]
        },
    }


def test_a_stack_not_deployed_leaves_the_url_alone() -> None:
    plan = plan_listing("ai", listing(), "prod-1", live(url=None), None)
    assert plan.changes() == [] and any("not deployed" in note for note in plan.notes)


def test_a_live_dimension_the_config_lacks_is_reported_never_removed() -> None:
    extra = {
        "Key": "seats",
        "Name": "seats",
        "Description": "Seats",
        "Unit": "Users",
        "Types": ["ExternallyMetered"],
    }
    plan = plan_listing("ai", listing(), "prod-1", live([*live()["Dimensions"], extra]), URL)
    assert plan.changes() == []
    assert plan.notes == [
        "dimension seats is on the live listing but not in the config: left as it is (restrict it in the AWS "
        "Marketplace Management Portal to stop selling it)"
    ]


def test_a_changed_unit_is_refused_naming_the_field() -> None:
    configured = listing(dimensions=[{"name": "users", "description": "Active users", "unit": "UserHrs"}])
    with pytest.raises(SyncRefused) as refused:
        plan_listing("ai", configured, "prod-1", live(), URL)
    (problem,) = refused.value.problems
    assert problem.startswith("marketplaceListings.ai.dimensions[0].unit: dimension 'users' is in Users")


def test_every_refusal_is_reported_at_once() -> None:
    configured = listing(
        pricingModel="contract",
        dimensions=[
            {"name": "users", "description": "Active users", "unit": "Users"},
            {"name": "learners", "description": "Seats", "unit": "Users"},
        ],
    )
    seats = {"Key": "seats", "Name": "seats", "Description": "Seats", "Unit": "Users", "Types": ["Entitled"]}
    with pytest.raises(SyncRefused) as refused:
        plan_listing("ai", configured, "prod-1", live([*live()["Dimensions"], seats]), URL)
    assert [problem.split(":", 1)[0] for problem in refused.value.problems] == [
        "marketplaceListings.ai.pricingModel",
        "marketplaceListings.ai.dimensions[1].name",
    ]
