"""What the listing's pages read from its config: `config.json` (the landing page, at start-up) and
`brand.css` (the accent colour, for every page, including those the functions answer with).

Plain data, no CDK: the stack deploys both to the site's bucket, and local mode serves the same documents
without loading the CDK (or the config's model).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stacks.config import Listing

WHITE = "#ffffff"
BLACK = "#000000"


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


def relative_luminance(colour: str) -> float:
    """WCAG 2's relative luminance of `#rrggbb`."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2's contrast ratio of two `#rrggbb` colours, 1 to 21."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_on(accent: str) -> str:
    """White or black, whichever reads better on `accent`: for any colour one of them has at least 4.58:1
    (the worst case is a colour as far from black as from white), so text on the accent always meets
    WCAG AA's 4.5:1. (A dark grey instead of black would not: on some colours both stay below 4.5:1.)"""
    return WHITE if contrast_ratio(accent, WHITE) >= contrast_ratio(accent, BLACK) else BLACK


def brand_stylesheet(accent: str) -> str:
    """The site's `brand.css`: the accent colour and the text colour on it, as the pages' CSS variables."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", accent):
        raise ValueError(f"accent colour {accent!r} is not #RRGGBB")
    return f":root {{ --accent: {accent.lower()}; --on-accent: {text_on(accent)}; }}\n"
