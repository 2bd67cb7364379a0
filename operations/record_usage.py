"""Record usage for a listing's customer, from Python or the command line, deployed or local.

    .venv/bin/python -m operations.record_usage --listing ai-skills --customer 123456789012 \\
        [--license-arn ARN] --dimension learners --quantity 17.42 [--time 2026-11-23T10:15:00Z] \\
        [--allocation 5:team=red] [--local]

Quantities are decimals (up to 6 places). `--license-arn` names which of the customer's licenses the usage
belongs to; it may be left out while the customer holds one billable license of the listing.

From Python (the same validation and aggregation as `POST /api/usage`):

    from operations.record_usage import record_usage
    record_usage("ai-skills", "123456789012", "learners", 5)                 # the deployed listing
    record_usage("ai-skills", "123456789012", "learners", "17.42", local=True, license_arn="arn:aws:...")

Deployed, it writes to the listing's tables with the AWS credentials of the environment (they need
dynamodb:Query on the subscribers table and dynamodb:UpdateItem/GetItem on the metering table).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionError as EndpointUnreachable,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from marketplace_saas.settings import ListingSettings
from marketplace_saas.store import StoreUnavailable
from marketplace_saas.usage import RecordedUsage, UsageRecorder, UsageRejected
from marketplace_saas.usage_request import ACCOUNT_ID, LICENSE_ARN, InvalidUsage, UsageRecord
from operations.target import (
    EXIT_BAD_CONFIG,
    EXIT_FAILED,
    LOCAL_NOT_RUNNING,
    PROJECT_ROOT,
    REJECTED_CREDENTIALS,
    CommandLineParser,
    OperationError,
    Target,
    aws_error,
    environment_for,
)
from stacks.config import ConfigError, MarketplaceConfig, describe_problem, load_config, selected_environment
from stacks.naming import ListingNames

# What the usage record's patterns mean, for the messages.
USAGE_HINTS = {
    ACCOUNT_ID: "an AWS account id: 12 digits",
    LICENSE_ARN: "a license ARN, arn:aws:license-manager::<account>:license:l-...",
}


class RecordingError(Exception):
    """The usage was not recorded; the message says why, `exit_code` the command's exit code for it."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _resource(config: MarketplaceConfig, local: bool) -> Any:
    try:
        return Target.of(config, local).resource("dynamodb")
    except OperationError as error:
        raise RecordingError(str(error), error.exit_code) from None


