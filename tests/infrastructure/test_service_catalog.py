"""The Service Catalog product: the portfolio stack and the product's template (the listing stack with the
listing's fields as parameters), synthesized once per module, each with every gate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, RemovalPolicy, Validations, aws_s3 as s3
from aws_cdk.assertions import Template

from stacks.config import ConfigError, function_name_prefix, longest_path, parse_config
from stacks.service_catalog import (
    LAUNCH_SCOPES,
    Publication,
    ServiceCatalogStack,
    build_catalog_app,
    check_model,
    check_principals,
    check_version,
    published_versions,
)
from tests.infrastructure.conftest import ACCOUNT, PROJECT_ROOT, config_with, listing, new_app

PREFIX = "codio-marketplace"
TEAM = f"arn:aws:iam::{ACCOUNT}:role/ListingTeam"
PUBLISHERS = f"arn:aws:iam::{ACCOUNT}:group/teams/Publishers"
CONFIG = config_with(
    listing(
        "ai-skills",
        "PROD_AI",
        pricingModel="contract-with-consumption",
        branding={"supportEmail": "help@example.com", "accentColor": "#ffcc00"},
    ),
    retainResources=True,
    tags={"Owner": "marketplace-team"},
)
MODEL = check_model(CONFIG, "ai-skills")
CERTIFICATE = "12345678-1234-1234-1234-123456789012"


@dataclass(frozen=True)
class Catalog:
    stack: ServiceCatalogStack
    portfolio: Template
    portfolio_file: Path
    product: dict[str, Any]
    product_file: Path
    snapshots: Path
    app: App


def synth_catalog(snapshots: Path, version: str, model: Any = MODEL) -> tuple[App, ServiceCatalogStack, Path]:
    app = new_app()
    _, stack = build_catalog_app(
        CONFIG, Publication(model, (TEAM, PUBLISHERS), version), account=ACCOUNT, app=app, snapshots=snapshots
    )
    assembly = app.synth()
    return app, stack, Path(assembly.directory)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """Version 1.0.0 published earlier (its snapshot kept), then 1.1.0 of a changed template."""
    snapshots = tmp_path_factory.mktemp("service-catalog-versions")
    earlier = MODEL.model_copy(update={"dimensions": ()})
    synth_catalog(snapshots, "1.0.0", earlier)
    app, stack, directory = synth_catalog(snapshots, "1.1.0")
    (product_file,) = directory.glob("*.product.template.json")
    yield Catalog(
        stack=stack,
        portfolio=Template.from_stack(stack),
        portfolio_file=directory / f"{stack.stack_name}.template.json",
        product=json.loads(product_file.read_text()),
        product_file=product_file,
        snapshots=snapshots,
        app=app,
    )


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {key: value for key, value in template["Resources"].items() if value["Type"] == resource_type}


# --- the gates -----------------------------------------------------------------------------------------


def test_both_templates_come_out_of_the_gated_synth(catalog: Catalog) -> None:
    # cdk-nag (AwsSolutions + Serverless) raises on any unacknowledged error; both templates came out.
    assert catalog.portfolio_file.exists()
    assert len(resources(catalog.product, "AWS::Lambda::Function")) >= 6


def test_nag_checks_the_products_template_too(tmp_path: Path) -> None:
    # Given a product template with one bucket that breaks AwsSolutions rules
    app = new_app()
    _, stack = build_catalog_app(
        CONFIG, Publication(MODEL, (TEAM,), "1.0.0"), account=ACCOUNT, app=app, snapshots=tmp_path
    )
    s3.Bucket(stack.product_stack, "CarelessBucket", removal_policy=RemovalPolicy.DESTROY)
    # When it is synthesized, Then the synth stops and names the bucket in the product
    with pytest.raises(RuntimeError) as failure:
        app.synth()
    message = str(failure.value)
    assert "AwsSolutions-S10" in message
    assert f"{PREFIX}-service-catalog/ListingProduct/CarelessBucket" in message
    assert "ListingProduct/Site" not in message  # the listing's own resources pass


def test_every_acknowledgement_gives_a_specific_reason(catalog: Catalog) -> None:
    reasons: dict[str, str] = {}
    for construct in catalog.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                reasons.update(entry.data)
    launch_role = [rule for rule in reasons if "IAM5[Resource::arn:<AWS::Partition>:dynamodb" in rule]
    assert launch_role, "the launch role's scoped wildcards are acknowledged one by one"
    for rule, reason in reasons.items():
        assert len(reason) >= 50, f"{rule}: the reason is too short to explain anything: {reason!r}"


def test_cfn_lint_passes_on_the_portfolio_and_the_product_template(catalog: Catalog) -> None:
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run(  # noqa: S603
        [
            cfn_lint,
            "--config-file",
            str(PROJECT_ROOT / ".cfnlintrc.yaml"),
            str(catalog.portfolio_file),
            str(catalog.product_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the product's parameters ----------------------------------------------------------------------------


def test_the_listings_fields_are_the_products_parameters(catalog: Catalog) -> None:
    parameters = catalog.product["Parameters"]
    assert set(parameters) == {
        "ListingName",
        "ListingDescription",
        "ProductCode",
        "ListingPath",
        "SupportEmail",
        "NotificationEmail",
    }
    assert (parameters["ListingName"]["MinLength"], parameters["ListingName"]["MaxLength"]) == (1, 72)
    assert (parameters["ListingDescription"]["MinLength"], parameters["ListingDescription"]["MaxLength"]) == (
        1,
        1000,
    )
    path = parameters["ListingPath"]
    assert path["AllowedPattern"] == "^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
    assert path["MaxLength"] == longest_path(PREFIX) < 40  # the function names' limit, as in the config
    assert parameters["ProductCode"]["AllowedPattern"] == "^[-a-zA-Z0-9/=:_.@]{1,255}$"
    assert parameters["SupportEmail"]["Default"] == "help@example.com"  # the model listing's
    for name in ("ListingName", "ListingDescription", "ProductCode", "ListingPath"):
        assert "Default" not in parameters[name], f"{name}: every launch gives its own"
        assert parameters[name]["ConstraintDescription"]


@pytest.mark.parametrize(
    ("parameter", "field", "good", "bad"),
    [
        (
            "ListingPath",
            "path",
            ["ai-skills", "x", "data2-analytics"],
            ["Bad_Path", "-x", "a--b", "2x", "a-", ""],
        ),
        ("ProductCode", "productCode", ["PROD_AI", "a1b2/c=d:e.f@g"], ["has space", "", "x" * 256, "é"]),
    ],
)
def test_a_bad_value_is_refused_at_launch_by_the_same_rule_as_the_config(
    catalog: Catalog, parameter: str, field: str, good: list[str], bad: list[str]
) -> None:
    rules = catalog.product["Parameters"][parameter]
    # CloudFormation refuses a value its AllowedPattern does not match as a whole.
    for value in good:
        assert accepted_at_launch(rules, value), f"{parameter}={value!r} should launch"
        config_accepts(field, value)
    for value in bad:
        assert not accepted_at_launch(rules, value), f"{parameter}={value!r} should be refused"
        with pytest.raises(ConfigError):
            config_accepts(field, value)


def test_a_too_long_name_or_path_is_refused_at_launch(catalog: Catalog) -> None:
    parameters = catalog.product["Parameters"]
    assert not accepted_at_launch(parameters["ListingName"], "x" * 73)
    assert accepted_at_launch(parameters["ListingName"], "x" * 72)
    assert not accepted_at_launch(parameters["ListingPath"], "a" * (longest_path(PREFIX) + 1))
    for address in ("SupportEmail", "NotificationEmail"):
        assert not accepted_at_launch(parameters[address], "not an address")
        assert accepted_at_launch(parameters[address], "")
        assert accepted_at_launch(parameters[address], "ops@example.com")


def test_without_a_notification_address_a_launch_gets_no_e_mail_subscription_or_rule(
    catalog: Catalog,
) -> None:
    assert catalog.product["Parameters"]["NotificationEmail"]["Default"] == ""  # the config names none
    assert catalog.product["Conditions"]["HasNotificationEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationEmail"}, ""]}]
    }
    conditional = [
        resource["Type"]
        for resource in catalog.product["Resources"].values()
        if resource.get("Condition") == "HasNotificationEmail"
    ]
    assert sorted(conditional) == [
        "AWS::Events::Rule",
        "AWS::SNS::Subscription",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
    ]
    (subscription,) = resources(catalog.product, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == {"Ref": "NotificationEmail"}
    # The alarm topic is there either way, for anything to subscribe to.
    (topic,) = resources(catalog.product, "AWS::SNS::Topic").values()
    assert "Condition" not in topic


def accepted_at_launch(rules: dict[str, Any], value: str) -> bool:
    if "AllowedPattern" in rules and re.fullmatch(rules["AllowedPattern"], value) is None:
        return False
    return rules.get("MinLength", 0) <= len(value) <= rules.get("MaxLength", 4096)


def config_accepts(field: str, value: str) -> None:
    entry = {**listing("ok", "PROD_OK"), field: value}
    parse_config({"marketplaceListings": {"x": entry}})


def test_the_launched_stacks_names_come_from_its_path_parameter(catalog: Catalog) -> None:
    text = json.dumps(catalog.product["Resources"])
    assert "ai-skills" not in text and "PROD_AI" not in text  # nothing of the model listing's identity
    tables = resources(catalog.product, "AWS::DynamoDB::GlobalTable")
    names = [table["Properties"]["TableName"] for table in tables.values()]
    assert {"Fn::Join": ["", [f"{PREFIX}-subscribers-", {"Ref": "ListingPath"}]]} in names
    functions = resources(catalog.product, "AWS::Lambda::Function")
    named = [f["Properties"]["FunctionName"] for f in functions.values() if "FunctionName" in f["Properties"]]
    usage = {"Fn::Join": ["", [f"{function_name_prefix(PREFIX)}-", {"Ref": "ListingPath"}, "-UsageHandler"]]}
    assert usage in named
    environment = [
        f["Properties"]["Environment"]["Variables"]
        for f in functions.values()
        if "Environment" in f["Properties"]
    ]
    assert {"Ref": "ProductCode"} in [variables.get("PRODUCT_CODE") for variables in environment]
    assert "contract-with-consumption" in [variables.get("PRICING_MODEL") for variables in environment]


# --- versions --------------------------------------------------------------------------------------------


def test_the_products_template_is_an_asset_of_the_portfolio_stack(catalog: Catalog) -> None:
    manifest = json.loads(
        (catalog.portfolio_file.parent / f"{catalog.stack.stack_name}.assets.json").read_text()
    )
    (asset_hash,) = [
        key
        for key, asset in manifest["files"].items()
        if asset["source"]["path"] == catalog.product_file.name
    ]
    (product,) = catalog.portfolio.find_resources("AWS::ServiceCatalog::CloudFormationProduct").values()
    current = product["Properties"]["ProvisioningArtifactParameters"][0]
    assert f"/{asset_hash}.json" in json.dumps(current["Info"]["LoadTemplateFromURL"])


def test_each_release_is_a_version_and_earlier_ones_are_kept(catalog: Catalog) -> None:
    (product,) = catalog.portfolio.find_resources("AWS::ServiceCatalog::CloudFormationProduct").values()
    versions = [artifact["Name"] for artifact in product["Properties"]["ProvisioningArtifactParameters"]]
    assert versions == ["1.1.0", "1.0.0"]
    assert published_versions(catalog.snapshots, catalog.stack.snapshot_stem) == ["1.0.0", "1.1.0"]
    current = catalog.snapshots / f"{catalog.stack.snapshot_stem}.1.1.0.product.template.json"
    assert json.loads(current.read_text()) == catalog.product


def test_a_changed_template_cannot_be_published_under_a_published_versions_name(catalog: Catalog) -> None:
    # 1.0.0 was published without dimensions; the model listing now has one.
    with pytest.raises(RuntimeError, match=re.escape("1.0.0")):
        synth_catalog(catalog.snapshots, "1.0.0")


# --- who launches, and with what -------------------------------------------------------------------------


def test_the_launch_principals_are_given_the_portfolio(catalog: Catalog) -> None:
    associations = catalog.portfolio.find_resources("AWS::ServiceCatalog::PortfolioPrincipalAssociation")
    assert sorted(a["Properties"]["PrincipalARN"] for a in associations.values()) == sorted(
        [TEAM, PUBLISHERS]
    )
    (constraint,) = catalog.portfolio.find_resources("AWS::ServiceCatalog::LaunchRoleConstraint").values()
    role_id = constraint["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    role = catalog.portfolio.to_json()["Resources"][role_id]
    (assume,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert assume["Principal"] == {"Service": "servicecatalog.amazonaws.com"}


def launch_policy(catalog: Catalog) -> list[dict[str, Any]]:
    role_id = catalog.stack.resolve(
        catalog.stack.get_logical_id(catalog.stack.launch_role.role.node.default_child)
    )  # type: ignore[arg-type]
    # The statements pass an inline policy's size limit: CDK moves the rest into managed policies.
    policies = [
        policy
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        for policy in catalog.portfolio.find_resources(kind).values()
        if {"Ref": role_id} in policy["Properties"].get("Roles", [])
    ]
    return [
        statement for policy in policies for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def rendered(value: Any) -> str:
    """An ARN as text: Fn::Join parts joined, pseudo parameters and references as <...>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(rendered(part) for part in value["Fn::Join"][1])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    raise AssertionError(value)


