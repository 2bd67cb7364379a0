"""The listing stack as an AWS Service Catalog product: a team in the organization launches a new listing's
stack from the Service Catalog console, giving the listing's fields as the template's parameters.

The portfolio stack (`<prefix>-service-catalog`) holds a portfolio, one product and its launch role. The
product's template is the listing stack itself (`ListingContents`, as a CDK ProductStack), modelled on one
listing of the config:

- a launch varies what is text: the listing's name, description, product code, path, support e-mail and
  notification e-mail (none: no e-mail subscription, through a condition). Each parameter takes what the
  config takes (the same lengths and patterns, read from `Listing`'s own rules), so a bad value is refused
  by CloudFormation before anything is created;
- the model listing fixes what decides the stack's shape: the pricing model, the billing dimensions (the
  dashboard has a widget per dimension, the page a row per dimension) and the page's branding colours. A
  launched listing is never legacy (legacy identity is for listings integrated before 2024) and has no
  custom domain (a certificate belongs to one domain); a model listing with either is refused.

Each release is a product version (its name: `--product-version`, default the project's version). Service
Catalog keeps every earlier version: their templates are snapshots in `service-catalog-versions/`, which
`--publish-service-catalog` writes and the repository keeps.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import (
    App,
    Aws,
    CfnCondition,
    CfnOutput,
    CfnParameter,
    CfnResource,
    Duration,
    Fn,
    Names,
    RemovalPolicy,
    Stack,
    Tags,
    Validations,
    aws_iam as iam,
    aws_s3 as s3,
    aws_servicecatalog as servicecatalog,
    aws_sns as sns,
    aws_sqs as sqs,
)
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import Construct, IConstruct

from stacks.config import (
    ConfigError,
    DeploymentSettings,
    Listing,
    MarketplaceConfig,
    function_name_prefix,
    longest_path,
)
from stacks.constructs.landing_site import acknowledge_cdk_copy_function
from stacks.listing_stack import ListingContents
from stacks.nag import acknowledge
from stacks.naming import ListingNames

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The templates of every published version, one file each; Service Catalog keeps offering them.
SNAPSHOTS = PROJECT_ROOT / "service-catalog-versions"
PRODUCT_STACK_ID = "ListingProduct"

# Who may launch the product: IAM roles, users or groups (paths allowed), one account each.
_PRINCIPAL = r"^arn:aws[a-z-]*:iam::(\d{12}):(role|user|group)/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,128}$"
# A version's name is part of its snapshot's file name: letters, digits, dots, hyphens, underscores.
_VERSION = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# Service Catalog stacks are named SC-<account>-pp-<provisioned product id>.
SERVICE_CATALOG_STACKS = "SC-*"
# An address or nothing (the buyer pages then show no support contact).
_OPTIONAL_EMAIL = r"^$|^[^\s@]+@[^\s@]+\.[^\s@]+$"


def portfolio_stack_name(prefix: str) -> str:
    return f"{prefix}-service-catalog"


@dataclass(frozen=True)
class Publication:
    """What `--publish-service-catalog` publishes: the product modelled on `model`, as version `version`,
    launchable by `principals`."""

    model: Listing
    principals: tuple[str, ...]
    version: str


def check_principals(principals: Sequence[str], account: str | None = None) -> tuple[str, ...]:
    """The launch principals, or a `ConfigError` naming each bad one (and the option it came from)."""
    problems = []
    if not principals:
        problems.append(
            "--launch-principal: name at least one IAM role, user or group that may launch the product, "
            "e.g. --launch-principal arn:aws:iam::111122223333:role/ListingTeam"
        )
    for principal in principals:
        match = re.fullmatch(_PRINCIPAL, principal)
        if match is None:
            problems.append(
                f"--launch-principal {principal}: not the ARN of an IAM role, user or group "
                "(arn:aws:iam::<12-digit account>:role/<name>, :user/<name> or :group/<name>)"
            )
        elif account is not None and match.group(1) != account:
            problems.append(
                f"--launch-principal {principal}: is in account {match.group(1)}, but the portfolio is in "
                f"account {account}; a portfolio is given only to principals of its own account"
            )
    if problems:
        raise ConfigError(problems)
    return tuple(dict.fromkeys(principals))


def publication(
    config: MarketplaceConfig,
    listing_path: str,
    principals: Sequence[str],
    version: str | None,
    account: str | None = None,
) -> Publication:
    """Everything `--publish-service-catalog` is given, checked, with one `ConfigError` for every problem."""
    problems: list[str] = []
    checked: dict[str, Any] = {}
    for name, check in (
        ("model", lambda: check_model(config, listing_path)),
        ("principals", lambda: check_principals(principals, account)),
        ("version", lambda: check_version(version or project_version())),
    ):
        try:
            checked[name] = check()
        except ConfigError as error:
            problems += error.problems
    if problems:
        raise ConfigError(problems)
    return Publication(checked["model"], checked["principals"], checked["version"])


def project_version() -> str:
    """The project's version (pyproject.toml): the product version a publish makes unless told another."""
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def check_version(version: str) -> str:
    if re.fullmatch(_VERSION, version) is None:
        raise ConfigError(
            [
                f"--product-version {version!r}: a version name is 1-100 letters, digits, dots, hyphens and "
                "underscores, starting with a letter or digit, e.g. 1.4.0"
            ]
        )
    return version


