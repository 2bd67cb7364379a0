"""`--pull-listing P`: the live listing on AWS Marketplace, printed as the config would say it.

Its title, short description and dimensions, in the config's own form (a listing's `name`, `description`
and `dimensions`), the quickest way to start a config for a product that already exists, or to see what a
sync would compare with. It reads only (ListEntities/DescribeEntity); nothing is changed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from operations.sync_listings import DIMENSION_TYPES, catalog_client, live_entities
from operations.target import Target, aws_error, say
from stacks.config import MarketplaceConfig


def pulled(details: dict[str, Any]) -> dict[str, Any]:
    """The live listing's text and dimensions as config keys (a display name only where it differs)."""
    description = details.get("Description", {})
    dimensions = []
    for item in details.get("Dimensions", []):
        dimension = {
            "name": item["Key"],
            "description": item.get("Description", ""),
            "unit": item.get("Unit"),
        }
        if item.get("Name") and item["Name"] != item["Key"]:
            dimension["displayName"] = item["Name"]
        dimensions.append(dimension)
    return {
        "name": description.get("ProductTitle", ""),
        "description": description.get("ShortDescription", ""),
        "productCode": description.get("ProductCode", ""),
        "dimensions": dimensions,
    }


def pull_listing(config: MarketplaceConfig, path: str, *, local: bool) -> dict[str, Any]:
    target = Target.of(config, local)
    key, listing = next((k, item) for k, item in config.marketplace_listings.items() if item.path == path)
    try:
        say(f"Reading {path} ({listing.product_code}) from the AWS Marketplace Catalog")
        entity_id, details = live_entities(catalog_client(target), [(key, listing)])[listing.product_code]
    except (ClientError, BotoCoreError) as error:
        raise aws_error(error) from None
    live = pulled(details)
    print(json.dumps({key: {**live, "entityId": entity_id}}, indent=2, ensure_ascii=False))
    options = details.get("DeliveryOptions", [])
    url = options[0].get("FulfillmentUrl") if options else None
    say(f"{path}: fulfillment URL on AWS Marketplace: {url or '(none set yet)'}")
    types = {" + ".join(item.get("Types", [])) for item in details.get("Dimensions", [])}
    expected = " + ".join(DIMENSION_TYPES[listing.pricing_model])
    if types and types != {expected}:
        print(
            f"warning: the live dimensions are {', '.join(sorted(types))}; pricingModel "
            f"{listing.pricing_model.value} in the config means {expected}",
            file=sys.stderr,
        )
    return live
