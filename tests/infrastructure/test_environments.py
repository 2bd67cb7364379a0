"""One config, several environments: each environment's stacks in its own account and region, named and
tagged as its own; listings only where they are deployed; bad environments refused naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.cx_api import CloudAssembly

from stacks.app_builder import build_app
from stacks.config import ConfigError, MarketplaceConfig, parse_config
from tests.infrastructure.conftest import listing, new_app
from tests.support.seed_config import SEED_CONFIG

STAGING_ACCOUNT = "111111111111"
PRODUCTION_ACCOUNT = "222222222222"


def two_environments(**settings: Any) -> dict[str, Any]:
    return {
        "marketplaceListings": {
            "ai-skills": listing("ai-skills", "PROD_AI", tags={"CostCenter": "training"}),
            # Tried in staging only, before it goes to production.
            "lab": listing("lab", "PROD_LAB", environments=["staging"]),
        },
        "deploymentSettings": {
            "region": "us-east-1",
            "tags": {"Owner": "marketplace-team"},
            "environments": {
                "staging": {
                    "account": STAGING_ACCOUNT,
                    "retainResources": False,
                    "meteringSchedule": "rate(15 minutes)",
                    "tags": {"Owner": "qa-team"},
                },
                "production": {"account": PRODUCTION_ACCOUNT, "region": "eu-west-1"},
            },
            **settings,
        },
    }


def synthesized(config: MarketplaceConfig, app: App | None = None) -> CloudAssembly:
    """The environment's cloud assembly, stacks in the environment's own account (as app.py passes it)."""
    app = app or new_app()
    build_app(config, account=config.deployment_settings.account, app=app)
    return app.synth()


@pytest.fixture(scope="module")
def environments() -> dict[str, CloudAssembly]:
    config = parse_config(two_environments())
    return {name: synthesized(config.for_environment(name)) for name in ("staging", "production")}


def stacks(assembly: CloudAssembly) -> dict[str, Any]:
    return {stack.stack_name: stack for stack in assembly.stacks}


def test_staging_stacks_are_in_the_staging_account_named_and_tagged_as_staging(
    environments: dict[str, CloudAssembly],
) -> None:
    staging = stacks(environments["staging"])
    assert sorted(staging) == ["codio-marketplace-staging-ai-skills", "codio-marketplace-staging-lab"]
    stack = staging["codio-marketplace-staging-ai-skills"]
    assert (stack.environment.account, stack.environment.region) == (STAGING_ACCOUNT, "us-east-1")
    assert stack.tags == {
        "Environment": "staging",
        "Listing": "ai-skills",
        "Stack": "codio-marketplace-staging-ai-skills",
        "Owner": "qa-team",  # the environment's tag over the shared one
        "CostCenter": "training",
    }
    template = stack.template
    tables = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::GlobalTable"]
    assert "codio-marketplace-staging-subscribers-ai-skills" in {t["Properties"]["TableName"] for t in tables}
    # retainResources false in staging: tables go with the stack, and it is not termination protected.
    assert {table["DeletionPolicy"] for table in tables} == {"Delete"}
    assert not stack.termination_protection
    functions = {
        r["Properties"].get("FunctionName")
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert "CodioMarketplaceStaging-ai-skills-RegistrationHandler" in functions
    schedules = [
        r["Properties"]["ScheduleExpression"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    ]
    assert "rate(15 minutes)" in schedules


def test_production_keeps_the_default_names_in_its_own_account_and_region(
    environments: dict[str, CloudAssembly],
) -> None:
    production = stacks(environments["production"])
    # The staging-only listing gets no production stack; eu-west-1 needs the forwarder in us-east-1.
    assert sorted(production) == ["codio-marketplace-ai-skills", "codio-marketplace-ai-skills-events"]
    stack = production["codio-marketplace-ai-skills"]
    assert (stack.environment.account, stack.environment.region) == (PRODUCTION_ACCOUNT, "eu-west-1")
    assert stack.tags["Environment"] == "production"
    assert stack.tags["Owner"] == "marketplace-team"
    assert stack.termination_protection
    tables = [r for r in stack.template["Resources"].values() if r["Type"] == "AWS::DynamoDB::GlobalTable"]
    assert "codio-marketplace-subscribers-ai-skills" in {t["Properties"]["TableName"] for t in tables}
    assert {table["DeletionPolicy"] for table in tables} == {"Retain"}


def test_the_forwarder_is_the_environments_own_in_us_east_1_and_tagged_like_its_listing(
    environments: dict[str, CloudAssembly],
) -> None:
    forwarder = stacks(environments["production"])["codio-marketplace-ai-skills-events"]
    assert (forwarder.environment.account, forwarder.environment.region) == (PRODUCTION_ACCOUNT, "us-east-1")
    # Its tags are what --destroy-disabled finds it by, and what cost allocation reads.
    assert forwarder.tags == {
        "Environment": "production",
        "Listing": "ai-skills",
        "Stack": "codio-marketplace-ai-skills-events",
        "Owner": "marketplace-team",
        "CostCenter": "training",
    }
    targets = [
        target["Arn"]
        for resource in forwarder.template["Resources"].values()
        if resource["Type"] == "AWS::Events::Rule"
        for target in resource["Properties"]["Targets"]
    ]
    assert targets and all("events:eu-west-1:" in json.dumps(arn) for arn in targets)


def test_a_staging_only_listing_cannot_be_asked_for_in_production() -> None:
    production = parse_config(two_environments()).for_environment("production")
    with pytest.raises(ConfigError, match="--listing lab: this listing is disabled"):
        build_app(production, only_paths=["lab"], app=new_app())


def test_the_seeds_config_is_one_environment_and_synthesizes_as_before() -> None:
    seed = parse_config(json.loads(SEED_CONFIG))
    assert seed.environment_names == ["production"]
    assert seed.for_environment() is seed and seed.for_environment("production") is seed
    assembly = synthesized(seed)
    assert sorted(stacks(assembly)) == ["codio-marketplace-ai-skills", "codio-marketplace-data-analytics"]
    stack = stacks(assembly)["codio-marketplace-ai-skills"]
    assert stack.tags["Environment"] == "production"
    assert stack.environment.region == "us-east-1"


def test_a_named_default_environment_gives_the_same_template_as_the_single_environment_form() -> None:
    """Naming the one environment changes nothing deployed: a seller can add staging later."""
    plain = parse_config(
        {
            "marketplaceListings": {"ai-skills": listing("ai-skills", "PROD_AI")},
            "deploymentSettings": {"account": PRODUCTION_ACCOUNT, "environment": "production"},
        }
    )
    named = parse_config(
        {
            "marketplaceListings": {"ai-skills": listing("ai-skills", "PROD_AI")},
            "deploymentSettings": {
                "environment": "production",
                "environments": {
                    "production": {"account": PRODUCTION_ACCOUNT},
                    "staging": {"account": STAGING_ACCOUNT},
                },
            },
        }
    ).for_environment()
    before, after = (synthesized(config).stacks[0] for config in (plain, named))
    assert before.stack_name == after.stack_name == "codio-marketplace-ai-skills"
    assert before.template == after.template
    assert before.tags == after.tags


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda c: c["deploymentSettings"]["environments"].update(
                {"Staging_2": {"account": STAGING_ACCOUNT}}
            ),
            "deploymentSettings.environments.Staging_2 (the key): 'Staging_2' does not have the expected "
            "form",
        ),
        (
            lambda c: c["deploymentSettings"]["environments"]["staging"].update({"account": "1111"}),
            "deploymentSettings.environments.staging.account: '1111' does not have the expected form "
            "(a 12-digit AWS account id",
        ),
        (
            lambda c: c["deploymentSettings"]["environments"]["production"].update({"region": "europe"}),
            "deploymentSettings.environments.production.region: 'europe' does not have the expected form "
            "(an AWS region",
        ),
        (
            lambda c: c["deploymentSettings"]["environments"]["staging"].pop("account"),
            "deploymentSettings.environments.staging.account: is required",
        ),
        (
            lambda c: c["deploymentSettings"].update({"environment": "prod"}),
            "deploymentSettings.environment: 'prod' is not one of deploymentSettings.environments "
            "(staging, production)",
        ),
        (
            lambda c: c["marketplaceListings"]["lab"].update({"environments": ["staging", "qa"]}),
            "marketplaceListings.lab.environments[1]: 'qa': no such environment",
        ),
        (
            lambda c: c["marketplaceListings"]["lab"].update({"environments": []}),
            "marketplaceListings.lab.environments: has 0 entries: at least 1",
        ),
        (
            lambda c: c["deploymentSettings"]["environments"]["staging"].update(
                {"namePrefix": "codio-marketplace"}
            ),
            "deploymentSettings.environments.staging.namePrefix: 'codio-marketplace' is already the name "
            "prefix of environment 'production'",
        ),
        (
            lambda c: c["deploymentSettings"]["environments"]["staging"].update(
                {"retainResources": "sometimes"}
            ),
            "deploymentSettings.environments.staging.retainResources: 'sometimes' is not true or false",
        ),
        (
            lambda c: c["marketplaceListings"]["ai-skills"].update({"path": "the-listing-path-of-24ch"}),
            "marketplaceListings.ai-skills.path: in environment staging, 'the-listing-path-of-24ch' is too "
            "long: with namePrefix 'codio-marketplace-staging'",
        ),
    ],
    ids=[
        "name",
        "account",
        "region",
        "no-account",
        "default-not-among-them",
        "unknown-listing-environment",
        "no-listing-environment",
        "shared-prefix",
        "override-type",
        "derived-name-too-long",
    ],
)
def test_bad_environments_are_refused_naming_the_field(change: Any, problem: str) -> None:
    config = two_environments()
    change(config)
    with pytest.raises(ConfigError) as refused:
        parse_config(config)
    assert any(line.startswith(problem) for line in refused.value.problems), refused.value.problems


def test_an_unknown_environment_is_refused_naming_the_known_ones() -> None:
    config = parse_config(two_environments())
    with pytest.raises(ConfigError, match=r"--environment qa: no such environment .*\(staging, production\)"):
        config.for_environment("qa")
    seed = parse_config(json.loads(SEED_CONFIG))
    with pytest.raises(
        ConfigError, match="--environment staging: the config has one environment, 'production'"
    ):
        seed.for_environment("staging")
