"""`./deploy-marketplace.sh --publish-service-catalog`: publish the listing stack as a Service Catalog
product (see stacks/service_catalog.py), then say where a team launches it.

    check the options → credentials → synthesize (cdk-nag gates) → cfn-lint on the portfolio's template
    and the product's → cdk deploy the portfolio stack → where and how to launch
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from operations import cli
from operations.target import EXIT_USAGE
from stacks.config import ConfigError, MarketplaceConfig
from stacks.service_catalog import SNAPSHOTS, Publication, portfolio_stack_name, publication

OUTPUTS_FILE = cli.PROJECT_ROOT / "service-catalog-outputs.json"


def check(
    config: MarketplaceConfig,
    listings: Sequence[str],
    principals: Sequence[str],
    version: str | None,
    account: str | None = None,
) -> Publication:
    """The publication the options describe, or a `CliError` (usage) listing every problem with them."""
    if len(listings) != 1:
        raise cli.CliError(
            "--publish-service-catalog: name the listing the product is modelled on (its pricing model, "
            "dimensions and branding) with exactly one --listing PATH",
            EXIT_USAGE,
        )
    try:
        return publication(config, listings[0], principals, version, account)
    except ConfigError as error:
        lines = "\n".join(f"  - {problem}" for problem in error.problems)
        raise cli.CliError(f"cannot publish the Service Catalog product:\n{lines}", EXIT_USAGE) from None


def publish(
    config_path: Path,
    config: MarketplaceConfig,
    listings: Sequence[str],
    principals: Sequence[str],
    version: str | None,
) -> int:
    settings = config.deployment_settings
    check(config, listings, principals, version, settings.account)  # before any AWS call
    region = settings.region
    account = cli.aws_account(settings, doing="Publishing to")
    chosen = check(config, listings, principals, version, account)
    stack = portfolio_stack_name(settings.name_prefix)
    # The portfolio stack names no environment (its product's template must not): the CLI's is this one.
    os.environ.update({"CDK_DEFAULT_ACCOUNT": account, "AWS_REGION": region, "AWS_DEFAULT_REGION": region})
    selection = cli.Selection(config_path, config, (chosen.model.path,))
    context = [
        "--context", f"catalog-listing={chosen.model.path}",
        "--context", f"catalog-principals={','.join(chosen.principals)}",
        "--context", f"catalog-version={chosen.version}",
    ]  # fmt: skip
    synthesize(selection, stack, context)
    cli.say(f"Deploying {stack} (portfolio, product version {chosen.version}, launch role)")
    if OUTPUTS_FILE.exists():
        OUTPUTS_FILE.unlink()
    result = cli._cdk(
        "deploy", stack,
        "--app", str(cli.OUTDIR),
        "--require-approval", "never",
        "--outputs-file", str(OUTPUTS_FILE),
        "--progress", "events",
        *context,
        selection=selection,
    )  # fmt: skip
    if result.returncode != 0:
        raise cli.CliError("the deployment failed (CloudFormation's reason is above)", cli.EXIT_DEPLOY_FAILED)
    outputs = json.loads(OUTPUTS_FILE.read_text()).get(stack, {}) if OUTPUTS_FILE.exists() else {}
    print(where_to_launch(outputs, region, chosen))
    return 0


def synthesize(selection: cli.Selection, stack: str, context: list[str]) -> list[Path]:
    """`cdk synth` of the portfolio stack (cdk-nag runs on it and on the product's template), then cfn-lint
    on both templates; the product's is an asset of the cloud assembly."""
    cli.say("Synthesizing the Service Catalog portfolio (cdk-nag AwsSolutions + Serverless checks)")
    if cli.OUTDIR.exists():
        shutil.rmtree(cli.OUTDIR)
    result = cli._cdk("synth", stack, "--quiet", *context, selection=selection)
    if result.returncode != 0:
        raise cli.CliError(
            "synthesis failed (see the messages above); nothing was deployed. 'Template has changed for "
            "ProductStack Version X' means version X was published with another template: publish this one "
            "under a new --product-version",
            cli.EXIT_GATE_FAILED,
        )
    templates = [cli.OUTDIR / f"{stack}.template.json", *sorted(cli.OUTDIR.glob("*.product.template.json"))]
    if len(templates) < 2 or not templates[0].exists():
        raise cli.CliError(
            f"synthesis did not produce {stack}'s and its product's templates", cli.EXIT_GATE_FAILED
        )
    cli.say("Linting the portfolio's and the product's templates with cfn-lint")
    lint = subprocess.run(  # noqa: S603
        [str(cli.CFN_LINT), *map(str, templates)], cwd=cli.PROJECT_ROOT, text=True, check=False
    )
    if lint.returncode != 0:
        raise cli.CliError("cfn-lint found problems in the templates (listed above)", cli.EXIT_GATE_FAILED)
    for template in templates:
        resources = json.loads(template.read_text())["Resources"]
        print(f"  {template.relative_to(cli.PROJECT_ROOT)}  ({len(resources)} resources)")
    return templates


def where_to_launch(outputs: dict[str, str], region: str, chosen: Publication) -> str:
    product_id = outputs.get("ProductId", "<ProductId>")
    parameters = " ".join(
        f"Key={key},Value={value}"
        for key, value in (
            ("ListingName", "'My listing'"),
            ("ListingDescription", "'What it does'"),
            ("ProductCode", "<product code>"),
            ("ListingPath", "<path>"),
        )
    )
    snapshots = SNAPSHOTS.relative_to(cli.PROJECT_ROOT)
    return f"""
Published {outputs.get("ProductName", "the product")} version {chosen.version} (product {product_id},
portfolio {outputs.get("PortfolioId", "-")}) in {region}, launchable by:
{chr(10).join(f"  {principal}" for principal in chosen.principals)}

A team launches a listing's stack from the AWS console: Service Catalog > Products >
{outputs.get("ProductName", "the product")} > Launch product
  https://{region}.console.aws.amazon.com/servicecatalog/home?region={region}#products
or with the AWS CLI:
  aws servicecatalog provision-product --region {region} --product-id {product_id} \\
    --provisioning-artifact-name {chosen.version} --provisioned-product-name <path> \\
    --provisioning-parameters {parameters}

Commit {snapshots}/: it keeps this version's template, so the next publish still offers it.
All outputs: {OUTPUTS_FILE.name}"""
