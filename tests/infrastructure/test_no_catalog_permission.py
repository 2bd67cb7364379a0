"""The stacks get no permission to change a listing on AWS Marketplace: only the deploying identity edits
listings. The one Catalog permission is read-only, the reconciliation's, to find its product's id."""

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
# What the reconciliation reads to find its product's id by product code (when the listing has no entityId).
CATALOG_READS = {"aws-marketplace:ListEntities", "aws-marketplace:DescribeEntity"}


def _granted(two_listings: Synthesized, stack: str, role: str | None = None) -> set[str]:
    """Every action the stack's policies grant, or only those of this role (by logical id)."""
    actions: set[str] = set()
    for resource_type in ("AWS::IAM::Policy", "AWS::IAM::Role", "AWS::IAM::ManagedPolicy"):
        for logical_id, resource in two_listings.resources(stack, resource_type).items():
            properties: dict[str, Any] = resource["Properties"]
            if role is not None:
                attached = (
                    [logical_id]
                    if resource_type == "AWS::IAM::Role"
                    else [ref.get("Ref") for ref in properties.get("Roles", []) if isinstance(ref, dict)]
                )
                if role not in attached:
                    continue
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
        assert marketplace & CATALOG_ACTIONS == CATALOG_READS, marketplace & CATALOG_ACTIONS
        roles = {
            logical_id: str(role["Properties"].get("Description", ""))
            for logical_id, role in two_listings.resources(stack, "AWS::IAM::Role").items()
        }
        (reconciler,) = [
            logical_id
            for logical_id, about in roles.items()
            if about.endswith("-Reconciler and nothing else")
        ]
        assert _granted(two_listings, stack, role=reconciler) >= CATALOG_READS
        for logical_id, about in roles.items():
            if logical_id != reconciler:
                assert _granted(two_listings, stack, role=logical_id).isdisjoint(CATALOG_ACTIONS), about
