"""`--sync-listings`: make each listing on AWS Marketplace say what the config says, through the Catalog API.

For every selected listing it finds the product's `SaaSProduct@1.0` entity (the config's `entityId`, else
the entity whose product code is the listing's), compares the live listing with the config and with the
deployed stack's fulfillment URL, and prints a plan of one line per difference. Nothing is sent without a
yes. Then one change set per product (`StartChangeSet` with a `ClientRequestToken`), followed until it ends
(`DescribeChangeSet`, polled with backoff) unless `--no-wait`.

What is compared, and the change type that fixes it (shared MARKETPLACE.md, "Listing management"):
- fulfillment URL: `AddDeliveryOptions` the first time, `UpdateDeliveryOptions` (with the option's Id) after;
- dimensions: `AddDimensions` for a new key, `UpdateDimensions` for a new name or description. A key, its
  types (from the pricing model) and its unit cannot change on AWS Marketplace, so a config that would need
  that is refused before any change set is sent, naming the field;
- title (the listing's `name`) and short description (`description`): `UpdateInformation` with only the
  changed fields.
A live dimension the config does not have is left alone (it is only reported): removing one is
`RestrictDimensions`, a decision for the Marketplace Management Portal.

The Catalog API is global and called in us-east-1; in local mode it is the emulator's.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from operations.target import EXIT_BAD_CONFIG, EXIT_FAILED as FAILED, OperationError, Target, aws_error, say
from stacks.config import Listing, MarketplaceConfig, PricingModel
from stacks.naming import ListingNames

CATALOG = "AWSMarketplace"
CATALOG_REGION = "us-east-1"
ENTITY_TYPE = "SaaSProduct"
ENTITY_TYPE_VERSION = "SaaSProduct@1.0"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
# A dimension's types follow from how the listing is sold (only ExternallyMetered dimensions are metered).
DIMENSION_TYPES = {
    PricingModel.SUBSCRIPTION: ["ExternallyMetered"],
    PricingModel.CONTRACT: ["Entitled"],
    PricingModel.CONTRACT_WITH_CONSUMPTION: ["Entitled", "ExternallyMetered"],
}
# The order the changes go in one change set.
CHANGE_ORDER = (
    "UpdateInformation",
    "AddDimensions",
    "UpdateDimensions",
    "AddDeliveryOptions",
    "UpdateDeliveryOptions",
)
FIRST_POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 30.0

# The exit codes every command uses (operations/target.py), and one of this command's own.
EXIT_OK = 0
EXIT_FAILED = FAILED  # a change set failed or was cancelled, or AWS could not be reached
EXIT_REFUSED = EXIT_BAD_CONFIG  # the config asks for what AWS Marketplace cannot change
EXIT_NOT_CONFIRMED = FAILED  # no yes (no terminal to ask, no --yes): nothing was sent
EXIT_LOCKED = 9  # a product is in another change set still running; nothing was sent for it: run it later


@dataclass(frozen=True)
class Difference:
    change_type: str
    line: str  # what the plan shows
    detail: Any  # this difference's part of the change's details


@dataclass
class ListingPlan:
    """What one listing's sync would send."""

    path: str
    product_code: str
    entity_id: str
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown, never sent

    def changes(self) -> list[dict[str, Any]]:
        """The change set: one change per change type (the Catalog allows no more on one entity)."""
        by_type: dict[str, list[Any]] = {}
        for difference in self.differences:
            by_type.setdefault(difference.change_type, []).append(difference.detail)
        changes = []
        for change_type in CHANGE_ORDER:
            if change_type not in by_type:
                continue
            parts = by_type[change_type]
            if change_type in ("AddDimensions", "UpdateDimensions"):
                document: Any = parts
            elif change_type == "UpdateInformation":
                document = {key: value for part in parts for key, value in part.items()}
            else:
                (document,) = parts  # one URL option per product
            changes.append(
                {
                    "ChangeType": change_type,
                    "Entity": {"Type": ENTITY_TYPE_VERSION, "Identifier": self.entity_id},
                    "DetailsDocument": document,
                }
            )
        return changes


