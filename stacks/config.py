"""The seller's `marketplace-config.json`: one typed, validated model, loaded once and passed down.

Every rule here exists because something downstream would break without it: a listing path becomes part of
S3, CloudFormation, DynamoDB and Lambda names; a product code and dimension names are sent to AWS
Marketplace; tags go on every resource. A bad file is rejected as a whole, before anything is built, with
one message per problem that names its JSON path (see `ConfigError`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

SCHEMA_FILE_NAME = "marketplace-config.schema.json"
# Picks the environment every command (and the CDK app) works on; `--environment NAME` sets it.
ENVIRONMENT_VARIABLE = "MARKETPLACE_ENVIRONMENT"

# Names AWS derives from a listing's path must fit the tightest AWS limit they meet.
# Lambda function names (64 characters) are the tightest: `<PrefixCamel>-<path>-<FunctionSuffix>`.
LAMBDA_NAME_LIMIT = 64
S3_BUCKET_NAME_LIMIT = 63
# The longest function role suffix a listing's stack uses (see stacks/constructs).
LONGEST_FUNCTION_SUFFIX = "RegistrationHandler"
AWS_ACCOUNT_ID_LENGTH = 12
PATH_MAX_LENGTH = 40
DEFAULT_NAME_PREFIX = "codio-marketplace"
NAME_PREFIX_MAX_LENGTH = 24

# Tags the stacks set themselves on every resource; the config may not redefine them.
RESERVED_TAG_KEYS = frozenset({"Stack", "Listing", "Environment"})
# https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html: 50 user tags per resource.
MAX_TAGS_PER_RESOURCE = 50

_SLUG = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
_TAG_TEXT = r"^[\w\s.:/=+\-@]*$"
# https://docs.aws.amazon.com/marketplacemetering/latest/APIReference/API_BatchMeterUsage.html
# ProductCode: 1-255 characters of `[-a-zA-Z0-9/=:_.@]`.
_PRODUCT_CODE = r"^[-a-zA-Z0-9/=:_.@]{1,255}$"
# Dimension API names as the Marketplace Management Portal accepts them (letters, digits, `_`, `.`, `-`);
# the Catalog API's AddDimensions `Key` has the same rule (≤100 characters).
_DIMENSION_NAME = r"^[A-Za-z0-9_.-]{1,100}$"
# The units a dimension may have (Catalog API AddDimensions `Unit`; see shared MARKETPLACE.md).
DIMENSION_UNITS = (
    "GB", "Gbps", "HostHrs", "Hosts", "MB", "Mbps", "Requests", "TaskHrs", "TB", "TierHrs", "UnitHrs",
    "Units", "UserHrs", "Users",
)  # fmt: skip
# The Catalog API's UpdateInformation `ProductTitle` limit: the listing's name is its title.
PRODUCT_TITLE_LIMIT = 72
# A SaaSProduct entity id, e.g. prod-abc123def456 (Catalog API `Identifier`: `^[\w\-@]+$`, ≤255).
_ENTITY_ID = r"^[A-Za-z0-9_-]{1,255}$"
_REGION = r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$"
_HEX_COLOUR = r"^#[0-9a-fA-F]{6}$"
_ACCOUNT = r"^\d{12}$"
_T = TypeVar("_T")
# https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html, "Supported Regions": every commercial region
# except Asia Pacific (New Zealand) and Asia Pacific (Taipei).
SNAP_START_UNSUPPORTED_REGIONS = {
    "ap-southeast-6": "Asia Pacific (New Zealand)",
    "ap-east-2": "Asia Pacific (Taipei)",
}
# Marketplace expects a record every hour, so the job must run at least hourly.
# How often reconciliation runs: any EventBridge schedule (it reads AWS's record, so daily is plenty).
_RECONCILE_SCHEDULE = r"^(cron\([0-9*?,/\-LW# A-Z]+\)|rate\([1-9][0-9]{0,3} (minute|hour|day)s?\))$"
_SCHEDULE = r"^(cron\([0-9*?,/\-LW# A-Z]+\)|rate\(([1-9]|[1-5][0-9]|60) minutes?\)|rate\(1 hour\))$"


class _Model(BaseModel):
    """Strict base: unknown keys are errors (a typo must not be silently ignored), camelCase in JSON."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=False,
    )


def _check_tag_key(key: str) -> str:
    if key.lower().startswith("aws:"):
        raise ValueError("the 'aws:' prefix is reserved by AWS")
    if key in RESERVED_TAG_KEYS:
        raise ValueError("is set by the stacks themselves on every resource; choose another key")
    return key


# https://docs.aws.amazon.com/tag-editor/latest/userguide/best-practices-and-strats.html (tag naming limits)
TagKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=_TAG_TEXT), AfterValidator(_check_tag_key)
]
TagValue = Annotated[str, StringConstraints(max_length=256, pattern=_TAG_TEXT)]
Tags = dict[TagKey, TagValue]