def test_the_launch_role_is_scoped_to_the_prefix_and_the_products_stacks(catalog: Catalog) -> None:
    statements = {statement["Sid"]: statement for statement in launch_policy(catalog)}
    assert set(statements) == set(LAUNCH_SCOPES)
    camel = function_name_prefix(PREFIX)
    for sid, statement in statements.items():
        targets = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for target in map(rendered, targets):
            if target == "*":
                # Only actions without resource-level permissions, or held by a condition.
                assert sid in {"ReadTemplates", "GeneratedSecret"} or "Condition" in statement, sid
                continue
            assert target.startswith("arn:<AWS::Partition>:") or target.startswith("<"), target
            name = re.split(r"[:/]", target, maxsplit=5)[-1]
            assert (
                "<AWS::AccountId>" in target
                or target.startswith("<")
                or ":s3:::" in target
                or ":apigateway:" in target
            ), target
            ours = (
                f"{PREFIX}-",
                f"{camel}-",
                "SC-",
                "sc-",
                f"/aws/lambda/{camel}-",
                f"/aws/apigateway/{PREFIX}-",
            )
            scoped = any(part in name for part in ours) or sid in {
                "Layer", "OriginSecret", "Api", "Distribution", "ProductAssets"
            }  # fmt: skip
            assert scoped, f"{sid}: {target} is held neither to the prefix nor to the product's stacks"
    assert statements["ProductStacks"]["Resource"]["Fn::Join"][1][-1].endswith(":stack/SC-*/*")
    assert statements["PassRoles"]["Condition"]["StringEquals"]["iam:PassedToService"] == [
        "lambda.amazonaws.com",
        "apigateway.amazonaws.com",
    ]
    assert statements["ProductTemplate"]["Condition"] == {
        "StringEquals": {"s3:ExistingObjectTag/servicecatalog:provisioning": "true"}
    }
    # No service-wide wildcard action anywhere.
    actions = [
        action
        for s in statements.values()
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not [action for action in actions if action.endswith(":*")]


def test_the_launch_role_covers_every_service_the_products_template_uses(catalog: Catalog) -> None:
    services = {
        resource["Type"].split("::")[1].lower()
        for resource in catalog.product["Resources"].values()
        if resource["Type"].startswith("AWS::")
    }
    granted = {
        action.split(":")[0]
        for statement in launch_policy(catalog)
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert services - granted == set()
    # The custom resource (CDK's page deployment) runs as the launch role.
    assert "Custom::CDKBucketDeployment" in {
        resource["Type"] for resource in catalog.product["Resources"].values()
    }
    assert "lambda:InvokeFunction" in {
        action for statement in launch_policy(catalog) for action in statement["Action"]
    }


# --- what a publish is given -----------------------------------------------------------------------------


def test_bad_launch_principals_are_refused_naming_the_option() -> None:
    with pytest.raises(ConfigError) as refused:
        check_principals(["arn:aws:iam::123:role/x", "ListingTeam", f"arn:aws:iam::{ACCOUNT}:policy/p"])
    assert len(refused.value.problems) == 3
    assert all(problem.startswith("--launch-principal ") for problem in refused.value.problems)
    with pytest.raises(ConfigError, match="name at least one IAM role"):
        check_principals([])
    with pytest.raises(ConfigError, match="is in account 111122223333, but the portfolio is in account"):
        check_principals(["arn:aws:iam::111122223333:role/Team"], ACCOUNT)
    assert check_principals([TEAM, TEAM, PUBLISHERS], ACCOUNT) == (TEAM, PUBLISHERS)


def test_a_bad_version_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("--product-version '1.0 beta'")):
        check_version("1.0 beta")
    assert check_version("2026.12-rc_1") == "2026.12-rc_1"


def test_a_legacy_listing_or_one_with_a_custom_domain_is_no_model() -> None:
    config = config_with(
        listing(
            "old",
            "PROD_OLD",
            legacy=True,
            customDomain={
                "domainName": "old.example.com",
                "certificateArn": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/{CERTIFICATE}",
            },
        )
    )
    with pytest.raises(ConfigError) as refused:
        check_model(config, "old")
    assert [problem.split(":")[0] for problem in refused.value.problems] == [
        "marketplaceListings.old.legacy",
        "marketplaceListings.old.customDomain",
    ]
    with pytest.raises(ConfigError, match="--listing nope: no listing"):
        check_model(config, "nope")
