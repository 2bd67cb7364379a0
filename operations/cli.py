"""The command behind `./deploy-marketplace.sh` (which installs what it needs, then runs this module).

    validate → synthesize (cdk-nag gates) → cfn-lint → deploy in parallel → a table of each listing's URLs

Every step prints what it is doing; every failure says what to do next and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from operations import change_sets, destroy_disabled, export, pull_listing, reconcile, status, sync_listings
from operations.target import (
    EXIT_BAD_CONFIG,
    EXIT_NO_CREDENTIALS,
    EXIT_USAGE,
    NO_CREDENTIALS,
    CommandLineParser,
    OperationError,
    caller_account,
    check_account,
    environment_for,
)
from stacks.config import (
    ENVIRONMENT_VARIABLE,
    ConfigError,
    DeploymentSettings,
    MarketplaceConfig,
    read_config,
)
from stacks.naming import ListingNames

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CDK = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
OUTDIR = PROJECT_ROOT / "cdk.out"
OUTPUTS_FILE = PROJECT_ROOT / "deploy-outputs.json"
PLAN_FILE = PROJECT_ROOT / "deploy-plan.json"  # per environment: deploy-plan-<environment>.json
BOOTSTRAP_QUALIFIER = "hnb659fds"

EXIT_NOT_BOOTSTRAPPED = 4
EXIT_GATE_FAILED = 5
EXIT_DEPLOY_FAILED = 6

USAGE = """\
./deploy-marketplace.sh [--config PATH] [--environment NAME] [--listing PATH ...] [--synth | --plan | --local]
./deploy-marketplace.sh [--listing PATH ...] [--no-sync | --yes [--no-wait]] [--require-approval] [--help]
./deploy-marketplace.sh --execute-plan [--require-approval [--yes]] | --discard-plan
./deploy-marketplace.sh --local [--port N] [--metering-interval SECONDS] [--fresh]
./deploy-marketplace.sh --status [--local] [--listing PATH ...]
./deploy-marketplace.sh --export-subscribers --listing PATH [--format csv|json] [--output FILE] [--local]
./deploy-marketplace.sh --destroy-disabled [--yes]
./deploy-marketplace.sh --sync-listings [--listing PATH ...] [--yes] [--no-wait] [--local]
./deploy-marketplace.sh --pull-listing PATH [--write] [--local]
./deploy-marketplace.sh --reconcile [--listing PATH ...] [--dry-run] [--full] [--local]
./deploy-marketplace.sh --publish-service-catalog --listing PATH --launch-principal ARN ...
                        [--product-version NAME]

  (no mode)        validate, synthesize and deploy every enabled listing to the AWS account in the
                   environment, then print each listing's Website, Fulfillment and API URL, then sync
                   the deployed listings on AWS Marketplace as --sync-listings does (same plan and
                   question; --yes: do not ask); a sync that cannot run is a warning, not a failed deploy
  --no-sync        deploy only: leave the listings on AWS Marketplace as they are
  --synth          validate and synthesize only (cdk.out/<stack>.template.json), running every quality gate
  --plan           create a CloudFormation change set per stack (nothing is executed), show each one's
                   changes (IAM/security changes and removed or replaced tables and buckets marked), write
                   them to deploy-plan-<environment>.json, then show what a sync would change on AWS
                   Marketplace
  --execute-plan   execute the change sets of the environment's last --plan, following each stack to its
                   end, then print the URL table; refuses (changing nothing) when the credentials are for
                   another account, the config changed since the plan, or a change set can no longer run
  --discard-plan   delete the last --plan's change sets (and the empty stacks new ones made) and its file
  --require-approval
                   a deploy stops for a yes on IAM/security-broadening changes (cdk deploy's
                   --require-approval broadening; it needs a terminal); --execute-plan lists the plan's
                   IAM/security changes and asks (without a terminal it refuses unless --yes)
  --local          run every enabled listing on this machine, no AWS account needed, until Ctrl-C
                   --port N: listings on ports N, N+1, ... (default 8300)
                   --metering-interval S: run the metering job every S seconds (default 60)
                   --fresh: start empty (by default the subscribers, usage and billing of earlier
                   starts are kept, in .local/state/)
  --status         one table for every listing: stack status, Website URL, subscribers by status, usage
                   records pending / metered / failed, alarms firing (add --local for a running --local)
  --export-subscribers
                   write one listing's subscribers (identity, contact details, status, registration date)
                   as CSV (default) or JSON to --output FILE (default: standard output)
  --destroy-disabled
                   delete the deployed stacks of listings that are disabled or gone from the config, after
                   listing them and asking (--yes: do not ask); says which retained tables and buckets remain
  --sync-listings  make each listing on AWS Marketplace match the config and the deployed stack (fulfillment
                   URL, dimensions, title, short description): shows the plan, asks (--yes: do not ask),
                   then follows each Catalog API change set until it ends (--no-wait: do not follow);
                   with --local, against the running local mode's Marketplace emulator
  --pull-listing PATH
                   print the live listing's title, short description and dimensions as config JSON
                   --write: merge them into the config file instead (the rest of the file kept as it is)
  --reconcile      compare each listing's subscribers with AWS Marketplace's record of its agreements and
                   repair what lost events left wrong (one line per difference); --dry-run: change
                   nothing; --full: every agreement, not only those changed since the last run
  --publish-service-catalog
                   publish the listing stack as an AWS Service Catalog product (portfolio stack
                   <prefix>-service-catalog): teams launch a new listing's stack from the console with its
                   name, description, product code and path as parameters; the --listing PATH it is
                   modelled on fixes the pricing model, dimensions and branding
                   --launch-principal ARN: an IAM role, user or group that may launch it (repeat for several)
                   --product-version NAME: the version it publishes (default: the project's version);
                   earlier versions stay offered
  --config PATH    another config file (default: $MARKETPLACE_CONFIG or marketplace-config.json)
  --environment NAME
                   work on this environment of deploymentSettings.environments (its account, region and
                   stack names), for every command (default: $MARKETPLACE_ENVIRONMENT, else
                   deploymentSettings.environment)
  --listing PATH   only this listing (by its path); repeat for several
"""


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Selection:
    config_path: Path
    config: MarketplaceConfig
    paths: tuple[str, ...]
    # Whether the config's environment is its default one (the one without --environment).
    default_environment: bool = True

    @property
    def stack_names(self) -> list[str]:
        prefix = self.config.deployment_settings.name_prefix
        return [ListingNames(prefix, path).stack for path in self.paths]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CommandLineParser(prog="deploy-marketplace.sh", usage=USAGE, add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--config", default=os.environ.get("MARKETPLACE_CONFIG", "marketplace-config.json"))
    parser.add_argument("--listing", action="append", default=[], metavar="PATH")
    parser.add_argument("--environment", default=os.environ.get(ENVIRONMENT_VARIABLE) or None, metavar="NAME")
    modes = parser.add_mutually_exclusive_group()
    for mode in (
        "synth",
        "plan",
        "execute-plan",
        "discard-plan",
        "status",
        "export-subscribers",
        "destroy-disabled",
        "sync-listings",
        "reconcile",
        "publish-service-catalog",
    ):
        modes.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode)
    # --local runs local mode, or with --status / --export-subscribers, reads a running one.
    parser.add_argument("--local", action="store_true")
    parser.add_argument("--format", default="csv")
    parser.add_argument("--output", default=None)
    parser.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--metering-interval", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--yes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-wait", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-sync", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pull-listing", metavar="PATH", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dry-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--require-approval", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--launch-principal", action="append", default=[], metavar="ARN", help=argparse.SUPPRESS
    )
    parser.add_argument("--product-version", default=None, metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.require_approval and (args.mode not in (None, "execute-plan") or args.local):
        parser.error("--require-approval goes with a deploy (no mode) or --execute-plan")
    if args.listing and args.mode in ("execute-plan", "discard-plan"):
        parser.error(
            f"--listing does not go with --{args.mode}: the plan names its listings (--plan --listing)"
        )
    for option in ("launch_principal", "product_version"):
        if getattr(args, option) and args.mode != "publish-service-catalog":
            parser.error(f"--{option.replace('_', '-')} goes with --publish-service-catalog")
    for option in ("dry_run", "full"):
        if getattr(args, option) and args.mode != "reconcile":
            parser.error(f"--{option.replace('_', '-')} goes with --reconcile")
    if args.pull_listing is not None:
        if args.mode is not None:
            parser.error(f"--pull-listing does not go with --{args.mode}")
        args.mode = "pull-listing"
        args.listing = [args.pull_listing]
    if args.write and args.mode != "pull-listing":
        parser.error("--write goes with --pull-listing PATH")
    if args.no_sync and (args.mode is not None or args.local):
        parser.error(f"--no-sync goes with a deploy (no mode), not with --{args.mode or 'local'}")
    if args.fresh and not (args.local and args.mode in (None, "local")):
        parser.error("--fresh goes with --local (it starts local mode empty)")
    if args.local and args.mode in (None, "local"):
        args.mode = "local"
    elif args.local and args.mode not in (
        "status",
        "export-subscribers",
        "sync-listings",
        "pull-listing",
        "reconcile",
    ):
        parser.error(f"--local does not go with --{args.mode}")
    return args


def select(config_path: str, listing_paths: Sequence[str], environment: str | None = None) -> Selection:
    say(f"Validating {config_path}")
    every_environment = read_config(config_path)
    config = resolve(every_environment, config_path, environment)
    default = every_environment.deployment_settings.environment
    settings = config.deployment_settings
    known = {listing.path: listing for listing in config.marketplace_listings.values()}
    problems = [
        f"--listing {path}: no listing in {config_path} has this path"
        for path in listing_paths
        if path not in known
    ]
    problems += [
        f"--listing {path}: the listing is not deployed to environment {settings.environment!r} (its "
        f"environments: {', '.join(known[path].environments or ())})"
        for path in listing_paths
        if path in known and not known[path].deployed_to(settings.environment)
    ]
    problems += [
        f'--listing {path}: the listing is disabled in {config_path} (set "enabled": true to deploy it)'
        for path in listing_paths
        if path in known and known[path].deployed_to(settings.environment) and not known[path].enabled
    ]
    if problems:
        raise ConfigError(problems, config_path)
    paths = tuple(dict.fromkeys(listing_paths)) or tuple(listing.path for listing in config.enabled_listings)
    if not paths:
        raise ConfigError([f"marketplaceListings: no listing is enabled in {config_path}; nothing to do"])
    say(f"{len(paths)} listing{'s' if len(paths) != 1 else ''}: {', '.join(paths)}")
    for key, listing in config.marketplace_listings.items():
        if listing.path in paths and not listing.dimensions:
            print(
                f"warning: marketplaceListings.{key}.dimensions: none declared; buyers can subscribe and "
                "register, but no usage is recorded or metered until you add the listing's dimensions",
                file=sys.stderr,
            )
    return Selection(Path(config_path), config, paths, config.deployment_settings.environment == default)


def resolve(config: MarketplaceConfig, config_path: str, environment: str | None) -> MarketplaceConfig:
    """The config as the chosen environment sees it; says which environment that is when it has several."""
    try:
        resolved = config.for_environment(environment)
    except ConfigError as error:
        error.source = config_path
        raise
    settings = resolved.deployment_settings
    if len(config.environment_names) > 1 or environment:
        account = f"account {settings.account}, " if settings.account else ""
        say(f"Environment {settings.environment}: {account}region {settings.region}")
    return resolved


def _cdk(*args: str, selection: Selection, capture: bool = False) -> subprocess.CompletedProcess[str]:
    if not CDK.exists():
        raise CliError("the CDK CLI is not installed; run ./deploy-marketplace.sh, which installs it", 1)
    command = [
        str(CDK), *args, "--no-notices", "--no-version-reporting",
        "--context", f"config={selection.config_path.resolve()}",
        "--context", f"listings={','.join(selection.paths)}",
        "--output", str(OUTDIR),
    ]  # fmt: skip
    env = {
        **os.environ,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return subprocess.run(  # noqa: S603 - fixed executable, arguments we built
        command, cwd=PROJECT_ROOT, env=env, text=True, check=False, capture_output=capture
    )


def synthesize(selection: Selection) -> list[Path]:
    say("Synthesizing (cdk-nag AwsSolutions + Serverless checks run on every stack)")
    started = time.monotonic()
    if OUTDIR.exists():
        shutil.rmtree(OUTDIR)
    result = _cdk("synth", "--quiet", selection=selection)
    if result.returncode != 0:
        raise CliError("synthesis failed (see the messages above); nothing was deployed", EXIT_GATE_FAILED)
    templates = [OUTDIR / f"{stack}.template.json" for stack in selection.stack_names]
    missing = [template.name for template in templates if not template.exists()]
    if missing:
        raise CliError(f"synthesis did not produce {', '.join(missing)}", EXIT_GATE_FAILED)
    # Outside us-east-1 each listing also has its event forwarder's stack there: linted as well.
    templates += [
        forwarder
        for stack in selection.stack_names
        if (forwarder := OUTDIR / f"{stack}-events.template.json").exists()
    ]
    elapsed = time.monotonic() - started
    say(f"Synthesized {len(templates)} template{'s' if len(templates) != 1 else ''} in {elapsed:.1f}s")
    say("Linting the templates with cfn-lint")
    lint = subprocess.run(  # noqa: S603
        [str(CFN_LINT), *map(str, templates)], cwd=PROJECT_ROOT, text=True, check=False
    )
    if lint.returncode != 0:
        raise CliError("cfn-lint found problems in the templates (listed above)", EXIT_GATE_FAILED)
    for template in templates:
        resources = json.loads(template.read_text())["Resources"]
        print(f"  {template.relative_to(PROJECT_ROOT)}  ({len(resources)} resources)")
    return templates


def aws_account(settings: DeploymentSettings, doing: str = "Deploying to") -> str:
    """The account the credentials in the environment belong to, checked against the environment's account
    (when the config names it) before anything changes; fails fast and clearly without them. `doing` says
    what the command does with it (`Deploying to`, `Comparing with`)."""
    region = settings.region
    session = boto3.Session(region_name=region)
    if session.get_credentials() is None:
        raise CliError(NO_CREDENTIALS, EXIT_NO_CREDENTIALS)
    quick = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    account = caller_account(session, quick)
    say(f"The credentials are for AWS account {account}")
    check_account(account, settings)
    say(f"{doing} AWS account {account}, region {region} (environment {settings.environment})")
    _check_bootstrapped(session, account, region, quick)
    return account


def _check_bootstrapped(session: boto3.Session, account: str, region: str, config: Config) -> None:
    ssm = session.client("ssm", region_name=region, config=config)
    try:
        ssm.get_parameter(Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise CliError(
                f"AWS account {account} is not bootstrapped for CDK in {region}. Bootstrap it once with:\n"
                f"  npx cdk bootstrap aws://{account}/{region}\n"
                "then run ./deploy-marketplace.sh again.",
                EXIT_NOT_BOOTSTRAPPED,
            ) from None
        say(f"Could not check the CDK bootstrap version ({error}); continuing")
    except BotoCoreError as error:
        say(f"Could not check the CDK bootstrap version ({error}); continuing")


@dataclass(frozen=True)
class SyncStep:
    """How the sync step at the end of a deploy runs (`--no-sync`: not at all)."""

    enabled: bool = True
    yes: bool = False
    wait: bool = True


def sync_step(selection: Selection, args: argparse.Namespace) -> SyncStep:
    """A deploy's sync step. Every environment deploys the same listings on AWS Marketplace, whose
    fulfillment URL can name only one of them: outside the default environment the deploy leaves the
    listings alone unless asked (`--sync-listings --environment NAME` points them there on purpose)."""
    if not args.no_sync and not selection.default_environment:
        environment = selection.config.deployment_settings.environment
        say(
            f"Environment {environment} is not the default one: the listings on AWS Marketplace are left as "
            f"they are (to point them at {environment}: ./deploy-marketplace.sh --sync-listings "
            f"--environment {environment})"
        )
        return SyncStep(enabled=False)
    return SyncStep(enabled=not args.no_sync, yes=args.yes, wait=not args.no_wait)


def deploy(selection: Selection, sync: SyncStep | None = None, require_approval: bool = False) -> int:
    """Deploy, print the URL table, then (unless --no-sync) sync the deployed listings; the exit code.
    `require_approval`: cdk stops for a yes on IAM/security-broadening changes (it can only ask one stack
    at a time, so the stacks deploy one after another)."""
    sync = sync or SyncStep()
    account = aws_account(selection.config.deployment_settings)
    os.environ["CDK_DEFAULT_ACCOUNT"] = account
    synthesize(selection)
    say(f"Deploying {len(selection.paths)} stack(s) in parallel; CloudFront takes several minutes")
    if OUTPUTS_FILE.exists():
        OUTPUTS_FILE.unlink()
    result = _cdk(
        "deploy", *selection.stack_names,
        "--app", str(OUTDIR),
        "--require-approval", "broadening" if require_approval else "never",
        "--concurrency", "1" if require_approval else str(min(len(selection.paths), 8)),
        "--outputs-file", str(OUTPUTS_FILE),
        "--progress", "events",
        selection=selection,
    )  # fmt: skip
    outputs = json.loads(OUTPUTS_FILE.read_text()) if OUTPUTS_FILE.exists() else {}
    print_outputs(selection, outputs)
    if result.returncode != 0 and require_approval and not sys.stdin.isatty():
        raise CliError(
            "the deployment stopped: --require-approval asks before IAM/security-broadening changes, and "
            "cdk can only ask on a terminal. Run the command from a terminal, or review the changes first "
            "with --plan and run them with --execute-plan --require-approval --yes",
            EXIT_DEPLOY_FAILED,
        )
    if result.returncode != 0:
        raise CliError("the deployment failed (CloudFormation's reason is above)", EXIT_DEPLOY_FAILED)
    if not sync.enabled:
        return 0
    urls = {
        path: outputs.get(stack, {}).get("FulfillmentUrl")
        for path, stack in zip(selection.paths, selection.stack_names, strict=True)
    }
    return sync_listings.sync_after_deploy(
        selection.config,
        selection.paths,
        urls,
        yes=sync.yes,
        wait=sync.wait,
        ask=sync_listings.terminal_prompt(),
    )


def print_outputs(selection: Selection, outputs: dict[str, dict[str, str]]) -> None:
    rows = [("Listing", "Website URL", "Fulfillment URL", "API URL")]
    for path, stack in zip(selection.paths, selection.stack_names, strict=True):
        values = outputs.get(stack, {})
        rows.append(
            (
                path,
                values.get("WebsiteUrl", "(not deployed)"),
                values.get("FulfillmentUrl", "-"),
                values.get("ApiUrl", "-"),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print()
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\nAll outputs: {OUTPUTS_FILE.relative_to(PROJECT_ROOT)}")


def plan(selection: Selection) -> None:
    settings = selection.config.deployment_settings
    os.environ["CDK_DEFAULT_ACCOUNT"] = aws_account(settings, doing="Comparing the stacks with")
    synthesize(selection)
    say("Creating a change set per stack (none is executed)")
    change_sets.create_plan(
        selection.config,
        selection.config_path,
        selection.paths,
        selection.stack_names,
        OUTDIR,
        plan_file(selection.config),
    )
    if selection.default_environment:
        sync_listings.show_plan(selection.config, selection.paths)
    else:
        environment = selection.config.deployment_settings.environment
        say(
            f"A deploy of environment {environment} leaves the listings on AWS Marketplace as they are (it "
            "is not the default environment), so there is no sync to plan"
        )


def plan_file(config: MarketplaceConfig) -> Path:
    """Where --plan keeps the environment's plan (one per environment: staging's and production's apart)."""
    return PLAN_FILE.with_name(f"{PLAN_FILE.stem}-{config.deployment_settings.environment}{PLAN_FILE.suffix}")


def execute_plan(config_path: str, environment: str | None, require_approval: bool, yes: bool) -> None:
    """Run the environment's last --plan's change sets, then print the URL table of its listings."""
    config = resolve(read_config(config_path), config_path, environment)
    planned, outputs = change_sets.execute_plan(
        config,
        Path(config_path),
        plan_file(config),
        require_approval=require_approval,
        yes=yes,
        ask=sync_listings.terminal_prompt(),
    )
    OUTPUTS_FILE.write_text(json.dumps(outputs, indent=2) + "\n", encoding="utf-8")
    print_outputs(Selection(Path(config_path), config, planned.listings), outputs)


def run_local(selection: Selection, port: int | None, metering_seconds: float, fresh: bool = False) -> None:
    try:
        from local import run as local_run
    except ImportError:
        raise CliError("local mode is not installed in this checkout", 1) from None
    if metering_seconds <= 0:
        raise CliError("--metering-interval: a number of seconds above 0", EXIT_USAGE)
    local_run.main(
        selection.config_path, selection.paths, port=port, metering_seconds=metering_seconds, fresh=fresh
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        print(USAGE)
        return 0
    try:
        if args.local and args.mode != "local":
            args.environment = environment_for(local=True, requested=args.environment)
        if args.environment:
            # What this command runs (the CDK app, local mode's processes) works on the same environment.
            os.environ[ENVIRONMENT_VARIABLE] = args.environment
        if args.mode == "execute-plan":
            execute_plan(args.config, args.environment, args.require_approval, args.yes)
            return 0
        if args.mode == "discard-plan":
            config = resolve(read_config(args.config), args.config, args.environment)
            change_sets.discard_plan(config, Path(args.config), plan_file(config))
            return 0
        if args.mode == "destroy-disabled":
            config = resolve(read_config(args.config), args.config, args.environment)
            destroy_disabled.destroy_disabled(config, yes=args.yes)
            return 0
        if args.mode == "export-subscribers" and len(args.listing) != 1:
            raise CliError(
                "--export-subscribers: name the listing with exactly one --listing PATH", EXIT_USAGE
            )
        if args.mode == "publish-service-catalog":
            from operations import publish_catalog  # here: it imports this module

            return publish_catalog.publish(
                Path(args.config),
                resolve(read_config(args.config), args.config, args.environment),
                args.listing,
                args.launch_principal,
                args.product_version,
            )
        selection = select(args.config, args.listing, args.environment)
        if args.mode == "sync-listings":
            return sync_listings.sync_listings(
                selection.config,
                selection.paths,
                local=args.local,
                yes=args.yes,
                wait=not args.no_wait,
                ask=sync_listings.terminal_prompt(),
            )
        if args.mode == "reconcile":
            return reconcile.reconcile(
                selection.config, selection.paths, local=args.local, full=args.full, dry_run=args.dry_run
            )
        if args.mode == "pull-listing":
            pull_listing.pull_listing(
                selection.config,
                selection.paths[0],
                local=args.local,
                write_to=selection.config_path if args.write else None,
            )
            return 0
        if args.mode == "status":
            status.show_status(selection.config, selection.paths, local=args.local)
            sync_listings.show_listing_states(selection.config, selection.paths, local=args.local)
        elif args.mode == "export-subscribers":
            export.export_subscribers(
                selection.config, selection.paths[0], local=args.local, fmt=args.format, output=args.output
            )
        elif args.mode == "synth":
            synthesize(selection)
        elif args.mode == "plan":
            plan(selection)
        elif args.mode == "local":
            run_local(selection, args.port, args.metering_interval, args.fresh)
        else:
            return deploy(selection, sync_step(selection, args), require_approval=args.require_approval)
    except ConfigError as error:
        print(error.report(), file=sys.stderr)
        return EXIT_BAD_CONFIG
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OperationError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