def check_model(config: MarketplaceConfig, path: str) -> Listing:
    """The listing the product is modelled on, or a `ConfigError` saying why it cannot be one."""
    keyed = {listing.path: (key, listing) for key, listing in config.marketplace_listings.items()}
    if path not in keyed:
        raise ConfigError([f"--listing {path}: no listing in the config has this path"])
    key, listing = keyed[path]
    problems = []
    if listing.legacy:
        problems.append(
            f"marketplaceListings.{key}.legacy: a listing launched from Service Catalog is a new listing; "
            "model the product on a listing that is not legacy"
        )
    if listing.custom_domain is not None:
        problems.append(
            f"marketplaceListings.{key}.customDomain: a custom domain and its certificate belong to one "
            "listing; model the product on a listing without one"
        )
    if problems:
        raise ConfigError(problems)
    return listing


def parameter_rules(field: str) -> dict[str, Any]:
    """A `Listing` field's own rules (JSON Schema keywords), so the parameter refuses what the config does."""
    schema: dict[str, Any] = Listing.model_json_schema(by_alias=True)["properties"][field]
    return schema


class ListingProductStack(ListingContents, servicecatalog.ProductStack):
    """The product's template: the listing stack, with the listing's text fields as parameters."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        model: Listing,
        settings: DeploymentSettings,
        asset_bucket: s3.IBucket,
        asset_bucket_name: str,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            asset_bucket=asset_bucket,
            description=f"An AWS Marketplace SaaS listing ({model.pricing_model.value}), launched from "
            "Service Catalog",
        )
        prefix = settings.name_prefix
        self.parameters = self._parameters(prefix, model, settings.notification_email)
        listing = self._launched_listing(model)
        self._build_listing(
            listing,
            # The seller's address is the parameter's default: the launch decides.
            settings.model_copy(update={"notification_email": None}),
            ListingNames(prefix=prefix, path=listing.path),
        )
        self._email_only_with_an_address()
        # The page's deployment copies it from the product's asset bucket (not CDK's, as a listing stack's).
        acknowledge(
            self,
            {
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{asset_bucket_name}/*]": (
                    "CDK's deployment function reads the landing page's files from the product's asset "
                    "bucket, where publishing copied them: only that bucket's objects."
                )
            },
        )

    def _parameters(
        self, prefix: str, model: Listing, notification_email: str | None
    ) -> dict[str, CfnParameter]:
        name = parameter_rules("name")
        description = parameter_rules("description")
        product_code = parameter_rules("productCode")
        path = parameter_rules("path")
        path_limit = min(path["maxLength"], longest_path(prefix))
        parameters = {
            "ListingName": CfnParameter(
                self,
                "ListingName",
                type="String",
                min_length=name["minLength"],
                max_length=name["maxLength"],
                description="The product name buyers see; also its title on AWS Marketplace.",
                constraint_description=f"{name['minLength']} to {name['maxLength']} characters",
            ),
            "ListingDescription": CfnParameter(
                self,
                "ListingDescription",
                type="String",
                min_length=description["minLength"],
                max_length=description["maxLength"],
                description="One paragraph for the landing page.",
                constraint_description=(
                    f"{description['minLength']} to {description['maxLength']} characters"
                ),
            ),
            "ProductCode": CfnParameter(
                self,
                "ProductCode",
                type="String",
                allowed_pattern=product_code["pattern"],
                description="The product code AWS Marketplace assigned to the listing.",
                constraint_description="1-255 characters of letters, digits and - / = : _ . @",
            ),
            "ListingPath": CfnParameter(
                self,
                "ListingPath",
                type="String",
                min_length=path["minLength"],
                max_length=path_limit,
                allowed_pattern=path["pattern"],
                description=(
                    f"A short slug naming the listing's resources ({prefix}-<path>-...); unique in the "
                    "account."
                ),
                constraint_description=(
                    f"1-{path_limit} lowercase letters, digits and single hyphens, starting with a letter, "
                    "e.g. ai-skills"
                ),
            ),
            "SupportEmail": CfnParameter(
                self,
                "SupportEmail",
                type="String",
                default=str(model.branding.support_email or ""),
                max_length=254,
                allowed_pattern=_OPTIONAL_EMAIL,
                description="Shown to buyers as the support contact (empty: none).",
                constraint_description="an e-mail address such as support@example.com, or nothing",
            ),
            "NotificationEmail": CfnParameter(
                self,
                "NotificationEmail",
                type="String",
                default=str(notification_email or ""),
                max_length=254,
                allowed_pattern=_OPTIONAL_EMAIL,
                description="Where the listing's alarms and subscriber changes are e-mailed (empty: none).",
                constraint_description="an e-mail address such as ops@example.com, or nothing",
            ),
        }
        self.template_options.metadata = {
            "AWS::CloudFormation::Interface": {
                "ParameterGroups": [
                    {"Label": {"default": "The listing on AWS Marketplace"}, "Parameters": list(parameters)}
                ],
                "ParameterLabels": {
                    "ListingName": {"default": "Name"},
                    "ListingDescription": {"default": "Description"},
                    "ProductCode": {"default": "Product code"},
                    "ListingPath": {"default": "Path"},
                    "SupportEmail": {"default": "Support e-mail"},
                    "NotificationEmail": {"default": "Notification e-mail"},
                },
            }
        }
        return parameters

    def _email_only_with_an_address(self) -> None:
        """A launch without a notification address gets no e-mail subscription (nor its dead-letter queue)
        and no rule e-mailing subscriber changes, as a listing of the config without one; the alarm topic
        stays, for anything to subscribe to."""
        address = self.parameters["NotificationEmail"].value_as_string
        condition = CfnCondition(
            self, "HasNotificationEmail", expression=Fn.condition_not(Fn.condition_equals(address, ""))
        )
        email_only: list[IConstruct | None] = [
            child
            for child in self.notifications.node.find_all()
            if isinstance(child, (sns.CfnSubscription, sqs.CfnQueue, sqs.CfnQueuePolicy))
        ]
        rule = self.lifecycle.node.find_child("EmailSubscriberChanges").node.default_child
        email_only.append(rule)
        for resource in email_only:
            assert isinstance(resource, CfnResource), resource
            resource.cfn_options.condition = condition
        # The lifecycle's dead-letter queue lets that rule (by its ARN) send what it could not deliver:
        # without the rule, the statement names a rule that does not exist, and so lets nothing in.
        assert isinstance(rule, CfnResource)
        rule_arn = self.resolve(rule.get_att("Arn"))
        policy = self.lifecycle.dead_letters.node.find_child("Policy")
        assert isinstance(policy, sqs.QueuePolicy), policy
        cfn_policy = policy.node.default_child
        assert isinstance(cfn_policy, CfnResource)
        document = self.resolve(policy.document.to_json())
        absent = f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/no-notification-email"
        replaced = 0
        for statement in document["Statement"]:
            source = statement.get("Condition", {}).get("ArnEquals", {})
            if source.get("aws:SourceArn") == rule_arn:
                source["aws:SourceArn"] = Fn.condition_if(condition.logical_id, rule_arn, absent)
                replaced += 1
        assert replaced == 1, document
        cfn_policy.add_property_override("PolicyDocument", document)

    def _launched_listing(self, model: Listing) -> Listing:
        """The model listing with the launch's parameters in place of its own name, code, path and contact.
        (A copy without validation: the values are CloudFormation references, checked by the parameters.)"""
        value = {key: parameter.value_as_string for key, parameter in self.parameters.items()}
        return model.model_copy(
            update={
                "name": value["ListingName"],
                "description": value["ListingDescription"],
                "product_code": value["ProductCode"],
                "path": value["ListingPath"],
                # Found by its product code (the reconciliation keeps it once found).
                "entity_id": None,
                "branding": model.branding.model_copy(update={"support_email": value["SupportEmail"]}),
                "notification_email": value["NotificationEmail"],
                "tags": {},
            }
        )


class ServiceCatalogStack(Stack):
    """The portfolio, its one product (every published version of it) and the launch role."""

    def __init__(
        self,
        scope: Construct,
        *,
        publication: Publication,
        settings: DeploymentSettings,
        account: str,
        snapshots: Path = SNAPSHOTS,
    ) -> None:
        prefix = settings.name_prefix
        name = portfolio_stack_name(prefix)
        super().__init__(
            scope,
            name,
            stack_name=name,
            description="AWS Marketplace listing stacks as a Service Catalog product",
        )
        self.prefix = prefix
        self.product_name = f"{prefix} Marketplace SaaS listing"
        # ProductStack needs the bucket's name as plain text (it is written into the product's template).
        self.asset_bucket_name = f"{prefix}-sc-{account}-{settings.region}"
        self.asset_bucket = self._asset_bucket(self.asset_bucket_name)
        self.product_stack = ListingProductStack(
            self,
            PRODUCT_STACK_ID,
            model=publication.model,
            settings=settings,
            asset_bucket=self.asset_bucket,
            asset_bucket_name=self.asset_bucket_name,
        )
        snapshots.mkdir(parents=True, exist_ok=True)
        self.history = servicecatalog.ProductStackHistory(
            self,
            "History",
            product_stack=self.product_stack,
            current_version_name=publication.version,
            # A changed template under a published version's name is refused: publish it as a new version.
            current_version_locked=True,
            directory=str(snapshots),
            description=f"Release {publication.version}",
        )
        self.snapshot_stem = f"{Names.unique_id(self.history)}.{self.product_stack.artifact_id}"
        earlier = [
            version
            for version in published_versions(snapshots, self.snapshot_stem)
            if version != publication.version
        ]
        self.portfolio = servicecatalog.Portfolio(
            self,
            "Portfolio",
            display_name=f"{prefix} AWS Marketplace listings",
            provider_name=prefix,
            description="Launch a new AWS Marketplace SaaS listing's stack (landing page, fulfillment, "
            "metering, subscription lifecycle) from its name, description, product code and path.",
        )
        self.product = servicecatalog.CloudFormationProduct(
            self,
            "Product",
            product_name=self.product_name,
            owner=prefix,
            description=(
                f"A {publication.model.pricing_model.value} listing's stack, with the billing dimensions "
                f"{', '.join(d.name for d in publication.model.dimensions) or '(none)'}"
            ),
            product_versions=[
                self.history.current_version(),
                *(self.history.version_from_snapshot(version) for version in earlier),
            ],
        )
        self.portfolio.add_product(self.product)
        self._acknowledge_asset_copy()
        self.launch_role = LaunchRole(self, "LaunchRole", prefix=prefix, asset_bucket=self.asset_bucket)
        self.portfolio.set_launch_role(self.product, self.launch_role.role)
        for index, principal in enumerate(publication.principals):
            _give_access(self.portfolio, f"Principal{index}", principal)
        for key, value in {**settings.tags, "Environment": settings.environment}.items():
            Tags.of(self).add(key, value)
        outputs = {
            "PortfolioId": (self.portfolio.portfolio_id, "The portfolio the launch principals were given"),
            "ProductId": (
                self.product.product_id,
                "Launch it: aws servicecatalog provision-product --product-id",
            ),
            "ProductName": (self.product_name, "The product's name in the Service Catalog console"),
            "ProductVersion": (publication.version, "The version this publish made (earlier ones are kept)"),
            "LaunchRoleArn": (self.launch_role.role.role_arn, "The role Service Catalog launches it with"),
        }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)

    def _acknowledge_asset_copy(self) -> None:
        """The function CDK adds to copy the product's assets into the asset bucket on each publish."""
        acknowledge_cdk_copy_function(
            self,
            self.asset_bucket,
            function=(
                "CDK's own BucketDeployment function, which copies the product's assets into its asset "
                "bucket on each publish: its runtime, tracing and packaging are set by aws-cdk-lib and move "
                "with it."
            ),
            dead_letters=(
                "CloudFormation invokes it asynchronously and it answers CloudFormation itself: a failed "
                "copy fails the publish. A dead-letter queue would keep a request whose response URL "
                "expired."
            ),
            copy=(
                "CDK's deployment function copies the product's assets from the CDK asset bucket into the "
                "product's asset bucket: CDK scopes these object wildcards to those two buckets."
            ),
        )

    def _asset_bucket(self, bucket_name: str) -> s3.Bucket:
        """Where the product's Lambda code and pages are copied for launches (CDK's asset bucket is for
        CDK's own deployments); kept when the portfolio stack goes, as launched stacks still run from it."""
        logs = s3.Bucket(
            self,
            "AssetAccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
        )
        acknowledge(
            logs,
            {"AwsSolutions-S1": "This is the access-log bucket itself; logging it to itself would loop."},
        )
        return s3.Bucket(
            self,
            "Assets",
            bucket_name=bucket_name,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            server_access_logs_bucket=logs,
            server_access_logs_prefix="assets/",
        )