class PricingModel(StrEnum):
    """How the listing is sold on AWS Marketplace; it decides whether entitlements are fetched."""

    SUBSCRIPTION = "subscription"
    CONTRACT = "contract"
    CONTRACT_WITH_CONSUMPTION = "contract-with-consumption"

    @property
    def has_entitlements(self) -> bool:
        return self is not PricingModel.SUBSCRIPTION

    @property
    def is_metered(self) -> bool:
        """A pure contract is paid up front (its dimensions are `Entitled` only): no usage is sent for it."""
        return self is not PricingModel.CONTRACT


class BillingDimension(_Model):
    """A billing dimension exactly as defined on the Marketplace listing (its API name is `name`)."""

    name: str = Field(pattern=_DIMENSION_NAME, description="The dimension's API name on the listing.")
    description: str = Field(min_length=1, max_length=200, description="What the buyer pays for.")
    unit: str = Field(
        default="Units",
        description="The unit shown to buyers, one of AWS Marketplace's: " + ", ".join(DIMENSION_UNITS) + ".",
        json_schema_extra={"enum": list(DIMENSION_UNITS)},
    )
    display_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The dimension's name on the listing (AWS Marketplace's Name); default: its API name.",
    )

    @field_validator("unit")
    @classmethod
    def _unit_aws_knows(cls, value: str) -> str:
        if value not in DIMENSION_UNITS:
            raise ValueError(
                f"{value!r} is not a unit AWS Marketplace offers; use one of {', '.join(DIMENSION_UNITS)}"
            )
        return value

    @property
    def catalog_name(self) -> str:
        """The Name the Catalog API keeps for the dimension."""
        return self.display_name or self.name


class Branding(_Model):
    """How the listing's landing page looks. Everything is optional."""

    logo_url: str | None = Field(
        default=None,
        pattern=r"^https://[^\s\"'<>]{1,2040}$",
        description="An https:// URL of the logo image; shown at the top of the landing page.",
    )
    accent_color: str = Field(
        default="#1f5fbf", pattern=_HEX_COLOUR, description="The page's accent colour, #RRGGBB."
    )
    support_email: EmailStr | None = Field(
        default=None, description="Shown to buyers as the support contact."
    )


class LegacyTopics(_Model):
    """The listing's legacy SNS topics (older listings); see MARKETPLACE.md, 'Subscription lifecycle'."""

    subscription_topic_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:sns:us-east-1:\d{12}:aws-mp-subscription-notification-[-a-zA-Z0-9_.]+$",
        description="arn:aws:sns:us-east-1:<account>:aws-mp-subscription-notification-<productCode>",
    )
    entitlement_topic_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:sns:us-east-1:\d{12}:aws-mp-entitlement-notification-[-a-zA-Z0-9_.]+$",
        description="arn:aws:sns:us-east-1:<account>:aws-mp-entitlement-notification-<productCode>",
    )


class CustomDomain(_Model):
    """Serve the listing from your own domain instead of *.cloudfront.net (enables TLS 1.2 minimum)."""

    domain_name: str = Field(
        max_length=253,
        pattern=r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
        description="e.g. ai-skills.example.com; point a CNAME or alias record at the distribution.",
    )
    certificate_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$",
        description="An ACM certificate in us-east-1 (CloudFront's region) covering domainName.",
    )


class Listing(_Model):
    """One AWS Marketplace SaaS listing; each enabled one becomes its own stack."""

    name: str = Field(
        min_length=1,
        max_length=PRODUCT_TITLE_LIMIT,
        description="The product name buyers see; also the listing's title on AWS Marketplace (at most 72).",
    )
    description: str = Field(min_length=1, max_length=1000, description="One paragraph for the page.")
    product_code: str = Field(
        pattern=_PRODUCT_CODE, description="The product code AWS Marketplace assigned to the listing."
    )
    path: str = Field(
        min_length=1,
        max_length=PATH_MAX_LENGTH,
        pattern=_SLUG,
        description=(
            "A short slug naming the listing's resources: lowercase letters, digits and single hyphens, "
            "starting with a letter."
        ),
    )
    enabled: bool = Field(default=True, description="Disabled listings get no stack.")
    entity_id: str | None = Field(
        default=None,
        pattern=_ENTITY_ID,
        description=(
            "The product's AWS Marketplace Catalog entity id (prod-...). Optional: --sync-listings finds the "
            "product by its product code without it."
        ),
    )
    pricing_model: PricingModel = Field(
        default=PricingModel.SUBSCRIPTION, description="subscription | contract | contract-with-consumption"
    )
    dimensions: tuple[BillingDimension, ...] = Field(
        default=(),
        max_length=24,
        description=(
            "The listing's billing dimensions, as defined in the Marketplace Management Portal. Optional: "
            "without them buyers still subscribe and register, but no usage is recorded or metered."
        ),
    )
    legacy: bool = Field(
        default=False,
        description=(
            "True for listings integrated before new SaaS products had to meter with "
            "CustomerAWSAccountId + LicenseArn: they use CustomerIdentifier + ProductCode instead."
        ),
    )
    legacy_topics: LegacyTopics = Field(default_factory=LegacyTopics)
    branding: Branding = Field(default_factory=Branding)
    custom_domain: CustomDomain | None = Field(default=None, description="Optional own domain.")
    notification_email: EmailStr | None = Field(
        default=None, description="Overrides deploymentSettings.notificationEmail for this listing."
    )
    tags: Tags = Field(default_factory=dict, description="Extra cost-allocation tags for this listing.")
    environments: tuple[EnvironmentName, ...] | None = Field(
        default=None,
        min_length=1,
        description=(
            "The environments the listing is deployed to (names from deploymentSettings.environments). "
            "Default: all of them."
        ),
    )

    @field_validator("dimensions")
    @classmethod
    def _unique_dimension_names(cls, value: tuple[BillingDimension, ...]) -> tuple[BillingDimension, ...]:
        problem = _repeated_dimension_names([dimension.name for dimension in value])
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _entitlement_topic_only_with_a_contract(self) -> Self:
        problem = _entitlement_topic_problem(self.pricing_model, self.legacy_topics.entitlement_topic_arn)
        if problem:
            raise ConfigError([problem])
        return self

    @property
    def is_metered(self) -> bool:
        """Whether the listing's usage is sent to AWS Marketplace at all (its functions decide the same)."""
        return self.pricing_model.is_metered and bool(self.dimensions)

    def deployed_to(self, environment: str) -> bool:
        """Whether the listing belongs in the environment (enabled or not)."""
        return self.environments is None or environment in self.environments


