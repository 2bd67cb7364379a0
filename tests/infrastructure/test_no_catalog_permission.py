"""The stacks get no AWS Marketplace Catalog permission: only the deploying identity edits listings."""

from __future__ import annotations

from typing import Any

from tests.infrastructure.conftest import Synthesized

STACKS = ("codio-marketplace-ai-skills", "codio-marketplace-data-analytics")
# Every Catalog API action is `aws-marketplace:<Operation>` of the marketplace-catalog model.
CATALOG_ACTIONS = {
    f"aws-marketplace:{name}"
    for name in (
        "ListEntities", "DescribeEntity", "StartChangeSet", "DescribeChangeSet", "ListChangeSets",
        "CancelChangeSet", "BatchDescribeEntities", "PutResourcePolicy", "TagResource",
    )
}  # fmt: skip


def _granted(two_listings: Synthesized, stack: str) -> set[str]:
    actions: set[str] = set()
    for resource_type in ("AWS::IAM::Policy", "AWS::IAM::Role", "AWS::IAM::ManagedPolicy"):
        for resource in two_listings.resources(stack, resource_type).values():
            properties: dict[str, Any] = resource["Properties"]
            documents = [properties.get("PolicyDocument")]
            documents += [policy.get("PolicyDocument") for policy in properties.get("Policies", [])]
            for document in filter(None, documents):
                for statement in document.get("Statement", []):
                    action = statement.get("Action", [])
                    actions.update([action] if isinstance(action, str) else action)
    return actions


def test_no_function_role_may_call_the_catalog_api(two_listings: Synthesized) -> None:
    for stack in STACKS:
        marketplace = {
            action for action in _granted(two_listings, stack) if action.startswith("aws-marketplace:")
        }
        # The functions' own Marketplace permissions are found: the policies were read.
        assert "aws-marketplace:ResolveCustomer" in marketplace
        assert "aws-marketplace:*" not in marketplace
        assert marketplace.isdisjoint(CATALOG_ACTIONS), marketplace & CATALOG_ACTIONS
