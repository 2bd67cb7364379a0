"""The tags every resource of a listing carries, in its stack and in its event forwarder's alike: the
seller's cost-allocation tags, then the three the project sets itself (which the config may not redefine).
`--destroy-disabled` finds a listing's stacks by them."""

from __future__ import annotations

from aws_cdk import Tags
from constructs import IConstruct

from stacks.config import DeploymentSettings, Listing


def tag_listing_resources(
    scope: IConstruct, *, stack_name: str, listing: Listing, settings: DeploymentSettings
) -> None:
    tags = {
        **settings.tags,
        **listing.tags,
        "Stack": stack_name,
        "Listing": listing.path,
        "Environment": settings.environment,
    }
    for key, value in tags.items():
        Tags.of(scope).add(key, value)