ENVIRONMENT_NAME_MAX_LENGTH = 20
EnvironmentName = Annotated[
    str, StringConstraints(min_length=1, max_length=ENVIRONMENT_NAME_MAX_LENGTH, pattern=_SLUG)
]


class EnvironmentSettings(_Model):
    """One environment (staging, production, ...): an account and region, and what differs there. Every
    setting left out is deploymentSettings' own."""

    account: str | None = Field(
        default=None,
        pattern=_ACCOUNT,
        description="The environment's 12-digit AWS account (default: deploymentSettings.account).",
    )
    region: str | None = Field(
        default=None,
        pattern=_REGION,
        description="The environment's region (default: deploymentSettings.region).",
    )
    name_prefix: str | None = Field(
        default=None,
        min_length=3,
        max_length=NAME_PREFIX_MAX_LENGTH,
        pattern=_SLUG,
        description=(
            "Prefix of the environment's stack and resource names. Default: deploymentSettings.namePrefix "
            "in the default environment, <namePrefix>-<environment> in the others."
        ),
    )
    retain_resources: bool | None = Field(default=None, description="Overrides retainResources.")
    notification_email: EmailStr | None = Field(default=None, description="Overrides notificationEmail.")
    metering_schedule: str | None = Field(
        default=None, pattern=_SCHEDULE, description="Overrides meteringSchedule."
    )
    reconcile_schedule: str | None = Field(
        default=None, pattern=_RECONCILE_SCHEDULE, description="Overrides reconcileSchedule."
    )
    tags: Tags = Field(
        default_factory=dict, description="Extra tags in this environment, over deploymentSettings.tags."
    )


class DeploymentSettings(_Model):
    """Settings shared by every listing's stack."""

    region: str = Field(default="us-east-1", pattern=_REGION, description="The AWS region, e.g. us-east-1.")
    environment: str = Field(
        default="production",
        pattern=r"^[a-z][a-z0-9-]{0,31}$",
        description=(
            "The name of the default environment (the one used without --environment), tagged on every "
            "resource as Environment. With environments, one of their names."
        ),
    )
    environments: dict[EnvironmentName, EnvironmentSettings] = Field(
        default_factory=dict,
        description=(
            "Named environments, e.g. staging and production, each with its own account (and region, and "
            "overrides). Without them the settings above are one environment."
        ),
    )
    account: str | None = Field(
        default=None,
        pattern=_ACCOUNT,
        description=(
            "The 12-digit AWS account the stacks belong to. Optional: when set, a deploy (and --plan) "
            "refuses credentials of any other account before anything changes."
        ),
    )
    retain_resources: bool = Field(
        default=True,
        description="Keep tables and buckets (and protect tables from deletion) when a stack is deleted.",
    )
    name_prefix: str = Field(
        default=DEFAULT_NAME_PREFIX,
        min_length=3,
        max_length=NAME_PREFIX_MAX_LENGTH,
        pattern=_SLUG,
        description="Prefix of every stack and resource name: <prefix>-<path>.",
    )
    notification_email: EmailStr | None = Field(
        default=None, description="Where alarms and subscriber notifications are e-mailed."
    )
    metering_schedule: str = Field(
        default="cron(5 * * * ? *)",
        pattern=_SCHEDULE,
        description=(
            "When the metering job runs: an EventBridge cron() expression, or rate() of at most an hour. "
            "Default: five minutes past every hour."
        ),
    )
    reconcile_schedule: str = Field(
        default="rate(1 day)",
        pattern=_RECONCILE_SCHEDULE,
        description=(
            "When each listing's subscribers are compared with AWS Marketplace's record of its agreements "
            "(and events that never arrived are made up for): an EventBridge cron() or rate() expression. "
            "Default: once a day."
        ),
    )
    metering_concurrency: int = Field(
        default=8,
        ge=1,
        le=32,
        description=(
            "How many BatchMeterUsage calls the metering job makes at once (25 records each). Default 8: "
            "about 100,000 records in under two minutes; lower it if AWS throttles the job."
        ),
    )
    snap_start: bool = Field(
        default=False,
        description=(
            "Lambda SnapStart for the buyer-facing functions (fulfillment, registration, usage): each gets a "
            "published version and an alias 'live' that the API invokes. Snapshot caching and restores are "
            "charged (see README)."
        ),
    )
    tags: Tags = Field(default_factory=dict, description="Extra cost-allocation tags on every resource.")

    @model_validator(mode="after")
    def _snap_start_where_lambda_offers_it(self) -> Self:
        problem = _snap_start_problem(self.snap_start, self.region)
        if problem:
            raise ConfigError([problem])
        return self


