"""What the landing page reads at start-up (`config.json`), from the listing's config.

Plain data, no CDK: the stack deploys it to the site's bucket, and local mode serves the same document
without loading the CDK.
"""

from __future__ import annotations

from typing import Any

from stacks.config import Listing


def page_config(listing: Listing) -> dict[str, Any]:
    """The landing page's `config.json`: only what the page shows, nothing secret."""
    return {
        "listing": {
            "name": listing.name,
            "description": listing.description,
            "path": listing.path,
            "productCode": listing.product_code,
        },
        "pricingModel": listing.pricing_model.value,
        "dimensions": [dimension.model_dump(by_alias=True) for dimension in listing.dimensions],
        "branding": listing.branding.model_dump(by_alias=True, mode="json"),
        "api": {"registration": "/api/registration", "register": "/api/register"},
    }
