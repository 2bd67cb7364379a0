"""Operating deployed (or `--local`) listings: `--status`, `--export-subscribers` and `--destroy-disabled`.

All three read only what they need, page by page, and never change a listing's data. `--destroy-disabled`
deletes stacks, and only after it has listed them and been told yes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from stacks.config import MarketplaceConfig
from stacks.naming import ListingNames

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The runtime package the Lambda functions use lives in lambda/ (a Python keyword, so not a package name):
# its data model says what a subscriber item is.
sys.path.insert(0, str(PROJECT_ROOT / "lambda"))

from marketplace_saas.models import (  # noqa: E402
    SubscriberStatus,
    is_placeholder,
    license_id as license_id,
)
from marketplace_saas.store import pages  # noqa: E402

ENDPOINTS = PROJECT_ROOT / ".local" / "endpoints.json"
MARKETPLACE_REGION = "us-east-1"
STATUSES: tuple[str, ...] = get_args(SubscriberStatus)
EXPORT_FIELDS = (
    "customerAWSAccountId",
    "licenseArn",
    "customerIdentifier",
    "productCode",
    "status",
    "companyName",
    "contactPerson",
    "contactEmail",
    "contactPhone",
    "registrationDate",
    "offerType",
    "freeTrial",
)
LIVE_STACK_STATUSES = [
    "CREATE_COMPLETE", "CREATE_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED",
    "ROLLBACK_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "DELETE_FAILED", "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS",
]  # fmt: skip


LOCAL_NOT_RUNNING = "local mode is not running: start it with ./deploy-marketplace.sh --local"


def running_local_mode() -> dict[str, Any] | None:
    """The endpoints of the running `--local`, or None when none runs.

    A local mode that was killed (not stopped) leaves its endpoints.json behind: the process it names must
    still be alive.
    """
    try:
        endpoints: dict[str, Any] = json.loads(ENDPOINTS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = endpoints.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
    return endpoints


class OperationError(Exception):
    """The command cannot do what was asked; the message says why and what to do."""


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


# --- where the listings run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The deployed account (credentials from the environment), or a running `--local`."""

    region: str
    local: dict[str, Any] | None = None

    @classmethod
    def of(cls, config: MarketplaceConfig, local: bool) -> Target:
        region = config.deployment_settings.region
        if not local:
            return cls(region)
        endpoints = running_local_mode()
        if endpoints is None:
            raise OperationError(LOCAL_NOT_RUNNING)
        return cls(region, endpoints)

    def _connection(self, region: str | None) -> dict[str, Any]:
        connection: dict[str, Any] = {"region_name": region or self.region}
        if self.local is not None:
            connection["endpoint_url"] = self.local["aws"]["url"]
            connection["aws_access_key_id"] = "local"
            connection["aws_secret_access_key"] = "local"  # noqa: S105 - local mode accepts any
        return connection

    def client(self, service: str, region: str | None = None) -> Any:
        return boto3.client(service, **self._connection(region))  # type: ignore[call-overload]

    def resource(self, service: str) -> Any:
        return boto3.resource(service, **self._connection(None))  # type: ignore[call-overload]


def _aws_error(error: Exception) -> OperationError:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return OperationError(f"AWS refused: {code}: {error.response.get('Error', {}).get('Message', '')}")
    return OperationError(f"AWS could not be reached: {error}")


# --- --status -------------------------------------------------------------------------------------------


@dataclass
class ListingStatus:
    path: str
    stack_status: str
    website_url: str
    subscribers: dict[str, int]
    usage: dict[str, int]
    alarms_firing: list[str] | None  # None: not known (local mode creates no alarms)
    # The usage hour of the oldest record still to be sent (AWS takes it for 24 hours), and its age.
    oldest_pending_hour: str | None = None
    backlog_age_hours: float | None = None


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
        subscribers = {
            status: _count_status(dynamodb, names.subscribers_table, status) for status in STATUSES
        }
        usage, oldest = _usage_counts(dynamodb, names.metering_table)
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error) from None
    age = None
    if oldest is not None:
        started = datetime.fromisoformat(oldest.replace("Z", "+00:00"))
        age = max(0.0, (datetime.now(UTC) - started).total_seconds() / 3600)
    return ListingStatus(path, stack_status, url, subscribers, usage, alarms, oldest, age)


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


def _count_status(dynamodb: Any, table: str, status: str) -> int:
    request = {
        "TableName": table,
        "IndexName": "byStatus",
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": status}},
        "Select": "COUNT",
    }
    return sum(int(page["Count"]) for page in pages(dynamodb.query, request))


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
    header = ("Listing", "Stack", "Website", "Subscribers", "Usage records", "Alarms firing")
    rows = [header]
    for status in statuses:
        subscribers = ", ".join(f"{count} {name}" for name, count in status.subscribers.items() if count)
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
                subscribers or "none",
                usage or "none",
                alarms,
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


# --- --export-subscribers -------------------------------------------------------------------------------


def subscribers(target: Target, table: str) -> Iterator[dict[str, Any]]:
    """Every registered or announced subscriber of the table, page by page (placeholders left out)."""
    try:
        for page in pages(target.resource("dynamodb").Table(table).scan, {}):
            for item in page["Items"]:
                if not is_placeholder(str(item["customerAWSAccountId"])):
                    yield item
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# A spreadsheet runs a cell that starts with one of these as a formula (`=HYPERLINK(...)`, `@SUM(...)`):
# the buyer typed the company name, so a CSV cell must never start with one (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """The value as a spreadsheet shows it, never run: text starting like a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def export_subscribers(
    config: MarketplaceConfig, path: str, *, local: bool, fmt: str, output: str | None
) -> int:
    """Write the listing's subscribers as CSV or JSON to `output` (or stdout); returns how many.

    JSON carries every value exactly as stored; CSV neutralises text a spreadsheet would run as a formula.
    """
    if fmt not in ("csv", "json"):
        raise OperationError(f"--format {fmt}: csv or json")
    target = Target.of(config, local)
    names = ListingNames(config.deployment_settings.name_prefix, path)
    rows = [
        {field: _plain(item.get(field, "")) for field in EXPORT_FIELDS}
        for item in subscribers(target, names.subscribers_table)
    ]
    rows.sort(key=lambda row: (str(row["registrationDate"]), str(row["customerAWSAccountId"])))
    if fmt == "json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        buffer = io.StringIO()
        # RFC 4180 line ends: the writer then quotes a cell holding a bare CR, which would split a row.
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({field: _csv_cell(value) for field, value in row.items()} for row in rows)
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(Path(output), text)
        say(f"Wrote {len(rows)} subscriber{'s' if len(rows) != 1 else ''} of {path} to {output}")
    return len(rows)


def _write_atomically(path: Path, text: str) -> None:
    """All or nothing: a failed export never leaves a half-written file in place of a good one."""
    if not path.parent.exists():
        raise OperationError(f"--output {path}: the folder {path.parent} does not exist")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- --destroy-disabled ------------------------------------------------------------------------------


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
                ours = listing is not None and name in (
                    ListingNames(prefix, listing).stack,
                    f"{ListingNames(prefix, listing).stack}-events",
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
        raise _aws_error(error) from None
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
            raise OperationError(
                f"{stack.name} was not deleted: {_aws_error(error)}; "
                f"deleted so far: {', '.join(deleted) or 'none'}"
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