def record_usage(
    listing_path: str,
    customer_aws_account_id: str,
    dimension: str,
    quantity: Decimal | int | str,
    *,
    license_arn: str | None = None,
    time: datetime | None = None,
    allocations: list[dict[str, Any]] | None = None,
    config_path: str | Path = PROJECT_ROOT / "marketplace-config.json",
    local: bool = False,
    environment: str | None = None,
) -> RecordedUsage:
    """Add usage to the customer's total for its hour; raises RecordingError with the reason if refused."""
    try:
        environment = environment_for(local, environment)
    except OperationError as error:
        raise RecordingError(str(error), error.exit_code) from None
    config = load_config(config_path, environment)
    listing = config.listing_by_path(listing_path)
    if listing is None or not listing.enabled:
        raise RecordingError(
            f"--listing {listing_path}: no enabled listing in {config_path} has this path", EXIT_BAD_CONFIG
        )
    names = ListingNames(config.deployment_settings.name_prefix, listing.path)
    settings = ListingSettings(
        listing_path=listing.path,
        product_code=listing.product_code,
        pricing_model=listing.pricing_model.value,
        legacy_identity=listing.legacy,
        subscribers_table=names.subscribers_table,
        registrations_table=names.registrations_table,
        metering_table=names.metering_table,
        dimensions=frozenset(dimension.name for dimension in listing.dimensions),
    )
    if not listing.dimensions:
        key = next(k for k, item in config.marketplace_listings.items() if item.path == listing.path)
        raise RecordingError(
            f"--listing {listing_path}: the listing declares no dimensions, so it has no usage to record; "
            f"add its dimensions (as defined on the listing in the AWS Marketplace Management Portal) to "
            f"marketplaceListings.{key}.dimensions in {config_path} and deploy again"
        )
    try:
        usage = UsageRecord.validate(
            {
                "customerAWSAccountId": customer_aws_account_id,
                "licenseArn": license_arn,
                "dimension": dimension,
                "quantity": quantity,
                "time": time,
                "allocations": allocations,
            }
        )
    except InvalidUsage as error:
        raise RecordingError(
            "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {describe_problem(e, USAGE_HINTS)}" for e in error.errors()
            )
        ) from None
    dynamodb = _resource(config, local)
    recorder = UsageRecorder(
        settings, dynamodb.Table(names.subscribers_table), dynamodb.Table(names.metering_table)
    )
    try:
        return recorder.record(usage)
    except UsageRejected as rejection:
        raise RecordingError(rejection.message) from None
    except StoreUnavailable as error:
        if str(error) in REJECTED_CREDENTIALS:  # the store names the AWS error code it met
            failure = aws_error(ClientError({"Error": {"Code": str(error)}}, "DynamoDB"))
            raise RecordingError(str(failure), failure.exit_code) from None
        raise RecordingError(f"DynamoDB did not answer ({error}); try again") from None
    except (NoCredentialsError, PartialCredentialsError, ClientError) as error:
        failure = aws_error(error)  # credentials that went away or that AWS refuses: exit 3, as everywhere
        raise RecordingError(str(failure), failure.exit_code) from None
    except (EndpointUnreachable, HTTPClientError) as error:
        if local:  # endpoints.json names services that no longer answer: local mode stopped meanwhile
            where = error.kwargs.get("endpoint_url", "its AWS services' URL")
            raise RecordingError(f"{LOCAL_NOT_RUNNING} (nothing answers at {where})") from None
        raise RecordingError(f"AWS could not be reached ({error}); try again") from None


def _quantity(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a decimal number such as 17.42") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a decimal number such as 17.42")
    return value


def _allocation(text: str) -> dict[str, Any]:
    """`5.5:team=red,env=prod` → 5.5 units allocated to those tags."""
    quantity, _, tags = text.partition(":")
    pairs = [pair.split("=", 1) for pair in tags.split(",") if pair]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected QUANTITY:KEY=VALUE[,KEY=VALUE]")
    return {"quantity": _quantity(quantity), "tags": dict(pairs)}


def main(argv: list[str] | None = None) -> int:
    parser = CommandLineParser(
        prog="python -m operations.record_usage", description="Record a customer's usage."
    )
    parser.add_argument("--listing", required=True, metavar="PATH")
    parser.add_argument("--customer", required=True, metavar="AWS_ACCOUNT_ID")
    parser.add_argument("--license-arn", metavar="ARN", help="which of the customer's licenses (if several)")
    parser.add_argument("--dimension", required=True)
    parser.add_argument("--quantity", required=True, type=_quantity, help="a decimal, e.g. 17.42")
    parser.add_argument("--time", type=datetime.fromisoformat, help="ISO 8601 with a time zone; default now")
    parser.add_argument("--allocation", action="append", type=_allocation, metavar="QTY:KEY=VALUE,...")
    parser.add_argument("--config", default=PROJECT_ROOT / "marketplace-config.json")
    parser.add_argument("--local", action="store_true", help="record into the running --local instead of AWS")
    parser.add_argument(
        "--environment",
        metavar="NAME",
        help="the environment of deploymentSettings.environments (default: $MARKETPLACE_ENVIRONMENT, else "
        "the one --local runs, else deploymentSettings.environment)",
    )
    args = parser.parse_args(argv)
    try:
        recorded = record_usage(
            args.listing, args.customer, args.dimension, args.quantity, license_arn=args.license_arn,
            time=args.time, allocations=args.allocation, config_path=args.config, local=args.local,
            environment=args.environment or selected_environment(),
        )  # fmt: skip
    except ConfigError as error:
        print(error.report(), file=sys.stderr)
        return EXIT_BAD_CONFIG
    except RecordingError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(json.dumps(recorded.view()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
