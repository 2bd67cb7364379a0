"""`--destroy-disabled`: delete the deployed stacks of listings that are disabled or gone from the config.

Only after it has listed them and been told yes; it says which retained tables and buckets remain.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from operations.target import OperationError, Target, aws_error, say
from stacks.config import MarketplaceConfig
from stacks.naming import ListingNames

MARKETPLACE_REGION = "us-east-1"
LIVE_STACK_STATUSES = [
    "CREATE_COMPLETE", "CREATE_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED",
    "ROLLBACK_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "DELETE_FAILED", "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS",
]  # fmt: skip


@dataclass
class RetiredStack:
    name: str
    region: str
    listing: str
    retained: list[tuple[str, str]]  # (resource type, physical id) that stay after deletion
    protected: bool = False  # termination protection (listings with retainResources)


def retired_stacks(target: Target, config: MarketplaceConfig) -> list[RetiredStack]:
    """Deployed listing stacks (and their event forwarders) whose listing is disabled or gone."""
    prefix = config.deployment_settings.name_prefix
    environment = config.deployment_settings.environment
    enabled = {listing.path for listing in config.enabled_listings}
    regions = list(dict.fromkeys([target.region, MARKETPLACE_REGION]))
    found = []
    for region in regions:
        cloudformation = target.client("cloudformation", region)
        for page in cloudformation.get_paginator("describe_stacks").paginate():
            for stack in page["Stacks"]:
                if stack["StackStatus"] not in LIVE_STACK_STATUSES:
                    continue
                tags = {tag["Key"]: tag["Value"] for tag in stack.get("Tags", [])}
                listing = tags.get("Listing")
                name = stack["StackName"]
                # Named with this environment's prefix and tagged with its name: another environment's
                # stacks in the same account are never taken for this one's.
                ours = (
                    listing is not None
                    and tags.get("Environment") == environment
                    and name
                    in (ListingNames(prefix, listing).stack, f"{ListingNames(prefix, listing).stack}-events")
                )
                if ours and listing is not None and listing not in enabled:
                    found.append(
                        RetiredStack(
                            name,
                            region,
                            listing,
                            _retained(cloudformation, name),
                            bool(stack.get("EnableTerminationProtection")),
                        )
                    )
    return found


def _retained(cloudformation: Any, stack_name: str) -> list[tuple[str, str]]:
    body = cloudformation.get_template(StackName=stack_name)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    retained_ids = {
        logical_id
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
    }
    if not retained_ids:
        return []
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    return sorted(
        (resource["ResourceType"], resource.get("PhysicalResourceId", resource["LogicalResourceId"]))
        for resource in resources
        if resource["LogicalResourceId"] in retained_ids
    )


def _removal_hint(resource_type: str, physical_id: str) -> str:
    if resource_type.startswith("AWS::DynamoDB::"):
        return (
            f"aws dynamodb update-table --table-name {physical_id} --no-deletion-protection-enabled && "
            f"aws dynamodb delete-table --table-name {physical_id}"
        )
    if resource_type == "AWS::S3::Bucket":
        return f"aws s3 rb s3://{physical_id} --force"
    if resource_type == "AWS::Logs::LogGroup":
        return f"aws logs delete-log-group --log-group-name {physical_id}"
    return "delete it in the AWS console once you no longer need it"


def destroy_disabled(
    config: MarketplaceConfig, *, yes: bool, ask: Callable[[str], str] | None = None
) -> list[str]:
    """Delete the stacks of disabled or removed listings; returns the names deleted."""
    target = Target.of(config, local=False)
    say(f"Looking for stacks of disabled or removed listings in {target.region}")
    try:
        retired = retired_stacks(target, config)
    except (ClientError, BotoCoreError) as error:
        raise aws_error(error) from None
    if not retired:
        print("No deployed stack belongs to a disabled or removed listing; nothing to delete.")
        return []
    print("These stacks belong to listings that are disabled or no longer in the config:")
    for stack in retired:
        print(f"  {stack.name}  ({stack.region}, listing {stack.listing})")
    if not yes:
        if ask is None:
            if not sys.stdin.isatty():
                raise OperationError("nothing deleted: confirm with --yes when there is no terminal to ask")
            ask = input
        answer = ask(
            f"Delete {len(retired)} stack{'s' if len(retired) != 1 else ''}? Type 'delete' to go on: "
        )
        if answer.strip() != "delete":
            raise OperationError("nothing deleted: not confirmed")
    deleted: list[str] = []
    for stack in retired:
        cloudformation = target.client("cloudformation", stack.region)
        say(f"Deleting {stack.name} ({stack.region})")
        try:
            if stack.protected:
                # Listings with retainResources are protected from accidental deletion; this is intended.
                cloudformation.update_termination_protection(
                    StackName=stack.name, EnableTerminationProtection=False
                )
            cloudformation.delete_stack(StackName=stack.name)
            cloudformation.get_waiter("stack_delete_complete").wait(
                StackName=stack.name, WaiterConfig={"Delay": 5, "MaxAttempts": 360}
            )
        except (ClientError, BotoCoreError) as error:
            failure = aws_error(error)
            raise type(failure)(
                f"{stack.name} was not deleted: {failure}; deleted so far: {', '.join(deleted) or 'none'}"
            ) from None
        deleted.append(stack.name)
    retained = [(stack, kind, physical) for stack in retired for kind, physical in stack.retained]
    print(f"Deleted {len(deleted)} stack{'s' if len(deleted) != 1 else ''}: {', '.join(deleted)}.")
    if retained:
        print("\nThese resources were kept (retainResources) and still exist, with their data:")
        for stack, kind, physical in retained:
            print(f"  {kind} {physical}  (from {stack.name})")
            print(f"    remove with: {_removal_hint(kind, physical)}")
    return deleted