class SyncRefused(Exception):
    """The config would need a change AWS Marketplace does not allow; `problems` name the fields."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def catalog_client(target: Target) -> Any:
    """The Catalog API: AWS's (or AWS_ENDPOINT_URL_MARKETPLACE_CATALOG's), or the running --local emulator."""
    if target.local is None:
        return boto3.client("marketplace-catalog", region_name=CATALOG_REGION)
    return boto3.client(
        "marketplace-catalog",
        region_name=CATALOG_REGION,
        endpoint_url=target.local["emulator"]["url"],
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the emulator accepts any
    )


def deployed_fulfillment_url(target: Target, config: MarketplaceConfig, path: str) -> str | None:
    """The fulfillment URL the listing's stack serves; None when it is not deployed."""
    if target.local is not None:
        listing = target.local["listings"].get(path)
        return None if listing is None else str(listing["fulfillmentUrl"])
    stack = ListingNames(config.deployment_settings.name_prefix, path).stack
    try:
        (found,) = target.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return None
        raise
    outputs = {item["OutputKey"]: item["OutputValue"] for item in found.get("Outputs", [])}
    return outputs.get("FulfillmentUrl")


def live_entities(
    client: Any, listings: Sequence[tuple[str, Listing]]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """product code → (entity id, DetailsDocument) for each listing, by its entityId or its product code."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    wanted = {listing.product_code for _, listing in listings}
    for key, listing in listings:
        if listing.entity_id:
            try:
                found[listing.product_code] = (listing.entity_id, _details(client, listing.entity_id))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    raise OperationError(
                        f"marketplaceListings.{key}.entityId: no product {listing.entity_id} in your AWS "
                        "Marketplace catalog (remove entityId to find the product by its product code)"
                    ) from None
                raise
            code = found[listing.product_code][1].get("Description", {}).get("ProductCode")
            if code != listing.product_code:
                raise OperationError(
                    f"marketplaceListings.{key}.entityId: {listing.entity_id} is the product {code}, not "
                    f"{listing.product_code} (the listing's productCode); nothing was sent"
                )
    if wanted - set(found):
        for page in client.get_paginator("list_entities").paginate(Catalog=CATALOG, EntityType=ENTITY_TYPE):
            for summary in page.get("EntitySummaryList", []):
                details = _details(client, summary["EntityId"])
                code = details.get("Description", {}).get("ProductCode")
                if code in wanted and code not in found:
                    found[code] = (summary["EntityId"], details)
    for key, listing in listings:
        if listing.product_code not in found:
            raise OperationError(
                f"marketplaceListings.{key}.productCode: no SaaS product with product code "
                f"{listing.product_code} in your AWS Marketplace catalog. Create the product in the AWS "
                "Marketplace Management Portal first (or set the listing's entityId)."
            )
    return found


def _details(client: Any, entity_id: str) -> dict[str, Any]:
    described = client.describe_entity(Catalog=CATALOG, EntityId=entity_id)
    document = described.get("DetailsDocument")
    if document is None:  # an older answer: the details as a JSON string
        document = json.loads(described.get("Details") or "{}")
    return dict(document)


def plan_listing(
    key: str, listing: Listing, entity_id: str, details: dict[str, Any], fulfillment_url: str | None
) -> ListingPlan:
    """Compare the live listing with the config; raise SyncRefused for what AWS Marketplace cannot change."""
    plan = ListingPlan(listing.path, listing.product_code, entity_id)
    where = f"marketplaceListings.{key}"
    refused: list[str] = []

    description = details.get("Description", {})
    information: list[tuple[str, str, str]] = [
        ("ProductTitle", "title", listing.name),
        ("ShortDescription", "short description", listing.description),
    ]
    for field_name, label, wanted in information:
        live = description.get(field_name, "")
        if live != wanted:
            plan.differences.append(
                Difference("UpdateInformation", f"~ {label}: {live!r} → {wanted!r}", {field_name: wanted})
            )

    types = DIMENSION_TYPES[listing.pricing_model]
    live_dimensions = {item["Key"]: item for item in details.get("Dimensions", [])}
    configured = {dimension.name for dimension in listing.dimensions}
    gone = {k: item for k, item in live_dimensions.items() if k not in configured}
    for index, dimension in enumerate(listing.dimensions):
        field_path = f"{where}.dimensions[{index}]"
        live = live_dimensions.get(dimension.name)
        if live is None:
            renamed = next(
                (
                    old
                    for old, item in gone.items()
                    if item.get("Description") == dimension.description
                    or (dimension.display_name and item.get("Name") == dimension.display_name)
                ),
                None,
            )
            if renamed is not None:
                refused.append(
                    f"{field_path}.name: {dimension.name!r} would replace the live dimension {renamed!r} "
                    "(same description); AWS Marketplace cannot change a dimension's key. Put back "
                    f"{renamed!r}, or add {dimension.name!r} as a new dimension with its own description."
                )
                continue
            plan.differences.append(
                Difference(
                    "AddDimensions",
                    f"+ dimension {dimension.name}: {dimension.description!r} in {dimension.unit}, "
                    f"{' + '.join(types)}",
                    {
                        "Key": dimension.name,
                        "Name": dimension.catalog_name,
                        "Description": dimension.description,
                        "Unit": dimension.unit,
                        "Types": list(types),
                    },
                )
            )
            continue
        if sorted(live.get("Types", [])) != sorted(types):
            refused.append(
                f"{where}.pricingModel: dimension {dimension.name!r} is {' + '.join(live.get('Types', []))} "
                f"on AWS Marketplace, and pricingModel {listing.pricing_model.value} makes it "
                f"{' + '.join(types)}; a dimension's types cannot change"
            )
            continue
        if live.get("Unit") != dimension.unit:
            refused.append(
                f"{field_path}.unit: dimension {dimension.name!r} is in {live.get('Unit')} on AWS "
                f"Marketplace; a dimension's unit cannot change (set unit back to {live.get('Unit')!r})"
            )
            continue
        update: dict[str, Any] = {}
        lines = []
        if live.get("Name") != dimension.catalog_name:
            update["Name"] = dimension.catalog_name
            lines.append(f"name {live.get('Name')!r} → {dimension.catalog_name!r}")
        if live.get("Description") != dimension.description:
            update["Description"] = dimension.description
            lines.append(f"description {live.get('Description')!r} → {dimension.description!r}")
        if update:
            plan.differences.append(
                Difference(
                    "UpdateDimensions",
                    f"~ dimension {dimension.name}: {'; '.join(lines)}",
                    {"Key": dimension.name, "Types": list(live["Types"]), **update},
                )
            )
    for old in gone:
        plan.notes.append(
            f"dimension {old} is on the live listing but not in the config: left as it is (restrict it in "
            "the AWS Marketplace Management Portal to stop selling it)"
        )

    options = [
        item for item in details.get("DeliveryOptions", []) if item.get("Type", "SaaSUrl") == "SaaSUrl"
    ]
    if fulfillment_url is None:
        plan.notes.append("fulfillment URL: the listing's stack is not deployed, so the URL is left as it is")
    elif not options:
        plan.differences.append(
            Difference(
                "AddDeliveryOptions", f"+ fulfillment URL: {fulfillment_url}", _url_option(fulfillment_url)
            )
        )
    elif options[0].get("FulfillmentUrl") != fulfillment_url:
        plan.differences.append(
            Difference(
                "UpdateDeliveryOptions",
                f"~ fulfillment URL: {options[0].get('FulfillmentUrl')} → {fulfillment_url}",
                _url_option(fulfillment_url, options[0]["Id"]),
            )
        )
    if refused:
        raise SyncRefused(refused)
    return plan


def _url_option(url: str, option_id: str | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"Details": {"SaaSUrlDeliveryOptionDetails": {"FulfillmentUrl": url}}}
    if option_id is not None:
        option = {"Id": option_id, **option}
    return {"DeliveryOptions": [option]}


def print_plan(plans: Sequence[ListingPlan]) -> None:
    for plan in plans:
        print(f"{plan.path} ({plan.product_code}, {plan.entity_id}):")
        if not plan.differences:
            print("  the live listing matches the config: nothing to send")
        for difference in plan.differences:
            print(f"  {difference.line}  [{difference.change_type}]")
        for note in plan.notes:
            print(f"  note: {note}")


def confirmed(yes: bool, ask: Callable[[str], str] | None) -> bool:
    """--yes, or a yes typed at the terminal. Without a terminal (and no --yes) nothing is asked."""
    if yes:
        return True
    if ask is None:
        return False
    return ask("Send these changes to AWS Marketplace? [y/N] ").strip().lower() in ("y", "yes")


def terminal_prompt() -> Callable[[str], str] | None:
    """`input` when standard input is a terminal; None when nobody can be asked."""
    return input if sys.stdin.isatty() else None


def start(client: Any, plan: ListingPlan) -> str | None:
    """Start the listing's change set; None (reported) when the product is locked by another one."""
    try:
        started = client.start_change_set(
            Catalog=CATALOG,
            ChangeSet=plan.changes(),
            ChangeSetName=f"sync {plan.path}",
            ClientRequestToken=f"sync-{uuid.uuid4()}",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceInUseException":
            print(
                f"error: {plan.path}: the product {plan.entity_id} is locked by another change set that is "
                f"still running (ResourceInUseException: {error.response['Error'].get('Message', '')}). "
                "Nothing was sent for it; run --sync-listings again when that change set has ended.",
                file=sys.stderr,
            )
            return None
        raise
    change_set_id = str(started["ChangeSetId"])
    say(f"{plan.path}: change set {change_set_id} started")
    return change_set_id


def follow(
    client: Any, started: dict[str, str], first_poll: float, sleep: Callable[[float], None] = time.sleep
) -> dict[str, dict[str, Any]]:
    """Poll each change set until it ends (backoff from `first_poll` to MAX_POLL_SECONDS); show progress."""
    began = time.monotonic()
    last: dict[str, str] = {}
    ended: dict[str, dict[str, Any]] = {}
    interval = first_poll
    while True:
        for path, change_set_id in started.items():
            if path in ended:
                continue
            described = client.describe_change_set(Catalog=CATALOG, ChangeSetId=change_set_id)
            status = described["Status"]
            if last.get(path) != status:
                say(f"{path}: {status} ({time.monotonic() - began:.0f}s)")
                last[path] = status
            if status in TERMINAL:
                ended[path] = described
        if len(ended) == len(started):
            return ended
        sleep(interval)
        interval = min(interval * 1.5, MAX_POLL_SECONDS)


def report_failure(path: str, described: dict[str, Any]) -> None:
    status = described["Status"]
    print(
        f"error: {path}: change set {described['ChangeSetId']} {status}"
        + (
            f": {described['FailureCode']}: {described.get('FailureDescription', '')}"
            if described.get("FailureCode")
            else ""
        ),
        file=sys.stderr,
    )
    for change in described.get("ChangeSet", []):
        for error in change.get("ErrorDetailList", []):
            print(f"  {change['ChangeType']}: {error['ErrorCode']}: {error['ErrorMessage']}", file=sys.stderr)


def read_plans(
    client: Any,
    target: Target,
    config: MarketplaceConfig,
    paths: Sequence[str],
    fulfillment_urls: Mapping[str, str | None] | None = None,
) -> list[ListingPlan]:
    """Each selected listing's plan, read only (nothing is started, nobody is asked).

    `fulfillment_urls` gives the URL each listing's stack serves when the caller knows it (a deploy that has
    just read its outputs); else it is read from the stack. Raises SyncRefused with every listing's problems.
    """
    listings = [(key, item) for key, item in config.marketplace_listings.items() if item.path in paths]
    say(f"Reading {len(listings)} listing(s) from the AWS Marketplace Catalog")
    entities = live_entities(client, listings)
    plans, refused = [], []
    for key, listing in listings:
        entity_id, details = entities[listing.product_code]
        if fulfillment_urls is not None and listing.path in fulfillment_urls:
            url = fulfillment_urls[listing.path]
        else:
            url = deployed_fulfillment_url(target, config, listing.path)
        try:
            plans.append(plan_listing(key, listing, entity_id, details, url))
        except SyncRefused as refusal:
            refused += refusal.problems
    if refused:
        raise SyncRefused(refused)
    return plans


def send(client: Any, pending: Sequence[ListingPlan], *, wait: bool, first_poll: float | None = None) -> int:
    """Start one change set per plan and (unless not `wait`) follow them; the exit code of the outcome."""
    started: dict[str, str] = {}
    locked = refused_now = False
    for plan in pending:
        try:
            change_set_id = start(client, plan)
        except ClientError as error:  # refused at once; the other listings still go
            answer = error.response.get("Error", {})
            print(
                f"error: {plan.path}: AWS refused the change set: {answer.get('Code')}: "
                f"{answer.get('Message', '')}",
                file=sys.stderr,
            )
            refused_now = True
            continue
        if change_set_id is None:
            locked = True
        else:
            started[plan.path] = change_set_id
    if not wait:
        for path, change_set_id in started.items():
            say(f"{path}: not waiting; change set {change_set_id} goes on (see it with --status)")
        return EXIT_FAILED if refused_now else EXIT_LOCKED if locked else EXIT_OK
    ended = follow(client, started, first_poll or FIRST_POLL_SECONDS)
    failed = refused_now
    for path, described in ended.items():
        if described["Status"] == "SUCCEEDED":
            say(f"{path}: the listing now matches the config")
        else:
            failed = True
            report_failure(path, described)
    if failed:
        return EXIT_FAILED
    return EXIT_LOCKED if locked else EXIT_OK


def print_refusal(refusal: SyncRefused, prefix: str = "error") -> None:
    print(
        f"{prefix}: the config asks for changes AWS Marketplace does not allow; nothing was sent:",
        file=sys.stderr,
    )
    for problem in refusal.problems:
        print(f"  - {problem}", file=sys.stderr)


def sync_listings(
    config: MarketplaceConfig,
    paths: Sequence[str],
    *,
    local: bool,
    yes: bool,
    wait: bool = True,
    ask: Callable[[str], str] | None = None,
    first_poll: float | None = None,
) -> int:
    """The whole command; returns its exit code. `ask` asks for the yes (None: nobody to ask)."""
    target = Target.of(config, local)
    try:
        client = catalog_client(target)
        plans = read_plans(client, target, config, paths)
        print_plan(plans)
        pending = [plan for plan in plans if plan.differences]
        if not pending:
            say("Every listing matches the config; nothing was sent")
            return EXIT_OK
        if not confirmed(yes, ask):
            if ask is None:
                print(
                    "error: nothing was sent: confirm the plan above at a terminal, or pass --yes to send it "
                    "without asking",
                    file=sys.stderr,
                )
                return EXIT_NOT_CONFIRMED
            say("Nothing was sent")
            return EXIT_OK
        return send(client, pending, wait=wait, first_poll=first_poll)
    except SyncRefused as refusal:
        print_refusal(refusal)
        return EXIT_REFUSED
    except (ClientError, BotoCoreError) as error:
        raise aws_error(error) from None


def show_plan(config: MarketplaceConfig, paths: Sequence[str]) -> None:
    """`--plan`'s part on AWS Marketplace: the plan a deploy's sync step would show, read only.

    It never starts a change set and never asks; a catalog that cannot be read is one line, never fatal to
    --plan (whose stack diff above stands on its own).
    """
    say("Changes a sync would make to the listings on AWS Marketplace (read only: nothing is sent)")
    try:
        target = Target.of(config, local=False)
        plans = read_plans(catalog_client(target), target, config, paths)
    except SyncRefused as refusal:
        print("A sync would refuse these changes, which AWS Marketplace does not allow:")
        for refused in refusal.problems:
            print(f"  - {refused}")
        return
    except (ClientError, BotoCoreError, OperationError) as error:
        problem = error if isinstance(error, OperationError) else aws_error(error)
        print(f"AWS Marketplace listings: the live listings could not be read ({problem})")
        return
    print_plan(plans)


SYNC_LATER = "./deploy-marketplace.sh --sync-listings"


def sync_after_deploy(
    config: MarketplaceConfig,
    paths: Sequence[str],
    fulfillment_urls: Mapping[str, str | None],
    *,
    yes: bool,
    wait: bool = True,
    ask: Callable[[str], str] | None = None,
    first_poll: float | None = None,
) -> int:
    """The sync step at the end of a successful deploy: the same plan and confirmation as --sync-listings.

    The deploy has succeeded whatever happens here, so what stops the sync before anything is sent (no
    terminal to ask and no --yes, a Catalog API that cannot be reached or refuses, a product not found, a
    change AWS Marketplace does not allow) is a warning that says how to finish, and the exit code stays 0.
    Only change sets the seller confirmed and that then fail (1) or find the product locked (9) make the
    command exit non-zero, as --sync-listings would, so a CI run with --yes sees them.
    """
    say("Syncing the deployed listings with AWS Marketplace (skip this step with --no-sync)")
    try:
        target = Target.of(config, local=False)
        client = catalog_client(target)
        plans = read_plans(client, target, config, paths, fulfillment_urls)
    except SyncRefused as refusal:
        print_refusal(refusal, prefix="warning")
        print(f"warning: the deploy succeeded; fix the fields above, then run {SYNC_LATER}", file=sys.stderr)
        return EXIT_OK
    except (ClientError, BotoCoreError, OperationError) as error:
        problem = error if isinstance(error, OperationError) else aws_error(error)
        print(
            f"warning: the deploy succeeded, but the listings on AWS Marketplace were not synced: {problem}\n"
            f"  Run {SYNC_LATER} once the Catalog API can be used (the README's \"Keeping the listing in "
            'sync" lists the permissions it needs), or put the Fulfillment URL above in the AWS Marketplace '
            "Management Portal by hand.",
            file=sys.stderr,
        )
        return EXIT_OK
    print_plan(plans)
    pending = [plan for plan in plans if plan.differences]
    if not pending:
        say("Every deployed listing matches the config on AWS Marketplace; nothing was sent")
        return EXIT_OK
    if not confirmed(yes, ask):
        if ask is None:
            say(f"The plan above was not sent (no terminal to ask); send it with {SYNC_LATER} --yes")
        else:
            say(f"Nothing was sent; send it later with {SYNC_LATER}")
        return EXIT_OK
    try:
        return send(client, pending, wait=wait, first_poll=first_poll)
    except (ClientError, BotoCoreError) as error:
        print(
            f"error: the deploy succeeded, but following the listings' change sets stopped: "
            f"{aws_error(error)}\n  See them with ./deploy-marketplace.sh --status",
            file=sys.stderr,
        )
        return EXIT_FAILED


def listing_states(
    config: MarketplaceConfig, paths: Sequence[str], *, local: bool
) -> list[tuple[str, str, str]]:
    """Per listing: whether the live listing matches the config, and its last change set's state."""
    target = Target.of(config, local)
    listings = [(key, item) for key, item in config.marketplace_listings.items() if item.path in paths]
    client = catalog_client(target)
    entities = live_entities(client, listings)
    states = []
    for key, listing in listings:
        entity_id, details = entities[listing.product_code]
        try:
            plan = plan_listing(
                key, listing, entity_id, details, deployed_fulfillment_url(target, config, listing.path)
            )
            count = len(plan.differences)
            matches = "matches the config" if not count else f"{count} difference{'s' if count != 1 else ''}"
        except SyncRefused as refusal:
            matches = f"cannot sync: {len(refusal.problems)} change(s) AWS Marketplace does not allow"
        summaries = client.list_change_sets(
            Catalog=CATALOG, FilterList=[{"Name": "EntityId", "ValueList": [entity_id]}]
        ).get("ChangeSetSummaryList", [])
        latest = max(summaries, key=lambda item: item.get("StartTime", ""), default=None)
        last = "none" if latest is None else f"{latest['Status']} ({latest['ChangeSetId']})"
        states.append((listing.path, matches, last))
    return states


def show_listing_states(config: MarketplaceConfig, paths: Sequence[str], *, local: bool) -> None:
    """`--status`'s lines on the live listings, beside its table (which stays the only thing on stdout).

    A catalog that cannot be read (no permission, say) is said in one line, never fatal to --status.
    """
    try:
        states = listing_states(config, paths, local=local)
    except (ClientError, BotoCoreError, OperationError) as error:
        problem = error if isinstance(error, OperationError) else aws_error(error)
        say(f"AWS Marketplace listings: not read ({problem})")
        return
    for path, matches, last in states:
        say(f"AWS Marketplace: {path} {matches}; last change set: {last}")