class MarketplaceConfig(_Model):
    """The whole `marketplace-config.json`."""

    schema_ref: str | None = Field(
        default=None, alias="$schema", description="Path of the JSON Schema, for editors."
    )
    marketplace_listings: dict[str, Listing] = Field(
        description="Listings by a key of your choice (usually the same as the path)."
    )
    deployment_settings: DeploymentSettings = Field(default_factory=DeploymentSettings)

    @model_validator(mode="after")
    def _cross_listing_rules(self) -> Self:
        listings = {
            key: listing.model_dump(by_alias=True, exclude_none=True)
            for key, listing in self.marketplace_listings.items()
        }
        settings = self.deployment_settings.model_dump(by_alias=True, exclude_none=True)
        problems = _cross_listing_problems(listings, settings) + _environment_problems(listings, settings)
        if problems:
            raise ConfigError(problems)
        return self

    @property
    def enabled_listings(self) -> list[Listing]:
        return [listing for listing in self.marketplace_listings.values() if listing.enabled]

    @property
    def environment_names(self) -> list[str]:
        """Every environment the config deploys to; the default one (deploymentSettings.environment) too."""
        settings = self.deployment_settings
        return list(settings.environments) or [settings.environment]

    def for_environment(self, name: str | None = None) -> MarketplaceConfig:
        """The config as one environment sees it (default: deploymentSettings.environment): its account,
        region, name prefix and overrides in deploymentSettings, and the listings not deployed there
        disabled. Every command works on such a config; resolving it again changes nothing."""
        settings = self.deployment_settings
        name = name or settings.environment
        if name not in self.environment_names:
            raise ConfigError([f"--environment {name}: {_unknown_environment(name, self.environment_names)}"])
        chosen = settings.environments.get(name)
        if chosen is None:
            return self
        resolved = settings.model_copy(
            update={
                "environment": name,
                "environments": {},
                "account": chosen.account or settings.account,
                "region": chosen.region or settings.region,
                "name_prefix": _environment_prefix(
                    name, chosen.name_prefix, settings.name_prefix, default=settings.environment
                ),
                "retain_resources": _first(chosen.retain_resources, settings.retain_resources),
                "notification_email": _first(chosen.notification_email, settings.notification_email),
                "metering_schedule": _first(chosen.metering_schedule, settings.metering_schedule),
                "reconcile_schedule": _first(chosen.reconcile_schedule, settings.reconcile_schedule),
                "tags": {**settings.tags, **chosen.tags},
            }
        )
        listings = {
            key: listing if listing.deployed_to(name) else listing.model_copy(update={"enabled": False})
            for key, listing in self.marketplace_listings.items()
        }
        return self.model_copy(update={"deployment_settings": resolved, "marketplace_listings": listings})

    def listing_by_path(self, path: str) -> Listing | None:
        return next((item for item in self.marketplace_listings.values() if item.path == path), None)


class ConfigError(ValueError):
    """A config that cannot be used; `problems` holds one line per problem, each naming its JSON path."""

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))

    def report(self) -> str:
        where = f" {self.source}" if self.source else ""
        count = len(self.problems)
        header = f"The config file{where} has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([header, *(f"  - {line}" for line in self.problems)])


