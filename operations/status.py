"""`--status`: one table for every listing, from the deployed account or a running `--local`.

It reads only what it needs, page by page, and never changes a listing's data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from botocore.exceptions import BotoCoreError, ClientError

from marketplace_saas.models import SubscriberStatus, is_placeholder
from marketplace_saas.store import pages
from operations.target import OperationError, Target, aws_error, say
from stacks.config import MarketplaceConfig
from stacks.naming import ListingNames

# The runtime's data model says what a subscriber's status can be.
STATUSES: tuple[str, ...] = get_args(SubscriberStatus)


@dataclass
class ListingStatus:
    path: str
    stack_status: str
    website_url: str
    subscribers: dict[str, int]  # registered subscribers (who filled in the form), by status
    # Subscribers AWS Marketplace announced (a subscription event) who never registered, by status.
    unregistered: dict[str, int] = field(default_factory=dict, kw_only=True)
    usage: dict[str, int]
    alarms_firing: list[str] | None  # None: not known (local mode creates no alarms)
    # The usage hour of the oldest record still to be sent (AWS takes it for 24 hours), and its age.
    oldest_pending_hour: str | None = None
    backlog_age_hours: float | None = None
    # The last reconciliation with AWS Marketplace's agreements (its summary), None: never ran.
    last_reconciliation: dict[str, Any] | None = None


def listing_status(target: Target, config: MarketplaceConfig, path: str) -> ListingStatus:
    names = ListingNames(config.deployment_settings.name_prefix, path)
    dynamodb = target.client("dynamodb")
    try:
        if target.local is not None:
            listing = target.local["listings"].get(path)
            if listing is None:
                raise OperationError(f"--listing {path}: not running in local mode (restart --local)")
            stack_status, url, alarms = "running locally", str(listing["siteUrl"]), None
        else:
            stack_status, url = _stack(target, names.stack)
            alarms = _alarms_firing(target, names.stack) if stack_status != "not deployed" else []
        if stack_status == "not deployed":
            return ListingStatus(path, stack_status, "", {}, {}, alarms)
        subscribers, unregistered = _subscriber_counts(dynamodb, names.subscribers_table)
        usage, oldest = _usage_counts(dynamodb, names.metering_table)
        reconciled = _last_reconciliation(target, names.reconciliation_parameter)
    except (ClientError, BotoCoreError) as error:
        raise aws_error(error) from None
    age = None
    if oldest is not None:
        started = datetime.fromisoformat(oldest.replace("Z", "+00:00"))
        age = max(0.0, (datetime.now(UTC) - started).total_seconds() / 3600)
    return ListingStatus(
        path,
        stack_status,
        url,
        subscribers,
        usage,
        alarms,
        oldest,
        age,
        reconciled,
        unregistered=unregistered,
    )


def _last_reconciliation(target: Target, parameter: str) -> dict[str, Any] | None:
    """The summary the reconciliation keeps of its last run (see marketplace_saas/reconcile.py)."""
    try:
        value = target.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    try:
        last = json.loads(value).get("lastRun")
    except (ValueError, AttributeError):
        return None
    return last if isinstance(last, dict) else None


def _reconciliation_cell(last: dict[str, Any] | None) -> str:
    if not last:
        return "never"
    text = f"{last.get('startedAt', '?')}: {last.get('differences', 0)} differences"
    if last.get("differences"):
        text += f" ({last.get('repaired', 0)} repaired, {last.get('unrepairable', 0)} not repairable)"
    return text + (" (dry run)" if last.get("dryRun") else "")


def _stack(target: Target, stack_name: str) -> tuple[str, str]:
    try:
        (stack,) = target.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return "not deployed", ""
        raise
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    return str(stack["StackStatus"]), outputs.get("WebsiteUrl", "")


def _alarms_firing(target: Target, stack_name: str) -> list[str]:
    cloudwatch = target.client("cloudwatch")
    firing = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=f"{stack_name}-", StateValue="ALARM"
    ):
        firing += [
            alarm["AlarmName"].removeprefix(f"{stack_name}-")
            for alarm in page["MetricAlarms"]
            if alarm["StateValue"] == "ALARM"
        ]
    return firing


def _subscriber_counts(dynamodb: Any, table: str) -> tuple[dict[str, int], dict[str, int]]:
    """(registered, announced but never registered) subscribers, each by status.

    A subscriber registered when it has a `registrationDate` (the form wrote it); a subscription event for
    a buyer who has not filled in the form creates the item without one. The status index does not hold
    that attribute, so the table is read page by page, only the three attributes it needs.
    """
    registered = dict.fromkeys(STATUSES, 0)
    unregistered = dict.fromkeys(STATUSES, 0)
    request = {
        "TableName": table,
        "ProjectionExpression": "customerAWSAccountId, #s, registrationDate",
        "ExpressionAttributeNames": {"#s": "status"},
    }
    for page in pages(dynamodb.scan, request):
        for item in page["Items"]:
            if is_placeholder(item["customerAWSAccountId"]["S"]):
                continue  # early lifecycle facts an earlier version kept in this table: not a subscriber
            status = item.get("status", {}).get("S", "pending")
            counts = registered if "registrationDate" in item else unregistered
            counts[status] = counts.get(status, 0) + 1
    return registered, unregistered


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items() if count) or "none"


def _usage_counts(dynamodb: Any, table: str) -> tuple[dict[str, int], str | None]:
    """Records by metering status, and the usage hour of the oldest one still pending."""
    counts = {"pending": 0, "metered": 0, "failed": 0}
    oldest: str | None = None
    request = {
        "TableName": table,
        "ProjectionExpression": "meteringStatus, usageHour",
    }
    for page in pages(dynamodb.scan, request):
        for item in page["Items"]:
            status = item.get("meteringStatus", {}).get("S", "pending")
            counts[status] = counts.get(status, 0) + 1
            hour = item.get("usageHour", {}).get("S")
            if status == "pending" and hour and (oldest is None or hour < oldest):
                oldest = hour
    return counts, oldest


def status_table(statuses: Sequence[ListingStatus]) -> str:
    header = (
        "Listing",
        "Stack",
        "Website",
        "Registered",
        "Not registered",
        "Usage records",
        "Alarms firing",
        "Last reconciliation",
    )
    rows = [header]
    for status in statuses:
        subscribers, unregistered = _counts(status.subscribers), _counts(status.unregistered)
        usage = ", ".join(f"{count} {name}" for name, count in status.usage.items() if count)
        if status.oldest_pending_hour and status.backlog_age_hours is not None:
            # How far behind the metering job is: AWS takes usage for 24 hours after its hour.
            usage += f" (oldest pending {status.oldest_pending_hour}, {status.backlog_age_hours:.1f} h ago)"
        firing = status.alarms_firing
        alarms = "n/a locally" if firing is None else ", ".join(firing) or "none"
        rows.append(
            (
                status.path,
                status.stack_status,
                status.website_url or "-",
                subscribers,
                unregistered,
                usage or "none",
                alarms,
                _reconciliation_cell(status.last_reconciliation),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def show_status(config: MarketplaceConfig, paths: Sequence[str], local: bool) -> list[ListingStatus]:
    target = Target.of(config, local)
    say(f"Reading {len(paths)} listing{'s' if len(paths) != 1 else ''} {'locally' if local else 'in AWS'}")
    statuses = [listing_status(target, config, path) for path in paths]
    print(status_table(statuses))
    return statuses