def _give_access(portfolio: servicecatalog.Portfolio, construct_id: str, principal: str) -> None:
    match = re.fullmatch(_PRINCIPAL, principal)
    assert match is not None, principal  # check_principals ran first
    kind = match.group(2)
    if kind == "role":
        portfolio.give_access_to_role(iam.Role.from_role_arn(portfolio, construct_id, principal))
    elif kind == "user":
        portfolio.give_access_to_user(iam.User.from_user_arn(portfolio, construct_id, principal))
    else:
        portfolio.give_access_to_group(iam.Group.from_group_arn(portfolio, construct_id, principal))


def published_versions(snapshots: Path, stem: str) -> list[str]:
    """The versions whose templates `snapshots` keeps: ProductStackHistory names each snapshot
    `<stem>.<version>.product.template.json`, where the stem names the history and its product stack."""
    suffix = ".product.template.json"
    return sorted(
        file.name.removeprefix(f"{stem}.").removesuffix(suffix)
        for file in snapshots.glob(f"{stem}.*{suffix}")
    )


class LaunchRole(Construct):
    """The role Service Catalog launches the product with (its launch constraint): CloudFormation on the
    product's stacks, and what creating, updating and deleting the template's resources takes, scoped to the
    name prefix where the resource's name is ours to choose."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, asset_bucket: s3.Bucket) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("servicecatalog.amazonaws.com"),
            description=f"Launches, updates and terminates the {prefix} Marketplace SaaS listing product",
        )
        for statement in launch_statements(prefix, asset_bucket.bucket_arn):
            self.role.add_to_policy(statement)
        # The same statements as cdk-nag reads them (pseudo parameters and references as <...>).
        stack = Stack.of(self)
        bucket_id = stack.resolve(stack.get_logical_id(asset_bucket.node.default_child))  # type: ignore[arg-type]
        shown = launch_statements(
            prefix,
            f"<{bucket_id}.Arn>",
            partition="<AWS::Partition>",
            region="<AWS::Region>",
            account="<AWS::AccountId>",
        )
        reasons: dict[str, list[str]] = {}
        for statement in shown:
            document = statement.to_statement_json()
            why = LAUNCH_SCOPES[document["Sid"]]
            for key, values in (("Resource", document["Resource"]), ("Action", document["Action"])):
                for value in [values] if isinstance(values, str) else values:
                    if "*" in value:
                        reasons.setdefault(f"AwsSolutions-IAM5[{key}::{value}]", []).append(why)
        acknowledge(
            self.role, {finding: " ".join(dict.fromkeys(texts)) for finding, texts in reasons.items()}
        )


_GENERATED = "named by CloudFormation after the launched stack (SC-<account>-pp-<id>-...)"
_NO_NAME = "its ARN holds no name of ours (AWS generates the id), so it is held to the account"
# Why each statement's resources (and action wildcards) are as wide as they are: the cdk-nag reasons.
LAUNCH_SCOPES = {
    "ProductStacks": "Service Catalog names the stacks it launches SC-<account>-pp-<id>; only those.",
    "ReadTemplates": "GetTemplateSummary and ValidateTemplate support no resource-level permissions.",
    "ProductTemplate": (
        "Service Catalog's own copy of the product's template, in a bucket it chooses: AWS's documented "
        "launch-role statement, held to objects tagged servicecatalog:provisioning=true."
    ),
    "ProductAssets": "The product's Lambda code and pages: every object of the product's own asset bucket.",
    "Tables": "The listing's tables are named <prefix>-<kind>-<path>; Describe*/List* only read them.",
    "Functions": (
        "The listing's functions are named <PrefixCamel>-<path>-<role>; CDK's deployment function is "
        f"{_GENERATED}."
    ),
    "EventSourceMappings": "Event source mappings have generated ids: held to the listing's functions.",
    "Layer": f"The AWS CLI layer of CDK's deployment function: {_NO_NAME}.",
    "LogGroups": "The functions' and the API's log groups, named after the functions and the prefix.",
    "Roles": f"The functions' and the API's roles are {_GENERATED}.",
    "PassRoles": f"Only to Lambda and API Gateway, and only the roles {_GENERATED}.",
    "Queues": f"The dead-letter and event queues are {_GENERATED}.",
    "Topic": "The listing's notification topic is named <prefix>-<path>-notifications.",
    "Events": f"The seller event bus is named <prefix>-<path>-subscribers; the rules are {_GENERATED}.",
    "Buckets": (
        f"The page bucket is named <prefix>-<path>-<account>; its access-log bucket is {_GENERATED}. "
        "GetBucket*/PutBucket* are the bucket's own settings (policy, logging, versioning, ownership)."
    ),
    "Alarms": "The listing's alarms are named <prefix>-<path>-<signal>, e.g. <prefix>-<path>-api-5xx.",
    "Dashboard": "The listing's CloudWatch dashboard is named <prefix>-<path>, after its stack.",
    "StateParameter": "The reconciliation's state parameter is named /<prefix>-<path>/reconciliation.",
    "OriginSecret": f"The key CloudFront sends to the API: a generated secret, {_NO_NAME} and region.",
    "GeneratedSecret": (
        "GetRandomPassword (the secret's generated value) supports no resource-level permissions."
    ),
    "Api": f"The API, its key and usage plan: {_NO_NAME} and region (API Gateway ARNs name no account).",
    "Distribution": f"The distribution, its origin access control and headers policy: {_NO_NAME}.",
}


def launch_statements(
    prefix: str,
    asset_bucket_arn: str,
    *,
    partition: str = Aws.PARTITION,
    region: str = Aws.REGION,
    account: str = Aws.ACCOUNT_ID,
) -> list[iam.PolicyStatement]:
    """What launching, updating and terminating the product's template takes, service by service (one
    statement per resource type family the template uses; `LAUNCH_SCOPES` says which names each is held to).

    Named by the template, hence scoped to the prefix: tables, functions, log groups, topic, event bus,
    site bucket, alarms, dashboard, SSM parameter. Named by CloudFormation after the stack (`SC-...`):
    roles, queues, rules, the access-log bucket and CDK's deployment function. Without a name in their ARN
    (held to the account and region only): the API Gateway API, the CloudFront distribution and its
    policies, the Lambda layer and the generated secret.
    """
    camel = function_name_prefix(prefix)
    stacks = SERVICE_CATALOG_STACKS

    def arn(service: str, resource: str, *, regional: bool = True) -> str:
        return f"arn:{partition}:{service}:{region if regional else ''}:{account}:{resource}"

    def statement(
        sid: str, actions: Iterable[str], resources: Iterable[str], **extra: Any
    ) -> iam.PolicyStatement:
        return iam.PolicyStatement(sid=sid, actions=sorted(set(actions)), resources=list(resources), **extra)

    def tagging(service: str) -> list[str]:
        return [f"{service}:TagResource", f"{service}:UntagResource", f"{service}:ListTagsForResource"]

    return [
        statement(
            "ProductStacks",
            [
                *(f"cloudformation:{verb}Stack" for verb in ("Create", "Update", "Delete")),
                "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                "cloudformation:DescribeStackResource", "cloudformation:DescribeStackResources",
                "cloudformation:GetTemplate", "cloudformation:SetStackPolicy",
                "cloudformation:ContinueUpdateRollback",
                *(f"cloudformation:{verb}ChangeSet" for verb in ("Create", "Describe", "Execute", "Delete")),
                "cloudformation:TagResource", "cloudformation:UntagResource",
            ],
            [arn("cloudformation", f"stack/{stacks}/*")],
        ),
        statement(
            "ReadTemplates", ["cloudformation:GetTemplateSummary", "cloudformation:ValidateTemplate"], ["*"]
        ),
        # The copy of the template Service Catalog keeps for the launch (AWS's documented condition), and
        # the product's Lambda code and pages.
        statement(
            "ProductTemplate",
            ["s3:GetObject"],
            ["*"],
            conditions={"StringEquals": {"s3:ExistingObjectTag/servicecatalog:provisioning": "true"}},
        ),
        statement("ProductAssets", ["s3:GetObject"], [f"{asset_bucket_arn}/*"]),
        statement(
            "Tables",
            [
                "dynamodb:CreateTable", "dynamodb:UpdateTable", "dynamodb:DeleteTable",
                "dynamodb:CreateTableReplica", "dynamodb:DeleteTableReplica",
                "dynamodb:Describe*", "dynamodb:List*",
                "dynamodb:UpdateContinuousBackups", "dynamodb:UpdateTimeToLive",
                "dynamodb:UpdateContributorInsights", "dynamodb:UpdateTableReplicaAutoScaling",
                "dynamodb:TagResource", "dynamodb:UntagResource",
            ],
            [arn("dynamodb", f"table/{prefix}-*")],
        ),
        statement(
            "Functions",
            [
                "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction",
                "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration", "lambda:PublishVersion",
                "lambda:ListVersionsByFunction",
                "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:DeleteAlias", "lambda:GetAlias",
                "lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy",
                "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency",
                "lambda:PutFunctionEventInvokeConfig", "lambda:UpdateFunctionEventInvokeConfig",
                "lambda:DeleteFunctionEventInvokeConfig", "lambda:GetFunctionEventInvokeConfig",
                "lambda:GetRuntimeManagementConfig", "lambda:PutRuntimeManagementConfig",
                "lambda:GetFunctionRecursionConfig", "lambda:PutFunctionRecursionConfig",
                "lambda:GetFunctionCodeSigningConfig", "lambda:TagResource", "lambda:UntagResource",
                "lambda:ListTags",
                # CloudFormation runs CDK's deployment function (a custom resource) as the launch role.
                "lambda:InvokeFunction",
            ],
            [arn("lambda", f"function:{camel}-*"), arn("lambda", f"function:{stacks}")],
        ),
        statement(
            "EventSourceMappings",
            [
                "lambda:CreateEventSourceMapping", "lambda:UpdateEventSourceMapping",
                "lambda:DeleteEventSourceMapping", "lambda:GetEventSourceMapping",
                "lambda:TagResource", "lambda:UntagResource", "lambda:ListTags",
            ],
            ["*"],
            conditions={"ArnLike": {"lambda:FunctionArn": arn("lambda", f"function:{camel}-*")}},
        ),
        statement(
            "Layer",
            ["lambda:PublishLayerVersion", "lambda:DeleteLayerVersion", "lambda:GetLayerVersion"],
            [arn("lambda", "layer:*")],
        ),
        statement(
            "LogGroups",
            [
                "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy",
                "logs:DeleteRetentionPolicy", "logs:DescribeLogGroups", "logs:TagResource",
                "logs:UntagResource", "logs:ListTagsForResource", "logs:TagLogGroup", "logs:UntagLogGroup",
            ],
            [
                arn("logs", f"log-group:/aws/lambda/{camel}-*"),
                arn("logs", f"log-group:/aws/apigateway/{prefix}-*"),
                arn("logs", f"log-group:/aws/lambda/{stacks}"),
            ],
        ),
        statement(
            "Roles",
            [
                "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole",
                "iam:UpdateRoleDescription", "iam:TagRole", "iam:UntagRole", "iam:PutRolePolicy",
                "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
            ],
            [f"arn:{partition}:iam::{account}:role/{stacks}"],
        ),
        statement(
            "PassRoles",
            ["iam:PassRole"],
            [f"arn:{partition}:iam::{account}:role/{stacks}"],
            conditions={
                "StringEquals": {
                    "iam:PassedToService": ["lambda.amazonaws.com", "apigateway.amazonaws.com"]
                }
            },
        ),
        statement(
            "Queues",
            [
                "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes",
                "sqs:GetQueueUrl", "sqs:TagQueue", "sqs:UntagQueue", "sqs:ListQueueTags",
            ],
            [arn("sqs", stacks)],
        ),
        statement(
            "Topic",
            [
                "sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
                "sns:Subscribe", "sns:Unsubscribe", "sns:GetSubscriptionAttributes",
                "sns:SetSubscriptionAttributes", *tagging("sns"),
            ],
            [arn("sns", f"{prefix}-*")],
        ),
        statement(
            "Events",
            [
                "events:CreateEventBus", "events:DeleteEventBus", "events:DescribeEventBus",
                "events:UpdateEventBus", "events:PutRule", "events:DeleteRule", "events:DescribeRule",
                "events:EnableRule", "events:DisableRule", "events:PutTargets", "events:RemoveTargets",
                "events:ListTargetsByRule", *tagging("events"),
            ],
            [arn("events", f"event-bus/{prefix}-*"), arn("events", f"rule/{stacks}")],
        ),
        statement(
            "Buckets",
            [
                "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucket*", "s3:PutBucket*",
                "s3:DeleteBucketPolicy", "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
                "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
            ],
            [f"arn:{partition}:s3:::{prefix}-*", f"arn:{partition}:s3:::{stacks.lower()}"],
        ),
        statement(
            "Alarms",
            ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms",
             *tagging("cloudwatch")],
            [arn("cloudwatch", f"alarm:{prefix}-*")],
        ),
        statement(
            "Dashboard",
            ["cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard"],
            [arn("cloudwatch", f"dashboard/{prefix}-*", regional=False)],
        ),
        statement(
            "StateParameter",
            [
                "ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParameter", "ssm:GetParameters",
                "ssm:AddTagsToResource", "ssm:RemoveTagsFromResource", "ssm:ListTagsForResource",
            ],
            [arn("ssm", f"parameter/{prefix}-*")],
        ),
        statement(
            "OriginSecret",
            [
                "secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "secretsmanager:DescribeSecret",
                "secretsmanager:UpdateSecret", "secretsmanager:GetSecretValue", "secretsmanager:TagResource",
                "secretsmanager:UntagResource",
            ],
            [arn("secretsmanager", "secret:*")],
        ),
        statement("GeneratedSecret", ["secretsmanager:GetRandomPassword"], ["*"]),
        statement(
            "Api",
            ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"],
            [
                f"arn:{partition}:apigateway:{region}::/{path}"
                for path in (
                    "restapis", "restapis/*", "apikeys", "apikeys/*", "usageplans", "usageplans/*",
                    "account", "tags/*",
                )
            ],
        ),
        statement(
            "Distribution",
            [
                "cloudfront:CreateDistribution", "cloudfront:UpdateDistribution",
                "cloudfront:DeleteDistribution", "cloudfront:GetDistribution",
                "cloudfront:GetDistributionConfig", "cloudfront:CreateOriginAccessControl",
                "cloudfront:GetOriginAccessControl", "cloudfront:GetOriginAccessControlConfig",
                "cloudfront:UpdateOriginAccessControl", "cloudfront:DeleteOriginAccessControl",
                "cloudfront:CreateResponseHeadersPolicy", "cloudfront:GetResponseHeadersPolicy",
                "cloudfront:UpdateResponseHeadersPolicy", "cloudfront:DeleteResponseHeadersPolicy",
                "cloudfront:GetCachePolicy", "cloudfront:GetOriginRequestPolicy", *tagging("cloudfront"),
            ],
            [
                f"arn:{partition}:cloudfront::{account}:{kind}/*"
                for kind in (
                    "distribution", "origin-access-control", "response-headers-policy", "cache-policy",
                    "origin-request-policy",
                )
            ],
        ),
    ]  # fmt: skip


def build_catalog_app(
    config: MarketplaceConfig,
    publication: Publication,
    *,
    account: str,
    app: App | None = None,
    snapshots: Path = SNAPSHOTS,
) -> tuple[App, ServiceCatalogStack]:
    """The app `--publish-service-catalog` synthesizes and deploys: the portfolio stack alone, checked by
    cdk-nag's AwsSolutions and Serverless packs like every listing stack (the product's template too)."""
    app = app or App()
    settings = config.deployment_settings
    stack = ServiceCatalogStack(
        app,
        publication=publication,
        settings=settings,
        account=account,
        snapshots=snapshots,
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app, stack