def _cross_listing_problems(listings: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The rules that span listings (unique paths and product codes, names derived from the prefix, tags in
    all), on the file's JSON values: so they are checked, and reported, together with every other problem
    even when other values in the file are wrong (values of the wrong type are left to their own message).
    """
    listings = {key: value for key, value in listings.items() if isinstance(value, Mapping)}
    problems: list[tuple[str, str]] = []
    problems += _duplicates(listings, "path")
    problems += _duplicates(listings, "productCode")
    prefix = settings.get("namePrefix", DEFAULT_NAME_PREFIX)
    shared_tags = settings.get("tags", {})
    for key, listing in listings.items():
        path = listing.get("path")
        if _is_valid_name_prefix(prefix) and isinstance(path, str) and _is_valid_path_form(path):
            problem = _derived_name_problem(prefix, path)
            if problem:
                problems.append((f"marketplaceListings.{key}.path", problem))
        tags = listing.get("tags", {})
        if isinstance(tags, Mapping) and isinstance(shared_tags, Mapping):
            tag_count = len(RESERVED_TAG_KEYS) + len({**shared_tags, **tags})
            if tag_count > MAX_TAGS_PER_RESOURCE:
                problems.append(
                    (
                        f"marketplaceListings.{key}.tags",
                        f"{tag_count} tags in all with deploymentSettings.tags and the 3 built-in ones; "
                        f"AWS allows {MAX_TAGS_PER_RESOURCE} per resource",
                    )
                )
    return [f"{where}: {what}" for where, what in problems]


def _first(override: _T | None, shared: _T) -> _T:
    return shared if override is None else override


def _environment_prefix(name: str, own: Any, shared: Any, *, default: Any) -> Any:
    """An environment's name prefix: its own, else the shared one in the default environment, else
    `<shared>-<name>` (so two environments in one account never share a stack name)."""
    if own is not None:
        return own
    return shared if name == default else f"{shared}-{name}"


def _unknown_environment(name: str, known: list[str]) -> str:
    if len(known) == 1:
        return (
            f"the config has one environment, {known[0]!r}; to deploy to others, name them in "
            "deploymentSettings.environments"
        )
    return f"no such environment in deploymentSettings.environments ({', '.join(known)})"


def _environment_problems(listings: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The rules of named environments, on the file's JSON values (as `_cross_listing_problems`): the
    default one is among them, each has an account, the listings name only environments that exist, and in
    each environment the names derived from its prefix fit and are its own."""
    named = settings.get("environments", {})
    named = (
        {key: value for key, value in named.items() if isinstance(value, Mapping)}
        if isinstance(named, Mapping)
        else {}
    )
    default = settings.get("environment", "production")
    listings = {key: value for key, value in listings.items() if isinstance(value, Mapping)}
    problems: list[str] = []
    if named and isinstance(default, str) and default not in named:
        problems.append(
            f"deploymentSettings.environment: {default!r} is not one of deploymentSettings.environments "
            f"({', '.join(named)}); it names the environment used without --environment"
        )
    problems += _listing_environment_problems(listings, list(named) or [default])
    shared_prefix = settings.get("namePrefix", DEFAULT_NAME_PREFIX)
    prefixes: dict[str, str] = {}
    for name, environment in named.items():
        problems += _one_environment_problems(name, environment, settings)
        prefix = _environment_prefix(name, environment.get("namePrefix"), shared_prefix, default=default)
        if _is_valid_name_prefix(shared_prefix) and isinstance(prefix, str):
            prefixes[name] = prefix
            problems += _environment_listing_problems(name, prefix, environment, listings, settings)
    return problems + _shared_prefix_problems(prefixes, named)


def _listing_environment_problems(listings: Mapping[str, Mapping[str, Any]], known: list[str]) -> list[str]:
    problems = []
    for key, listing in listings.items():
        chosen = listing.get("environments")
        for index, name in enumerate(chosen if isinstance(chosen, list | tuple) else []):
            if isinstance(name, str) and _matches(_SLUG, name) and name not in known:
                where = f"marketplaceListings.{key}.environments[{index}]"
                problems.append(f"{where}: {name!r}: {_unknown_environment(name, known)}")
    return problems


def _one_environment_problems(
    name: str, environment: Mapping[str, Any], settings: Mapping[str, Any]
) -> list[str]:
    where = f"deploymentSettings.environments.{name}"
    problems = []
    if environment.get("account", settings.get("account")) is None:
        problems.append(
            f"{where}.account: is required (the 12-digit account the environment's stacks go to; a "
            "deploy refuses credentials of any other), or set deploymentSettings.account for all"
        )
    region = environment.get("region", settings.get("region", "us-east-1"))
    if settings.get("snapStart") is True and isinstance(region, str):
        problem = _snap_start_problem(True, region)
        if problem:
            problems.append(f"{where}.region: {problem.removeprefix('snapStart: ')}")
    return problems


def _environment_listing_problems(
    name: str,
    prefix: str,
    environment: Mapping[str, Any],
    listings: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
) -> list[str]:
    """What an environment's prefix and tags do to each listing deployed there: names that must fit AWS's
    limits (the shared prefix's are checked with every listing already), tags that must stay within 50."""
    problems = []
    shared_prefix = settings.get("namePrefix", DEFAULT_NAME_PREFIX)
    shared_tags, tags = settings.get("tags", {}), environment.get("tags", {})
    for key, listing in listings.items():
        chosen = listing.get("environments")
        if isinstance(chosen, list | tuple) and name not in chosen:
            continue
        path = listing.get("path")
        if prefix != shared_prefix and isinstance(path, str) and _is_valid_path_form(path):
            problem = _derived_name_problem(prefix, path)
            if problem:
                problems.append(f"marketplaceListings.{key}.path: in environment {name}, {problem}")
        own_tags = listing.get("tags", {})
        if tags and all(isinstance(item, Mapping) for item in (tags, own_tags, shared_tags)):
            count = len(RESERVED_TAG_KEYS) + len({**shared_tags, **tags, **own_tags})
            if count > MAX_TAGS_PER_RESOURCE:
                problems.append(
                    f"deploymentSettings.environments.{name}.tags: {count} tags in all on "
                    f"marketplaceListings.{key} with deploymentSettings.tags, the listing's and the 3 "
                    f"built-in ones; AWS allows {MAX_TAGS_PER_RESOURCE} per resource"
                )
    return problems


def _shared_prefix_problems(prefixes: Mapping[str, str], named: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Two environments with one prefix would name their stacks alike: blamed on those that chose it
    themselves, else on all but the first."""
    problems = []
    sharing: dict[str, list[str]] = {}
    for name, prefix in prefixes.items():
        sharing.setdefault(prefix, []).append(name)
    for prefix, names in sharing.items():
        if len(names) < 2:
            continue
        chose = [name for name in names if named[name].get("namePrefix") is not None]
        for name in chose if 0 < len(chose) < len(names) else names[1:]:
            other = next(item for item in names if item != name)
            problems.append(
                f"deploymentSettings.environments.{name}.namePrefix: {prefix!r} is already the name prefix "
                f"of environment {other!r}; each environment needs its own, or their stacks would replace "
                "each other's"
            )
    return problems


def _repeated_dimension_names(names: list[str]) -> str | None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    return f"dimension names must be unique; repeated: {', '.join(duplicates)}" if duplicates else None


def _entitlement_topic_problem(pricing_model: PricingModel, topic: str | None) -> str | None:
    if not topic or pricing_model.has_entitlements:
        return None
    return (
        "legacyTopics.entitlementTopicArn: AWS Marketplace has an entitlement topic only for "
        "listings priced with a contract (pricingModel contract or contract-with-consumption); "
        f"this listing is {pricing_model.value}: remove the topic (subscribing to it would "
        "fail the deploy)"
    )


def _snap_start_problem(snap_start: bool, region: str) -> str | None:
    if not snap_start or region not in SNAP_START_UNSUPPORTED_REGIONS:
        return None
    return (
        f"snapStart: Lambda SnapStart is not available in {region} "
        f"({SNAP_START_UNSUPPORTED_REGIONS[region]}); set snapStart to false or deploy to "
        "another region"
    )


def _value_rule_problems(data: Mapping[str, Any]) -> list[str]:
    """The rules a model checks only once its own fields are valid (repeated dimension names, an entitlement
    topic on a subscription listing, SnapStart where Lambda lacks it), on the file's JSON values: so that a
    file with other problems gets these reported in the same pass."""
    problems: list[str] = []
    listings = data.get("marketplaceListings")
    for key, listing in (listings or {}).items() if isinstance(listings, Mapping) else ():
        if not isinstance(listing, Mapping):
            continue
        dimensions = listing.get("dimensions")
        if isinstance(dimensions, list):
            names = [item["name"] for item in dimensions if isinstance(item, Mapping) and "name" in item]
            problem = _repeated_dimension_names([name for name in names if isinstance(name, str)])
            if problem:
                problems.append(f"marketplaceListings.{key}.dimensions: {problem}")
        topics = listing.get("legacyTopics")
        topic = topics.get("entitlementTopicArn") if isinstance(topics, Mapping) else None
        pricing = listing.get("pricingModel", PricingModel.SUBSCRIPTION.value)
        if isinstance(topic, str) and pricing in {model.value for model in PricingModel}:
            problem = _entitlement_topic_problem(PricingModel(pricing), topic)
            if problem:
                problems.append(f"marketplaceListings.{key}.{problem}")
    settings = data.get("deploymentSettings")
    if isinstance(settings, Mapping):
        region = settings.get("region", "us-east-1")
        if settings.get("snapStart") is True and isinstance(region, str):
            problem = _snap_start_problem(True, region)
            if problem:
                problems.append(f"deploymentSettings.{problem}")
    return problems


def _is_valid_name_prefix(prefix: Any) -> bool:
    return isinstance(prefix, str) and 3 <= len(prefix) <= NAME_PREFIX_MAX_LENGTH and _matches(_SLUG, prefix)


def _is_valid_path_form(path: str) -> bool:
    return 1 <= len(path) <= PATH_MAX_LENGTH and _matches(_SLUG, path)


def _matches(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def _duplicates(listings: Mapping[str, Mapping[str, Any]], json_name: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    problems = []
    for key, listing in listings.items():
        value = listing.get(json_name)
        if not isinstance(value, str):
            continue
        if value in seen:
            problems.append(
                (
                    f"marketplaceListings.{key}.{json_name}",
                    f"{value!r} is already used by marketplaceListings.{seen[value]}; each listing needs "
                    f"its own {json_name}",
                )
            )
        else:
            seen[value] = key
    return problems


def function_name_prefix(name_prefix: str) -> str:
    """`codio-marketplace` → `CodioMarketplace`, the seed's prefix for function and log group names."""
    return "".join(part.capitalize() for part in name_prefix.split("-"))


def longest_path(prefix: str) -> int:
    """The longest path the name prefix allows: the path's own limit, or less where a name derived from it
    (a function name, a bucket name) would pass AWS's limit."""
    function_room = LAMBDA_NAME_LIMIT - len(f"{function_name_prefix(prefix)}--{LONGEST_FUNCTION_SUFFIX}")
    bucket_room = S3_BUCKET_NAME_LIMIT - len(f"{prefix}--{'0' * AWS_ACCOUNT_ID_LENGTH}")
    return min(PATH_MAX_LENGTH, function_room, bucket_room)


def _derived_name_problem(prefix: str, path: str) -> str | None:
    function_name = f"{function_name_prefix(prefix)}-{path}-{LONGEST_FUNCTION_SUFFIX}"
    if len(function_name) > LAMBDA_NAME_LIMIT:
        room = LAMBDA_NAME_LIMIT - (len(function_name) - len(path))
        return (
            f"{path!r} is too long: with namePrefix {prefix!r} the function name {function_name!r} would be "
            f"{len(function_name)} characters (AWS allows {LAMBDA_NAME_LIMIT}); use at most {room} characters"
        )
    bucket_name = f"{prefix}-{path}-{'0' * AWS_ACCOUNT_ID_LENGTH}"
    if len(bucket_name) > S3_BUCKET_NAME_LIMIT:
        room = S3_BUCKET_NAME_LIMIT - (len(bucket_name) - len(path))
        return (
            f"{path!r} is too long: the bucket name <prefix>-<path>-<account id> would be {len(bucket_name)} "
            f"characters (S3 allows {S3_BUCKET_NAME_LIMIT}); use at most {room} characters"
        )
    return None


def _format_location(location: tuple[str | int, ...]) -> str:
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part == "[key]":
            parts.append(" (the key)")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "(top level)"


def _shown(value: Any) -> str:
    """A value as the message quotes it: whole when short, its start when long; numbers as written."""
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...{text[-1]}"


def _characters(count: int) -> str:
    return f"{count} character{'s' if count != 1 else ''}"


def _is_a_path(location: tuple[str | int, ...]) -> bool:
    return len(location) == 3 and location[0] == "marketplaceListings" and location[2] == "path"


def describe_problem(error: Mapping[str, Any], hints: Mapping[str, str]) -> str:
    """One item of a pydantic `ValidationError.errors()` in the project's words (for the other inputs the
    commands validate); `hints` says in words what each regular expression of the model means."""
    return _describe(dict(error), DEFAULT_NAME_PREFIX, {**_PATTERN_HINTS, **hints})


def _describe(error: dict[str, Any], prefix: str, hints: Mapping[str, str] | None = None) -> str:
    """One problem in the project's words: what is wrong with the value and what the setting takes."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value: Any = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting (check its spelling against marketplace-config.schema.json)"
    if kind == "string_pattern_mismatch":
        expected = (hints or _PATTERN_HINTS).get(ctx["pattern"], ctx["pattern"])
        return f"{value!r} does not have the expected form ({expected})"
    if kind == "string_too_long" and _is_a_path(error["loc"]):
        room = longest_path(prefix) if _is_valid_name_prefix(prefix) else PATH_MAX_LENGTH
        return (
            f"{_shown(value)} is too long ({_characters(len(value))}): a path has at most "
            f"{_characters(PATH_MAX_LENGTH)}, and names the listing's resources (e.g. its function "
            f"{function_name_prefix(prefix)}-<path>-{LONGEST_FUNCTION_SUFFIX}, at most {LAMBDA_NAME_LIMIT} "
            f"characters), so with namePrefix {prefix!r} use at most {_characters(room)}"
        )
    if kind == "string_too_long":
        limit = _characters(ctx["max_length"])
        return f"{_shown(value)} is too long ({_characters(len(value))}): at most {limit}"
    if kind == "string_too_short":
        if not value:
            return f"is empty: it takes at least {_characters(ctx['min_length'])}"
        return f"{_shown(value)} is too short: it takes at least {_characters(ctx['min_length'])}"
    if kind == "too_long":
        return f"has {ctx['actual_length']} entries: at most {ctx['max_length']}"
    if kind == "too_short":
        return f"has {ctx['actual_length']} entries: at least {ctx['min_length']}"
    if kind in ("string_type", "str_type"):
        return f"{_shown(value)} is not text: write it as a JSON string in double quotes"
    if kind in ("bool_type", "bool_parsing"):
        return f"{_shown(value)} is not true or false"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{_shown(value)} is not an object: write it as {{...}}"
    if kind in ("list_type", "tuple_type"):
        return f"{_shown(value)} is not a list: write it as [...]"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{_shown(value)} is not a whole number"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        limit = {
            "greater_than_equal": f"at least {ctx.get('ge')}",
            "less_than_equal": f"at most {ctx.get('le')}",
            "greater_than": f"more than {ctx.get('gt')}",
            "less_than": f"less than {ctx.get('lt')}",
        }[kind]
        return f"{_shown(value)} is out of range: it takes {limit}"
    if kind in ("decimal_parsing", "decimal_type", "float_parsing", "float_type"):
        return f"{_shown(value)} is not a number"
    if kind == "decimal_max_places":
        return f"{_shown(value)} has more than {ctx['decimal_places']} decimal places"
    if kind in ("decimal_max_digits", "decimal_whole_digits"):
        return f"{_shown(value)} has too many digits"
    if kind == "enum":
        return f"{_shown(value)} is not one of {ctx['expected']}"
    if kind == "value_error" and str(error["msg"]).startswith("value is not a valid email address"):
        return f"{_shown(value)} is not an e-mail address ({ctx.get('reason', 'no @-sign')})"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return message


_PATTERN_HINTS = {
    _SLUG: "lowercase letters, digits and single hyphens, starting with a letter, e.g. ai-skills",
    _PRODUCT_CODE: "1-255 characters of letters, digits and - / = : _ . @",
    _DIMENSION_NAME: "1-100 characters of letters, digits and _ . -",
    _ENTITY_ID: "a Catalog entity id such as prod-abc123def456",
    _REGION: "an AWS region such as us-east-1",
    _ACCOUNT: "a 12-digit AWS account id such as 111122223333",
    _HEX_COLOUR: "a colour such as #1f5fbf",
    _TAG_TEXT: "letters, digits, spaces and _ . : / = + - @",
    _SCHEDULE: "cron(...), rate(N minutes) with N up to 60, or rate(1 hour)",
    _RECONCILE_SCHEDULE: "cron(...) or rate(N minutes|hours|days), e.g. rate(1 day)",
}


def parse_config(data: Any, source: str | None = None) -> MarketplaceConfig:
    """Validate already-parsed JSON; raise `ConfigError` listing every problem at once."""
    try:
        return MarketplaceConfig.model_validate(data)
    except ConfigError as error:
        error.source = source
        raise
    except ValidationError as error:
        raw = data if isinstance(data, Mapping) else {}
        listings = raw.get("marketplaceListings")
        settings = raw.get("deploymentSettings")
        settings = settings if isinstance(settings, Mapping) else {}
        prefix = settings.get("namePrefix", DEFAULT_NAME_PREFIX)
        errors = error.errors()
        locations = [item["loc"] for item in errors]
        problems: list[str] = []
        for item in errors:
            if item["type"] == "too_short" and any(
                other != item["loc"] and other[: len(item["loc"])] == item["loc"] for other in locations
            ):
                continue  # a list emptied by its items' own errors: those errors say it better
            inner = item.get("ctx", {}).get("error")
            if isinstance(inner, ConfigError):
                # Its problems are relative to the model that raised it (none: the whole file).
                prefix = f"{_format_location(item['loc'])}." if item["loc"] else ""
                problems.extend(prefix + problem for problem in inner.problems)
                continue
            problems.append(f"{_format_location(item['loc'])}: {_describe(dict(item), str(prefix))}")
        # The rules across values run in the models only once the values they read are valid: check them on
        # the file's values here, so that one pass reports every problem (a repeated path with the rest).
        rules = _value_rule_problems(raw)
        if isinstance(listings, Mapping):
            rules += _cross_listing_problems(listings, settings) + _environment_problems(listings, settings)
        problems += [problem for problem in rules if problem not in problems]
        raise ConfigError(problems, source) from None


def selected_environment() -> str | None:
    """The environment chosen with MARKETPLACE_ENVIRONMENT (`--environment` sets it for what it runs)."""
    return os.environ.get(ENVIRONMENT_VARIABLE) or None


def load_config(path: str | Path, environment: str | None = None) -> MarketplaceConfig:
    """Read and validate a config file, then resolve it for one environment (`environment`, else
    MARKETPLACE_ENVIRONMENT, else the default one); every failure is a `ConfigError` naming the file."""
    config = read_config(path)
    try:
        return config.for_environment(environment or selected_environment())
    except ConfigError as error:
        error.source = str(path)
        raise


def read_config(path: str | Path) -> MarketplaceConfig:
    """Read and validate a config file, every environment in it; failures are `ConfigError`s."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such file"], str(file)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{file}: cannot be read ({error})"], str(file)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            [f"line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"], str(file)
        ) from None
    return parse_config(data, str(file))


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to check the file (written to marketplace-config.schema.json)."""
    schema = MarketplaceConfig.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "marketplace-config.json"
    return schema


SCHEMA_PATH = Path(__file__).resolve().parent.parent / SCHEMA_FILE_NAME


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"wrote {write_schema()}")
