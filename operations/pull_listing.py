"""`--pull-listing P`: the live listing on AWS Marketplace, printed as the config would say it.

Its title, short description and dimensions, in the config's own form (a listing's `name`, `description`
and `dimensions`), the quickest way to start a config for a product that already exists, or to see what a
sync would compare with. It reads only (ListEntities/DescribeEntity); nothing is changed on AWS Marketplace.

With `--write` it merges them into the config file instead of only printing them: the listing's `name`,
`description` and `dimensions` take the live values, and everything else in the file stays as it was,
key order and indentation included. The merged file is validated before it is written, and written whole
(a temporary file renamed over it), so a merge that would not be a valid config leaves the file untouched.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from operations.sync_listings import DIMENSION_TYPES, catalog_client, live_entities
from operations.target import Target, aws_error, say
from stacks.config import ConfigError, MarketplaceConfig, parse_config


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


def merged_dimensions(configured: Any, live: list[dict[str, Any]]) -> list[Any]:
    """The config's dimensions with the live ones merged in, in the config's order then the new ones.

    A dimension on both keeps its place and its own key order, with the live description, unit and display
    name; one only on the live listing is appended; one only in the config is kept (a sync would add it).
    """
    merged = list(configured) if isinstance(configured, list) else []
    by_name = {item.get("name"): item for item in merged if isinstance(item, dict)}
    for dimension in live:
        existing = by_name.get(dimension["name"])
        if existing is None:
            merged.append(dict(dimension))
            continue
        for field_name in ("description", "unit"):
            existing[field_name] = dimension[field_name]
        if "displayName" in dimension:
            existing["displayName"] = dimension["displayName"]
        else:
            existing.pop("displayName", None)
    return merged


def file_indent(text: str) -> str | None:
    """The indentation of the file's first indented line (None: the file is on one line)."""
    found = re.search(r"\n([ \t]+)\S", text)
    return found.group(1) if found else None


def write_into_config(file: Path, key: str, live: dict[str, Any]) -> None:
    """Merge the live name, description and dimensions into listing `key` of `file`; validate, then write."""
    file = file.resolve()  # a symlinked config: replace the file it points at, not the link
    text = file.read_text(encoding="utf-8")
    data = json.loads(text)  # dicts keep the file's key order
    listing = data["marketplaceListings"][key]
    listing["name"] = live["name"]
    listing["description"] = live["description"]
    listing["dimensions"] = merged_dimensions(listing.get("dimensions"), live["dimensions"])
    try:
        parse_config(data, str(file))
    except ConfigError as error:
        print(
            f"error: the live listing merged into {file} would not be a valid config; the file was not "
            "changed. Fix the live listing (or copy what fits from --pull-listing without --write):",
            file=sys.stderr,
        )
        raise error from None
    indent = file_indent(text)
    new_text = json.dumps(data, indent=indent, ensure_ascii=False)
    if text.endswith("\n"):
        new_text += "\n"
    handle, name = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(new_text)
            out.flush()
            os.fsync(out.fileno())
        temporary.chmod(file.stat().st_mode & 0o7777)
        temporary.replace(file)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    say(f"Wrote the live name, description and dimensions into marketplaceListings.{key} of {file}")


def pull_listing(
    config: MarketplaceConfig, path: str, *, local: bool, write_to: Path | None = None
) -> dict[str, Any]:
    """Print the live listing as config JSON, or (`write_to`: the config file) merge it into the file."""
    target = Target.of(config, local)
    key, listing = next((k, item) for k, item in config.marketplace_listings.items() if item.path == path)
    try:
        say(f"Reading {path} ({listing.product_code}) from the AWS Marketplace Catalog")
        entity_id, details = live_entities(catalog_client(target), [(key, listing)])[listing.product_code]
    except (ClientError, BotoCoreError) as error:
        raise aws_error(error) from None
    live = pulled(details)
    if write_to is None:
        print(json.dumps({key: {**live, "entityId": entity_id}}, indent=2, ensure_ascii=False))
    else:
        write_into_config(write_to, key, live)
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
