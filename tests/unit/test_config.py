"""marketplace-config.json validation: every rule, with the message a seller reads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stacks.config import (
    SCHEMA_PATH,
    ConfigError,
    MarketplaceConfig,
    PricingModel,
    _describe,
    json_schema,
    load_config,
    parse_config,
)
from tests.support.seed_config import SEED_CONFIG

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def listing(path: str = "ai-skills", code: str = "CODE_1", **extra: Any) -> dict[str, Any]:
    return {
        "name": "AI Skills",
        "description": "Learn AI",
        "productCode": code,
        "path": path,
        "enabled": True,
        "dimensions": [{"name": "users", "description": "Active users"}],
        **extra,
    }


def config(*listings: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {
        "marketplaceListings": {item["path"]: item for item in listings} or {"ai-skills": listing()},
        "deploymentSettings": settings,
    }


def problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    return error.value.problems


def only_problem(data: Any) -> str:
    found = problems(data)
    assert len(found) == 1, found
    return found[0]


# --- what loads ---------------------------------------------------------------------------------------


def test_the_shipped_config_loads_with_both_seed_listings_and_the_defaults() -> None:
    loaded = load_config(PROJECT_ROOT / "marketplace-config.json")
    assert [item.path for item in loaded.enabled_listings] == ["ai-skills", "data-analytics"]
    settings = loaded.deployment_settings
    assert (settings.region, settings.environment, settings.retain_resources) == (
        "us-east-1",
        "production",
        True,
    )
    assert settings.name_prefix == "codio-marketplace"
    assert loaded.marketplace_listings["ai-skills"].pricing_model is PricingModel.SUBSCRIPTION


def test_the_seed_shape_with_one_dimension_is_enough() -> None:
    seed = {"name": "N", "description": "D", "productCode": "P", "path": "p", "enabled": True}
    loaded = parse_config(
        {"marketplaceListings": {"p": {**seed, "dimensions": [{"name": "u", "description": "d"}]}}}
    )
    item = loaded.marketplace_listings["p"]
    assert item.dimensions[0].unit == "Units"
    assert item.branding.accent_color == "#1f5fbf"
    assert loaded.deployment_settings.region == "us-east-1"


def test_disabled_listings_are_kept_but_not_enabled() -> None:
    loaded = parse_config(config(listing(), listing("old", "CODE_2", enabled=False)))
    assert [item.path for item in loaded.enabled_listings] == ["ai-skills"]
    assert loaded.listing_by_path("old") is not None


# --- required and unknown keys -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "description", "productCode", "path"])
def test_each_required_listing_field_is_named_when_missing(field: str) -> None:
    item = listing()
    del item[field]
    assert (
        only_problem({"marketplaceListings": {"ai-skills": item}})
        == f"marketplaceListings.ai-skills.{field}: is required"
    )


def test_the_listings_themselves_are_required() -> None:
    assert only_problem({}) == "marketplaceListings: is required"


@pytest.mark.parametrize(
    ("where", "mutate"),
    [
        ("tyop", lambda c: c.update(tyop=1)),
        (
            "marketplaceListings.ai-skills.prodcutCode",
            lambda c: c["marketplaceListings"]["ai-skills"].update(prodcutCode="x"),
        ),
        ("deploymentSettings.regoin", lambda c: c["deploymentSettings"].update(regoin="us-east-1")),
        (
            "marketplaceListings.ai-skills.branding.colour",
            lambda c: c["marketplaceListings"]["ai-skills"].update(branding={"colour": "#000000"}),
        ),
        (
            "marketplaceListings.ai-skills.dimensions[0].price",
            lambda c: c["marketplaceListings"]["ai-skills"]["dimensions"][0].update(price=1),
        ),
    ],
)
def test_unknown_keys_are_rejected_at_every_level(where: str, mutate: Any) -> None:
    data = config(listing())
    mutate(data)
    assert (
        only_problem(data)
        == f"{where}: is not a known setting (check its spelling against marketplace-config.schema.json)"
    )


# --- path ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["AI-Skills", "ai_skills", "1ai", "-ai", "ai-", "ai--skills", "ai skills", "", "ai.skills"]
)
def test_a_path_must_be_a_slug(bad: str) -> None:
    message = only_problem(config(listing(path=bad)))
    assert message.startswith("marketplaceListings.")
    assert ".path: " in message
    assert "lowercase letters, digits and single hyphens" in message or "at least 1 character" in message


@pytest.mark.parametrize("good", ["a", "ai-skills", "data-analytics-2", "x1-y2-z3"])
def test_good_slugs_are_accepted(good: str) -> None:
    assert parse_config(config(listing(path=good))).enabled_listings[0].path == good


def test_a_path_too_long_for_the_function_names_says_how_long_it_may_be() -> None:
    message = only_problem(config(listing(path="a" * 28)))
    assert message.startswith("marketplaceListings.")
    assert "would be 65 characters (AWS allows 64); use at most 27 characters" in message


def test_the_path_limit_follows_the_name_prefix() -> None:
    assert parse_config(config(listing(path="a" * 25)))  # fits with the default prefix
    message = only_problem(config(listing(path="a" * 25), namePrefix="a-much-much-longer-prefx"))
    assert "with namePrefix 'a-much-much-longer-prefx'" in message
    assert "use at most" in message


def test_paths_are_unique() -> None:
    data = {"marketplaceListings": {"one": listing("same", "CODE_1"), "two": listing("same", "CODE_2")}}
    assert only_problem(data) == (
        "marketplaceListings.two.path: 'same' is already used by marketplaceListings.one; "
        "each listing needs its own path"
    )


def test_a_repeated_path_is_reported_with_the_other_problems_in_one_pass() -> None:
    data = {
        "marketplaceListings": {
            "one": listing("same", "CODE_1"),
            "two": listing("same", "CODE_2"),
            "three": listing("three", "bad code"),
        },
        "deploymentSettings": {"region": "mars"},
    }
    assert sorted(line.split(":")[0] for line in problems(data)) == [
        "deploymentSettings.region",
        "marketplaceListings.three.productCode",
        "marketplaceListings.two.path",
    ]
    assert "'same' is already used by marketplaceListings.one" in problems(data)[-1]


def test_a_repeated_product_code_beside_an_invalid_listing_is_reported_once() -> None:
    data = {"marketplaceListings": {"one": listing("one", "DUP"), "two": listing("Two", "DUP")}}
    found = problems(data)
    assert [line.split(":")[0] for line in found] == [
        "marketplaceListings.two.path",
        "marketplaceListings.two.productCode",
    ]


@pytest.mark.parametrize(("prefix", "longest"), [(None, 27), ("a-much-much-longer-prefx", 23), ("abc", 40)])
def test_a_path_over_its_own_limit_says_the_rule_and_the_longest_the_prefix_allows(
    prefix: str | None, longest: int
) -> None:
    settings = {"namePrefix": prefix} if prefix else {}
    message = only_problem(config(listing(path="a" * 45), **settings))
    assert message.startswith("marketplaceListings.")
    assert "is too long (45 characters): a path has at most 40 characters" in message
    assert f"with namePrefix {prefix or 'codio-marketplace'!r} use at most {longest} characters" in message
    assert "String should" not in message
    if longest < 40:  # a path of that length is then accepted, one more is not
        assert parse_config(config(listing(path="a" * longest), **settings))
        assert f"use at most {longest} characters" in only_problem(
            config(listing(path="a" * (longest + 1)), **settings)
        )


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (lambda item: item.update(name="x" * 130), "is too long (130 characters): at most 72 characters"),
        (lambda item: item.update(description=""), "is empty: it takes at least 1 character"),
        (lambda item: item.update(enabled="maybe"), "'maybe' is not true or false"),
        (lambda item: item.update(name=7), "7 is not text: write it as a JSON string in double quotes"),
        (lambda item: item.update(tags=["team"]), "['team'] is not an object"),
        (lambda item: item.update(dimensions={"name": "users"}), "is not a list"),
        (
            lambda item: item.update(dimensions=[{"name": f"d{i}", "description": "d"} for i in range(25)]),
            "has 25 entries: at most 24",
        ),
        (lambda item: item.update(branding={"supportEmail": "nope"}), "'nope' is not an e-mail address"),
    ],
)
def test_messages_are_in_the_projects_words_not_the_validators(mutate: Any, says: str) -> None:
    item = listing()
    mutate(item)
    message = only_problem(config(item))
    assert says in message
    for validator_words in ("should", "Input", "valid dictionary", "String", "Tuple", "value is not"):
        assert validator_words not in message


def test_rules_across_values_are_reported_in_the_same_pass_as_the_other_problems() -> None:
    topic = "arn:aws:sns:us-east-1:287250355862:aws-mp-entitlement-notification-CODE_1"
    repeated = [{"name": "users", "description": "a"}, {"name": "users", "description": ""}]
    data = config(
        listing("one", "CODE_1", dimensions=repeated),
        listing("two", "bad code", legacy=True, legacyTopics={"entitlementTopicArn": topic}),
        region="ap-southeast-6",
        snapStart=True,
        namePrefix="Bad_Prefix",
    )
    found = problems(data)
    assert sorted(line.split(":")[0] for line in found) == [
        "deploymentSettings.namePrefix",
        "deploymentSettings.snapStart",
        "marketplaceListings.one.dimensions",
        "marketplaceListings.one.dimensions[1].description",
        "marketplaceListings.two.legacyTopics.entitlementTopicArn",
        "marketplaceListings.two.productCode",
    ]
    assert "marketplaceListings.one.dimensions: dimension names must be unique; repeated: users" in found
    assert len(found) == len(set(found))


def test_whole_numbers_and_ranges_are_in_the_projects_words() -> None:
    int_error = {
        "type": "int_parsing",
        "loc": ("x",),
        "msg": "Input should be a valid integer",
        "input": "8x",
    }
    range_error = {
        "type": "less_than_equal",
        "loc": ("x",),
        "msg": "Input should be ...",
        "input": 99,
        "ctx": {"le": 32},
    }
    assert _describe(int_error, "codio-marketplace") == "'8x' is not a whole number"
    assert _describe(range_error, "codio-marketplace") == "99 is out of range: it takes at most 32"


def test_a_config_that_is_not_an_object_says_so() -> None:
    assert only_problem([]) == "(top level): [] is not an object: write it as {...}"


def test_product_codes_are_unique() -> None:
    data = {"marketplaceListings": {"one": listing("one", "DUP"), "two": listing("two", "DUP")}}
    assert only_problem(data) == (
        "marketplaceListings.two.productCode: 'DUP' is already used by marketplaceListings.one; "
        "each listing needs its own productCode"
    )


# --- product codes, dimensions, pricing -----------------------------------------------------------------


@pytest.mark.parametrize("bad", ["has space", "semi;colon", "x" * 256, ""])
def test_a_product_code_has_the_marketplace_form(bad: str) -> None:
    message = only_problem(config(listing(code=bad)))
    assert message.startswith("marketplaceListings.ai-skills.productCode: ")


@pytest.mark.parametrize("bad", ["has space", "emoji🙂", "x" * 101, ""])
def test_a_dimension_name_has_the_marketplace_form(bad: str) -> None:
    message = only_problem(config(listing(dimensions=[{"name": bad, "description": "d"}])))
    assert message.startswith("marketplaceListings.ai-skills.dimensions[0].name: ")


def test_dimension_names_are_unique_within_a_listing() -> None:
    dimensions = [{"name": "users", "description": "a"}, {"name": "users", "description": "b"}]
    message = only_problem(config(listing(dimensions=dimensions)))
    assert (
        message == "marketplaceListings.ai-skills.dimensions: dimension names must be unique; repeated: users"
    )


def test_a_dimension_needs_a_description() -> None:
    message = only_problem(config(listing(dimensions=[{"name": "users", "description": ""}])))
    assert message.startswith("marketplaceListings.ai-skills.dimensions[0].description: ")


def test_a_listing_without_dimensions_is_valid_and_not_metered() -> None:
    item = parse_config(config(listing(dimensions=[]))).marketplace_listings["ai-skills"]
    assert item.dimensions == () and not item.is_metered


def test_the_seeds_config_is_valid_exactly_as_written() -> None:
    """The block in the seed document, character for character: no dimensions, no pricing model."""
    loaded = parse_config(json.loads(SEED_CONFIG))
    assert [item.path for item in loaded.enabled_listings] == ["ai-skills", "data-analytics"]
    for item in loaded.enabled_listings:
        assert item.dimensions == () and item.pricing_model is PricingModel.SUBSCRIPTION
        assert not item.is_metered
    assert loaded.deployment_settings.environment == "production"


def test_a_contract_listing_is_not_metered_even_with_dimensions() -> None:
    dimensions = [{"name": "seats", "description": "Seats"}]
    contract = parse_config(config(listing(pricingModel="contract", dimensions=dimensions)))
    consumption = parse_config(
        config(listing(pricingModel="contract-with-consumption", dimensions=dimensions))
    )
    assert not contract.marketplace_listings["ai-skills"].is_metered
    assert consumption.marketplace_listings["ai-skills"].is_metered


@pytest.mark.parametrize("model", ["subscription", "contract", "contract-with-consumption"])
def test_each_pricing_model_is_accepted(model: str) -> None:
    assert parse_config(config(listing(pricingModel=model))).enabled_listings[0].pricing_model.value == model


def test_an_unknown_pricing_model_names_the_allowed_ones() -> None:
    message = only_problem(config(listing(pricingModel="free")))
    assert message.startswith("marketplaceListings.ai-skills.pricingModel: ")
    assert "'subscription', 'contract' or 'contract-with-consumption'" in message


# --- deployment settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["us-east-1", "ap-southeast-2", "us-gov-west-1", "eu-central-2"])
def test_regions_of_aws_form_are_accepted(good: str) -> None:
    assert parse_config(config(listing(), region=good)).deployment_settings.region == good


@pytest.mark.parametrize("bad", ["mars", "US-EAST-1", "us-east", "us_east_1"])
def test_a_region_must_look_like_one(bad: str) -> None:
    assert only_problem(config(listing(), region=bad)) == (
        f"deploymentSettings.region: {bad!r} does not have the expected form "
        "(an AWS region such as us-east-1)"
    )


@pytest.mark.parametrize(
    ("key", "bad"), [("environment", "Prod!"), ("namePrefix", "Codio_MP"), ("namePrefix", "ab")]
)
def test_environment_and_name_prefix_have_their_forms(key: str, bad: str) -> None:
    assert only_problem(config(listing(), **{key: bad})).startswith(f"deploymentSettings.{key}: ")


@pytest.mark.parametrize("good", ["cron(5 * * * ? *)", "rate(15 minutes)", "rate(1 minute)", "rate(1 hour)"])
def test_the_metering_schedule_accepts_at_least_hourly_expressions(good: str) -> None:
    assert (
        parse_config(config(listing(), meteringSchedule=good)).deployment_settings.metering_schedule == good
    )


@pytest.mark.parametrize("bad", ["rate(2 hours)", "rate(90 minutes)", "daily", "cron()"])
def test_the_metering_schedule_must_run_at_least_hourly(bad: str) -> None:
    message = only_problem(config(listing(), meteringSchedule=bad))
    assert message.startswith("deploymentSettings.meteringSchedule: ")
    assert "rate(N minutes) with N up to 60" in message


# --- branding, e-mail, domain, topics -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("branding", "field"),
    [
        ({"accentColor": "blue"}, "accentColor"),
        ({"accentColor": "#12345"}, "accentColor"),
        ({"logoUrl": "http://example.com/logo.png"}, "logoUrl"),
        ({"logoUrl": "javascript:alert(1)"}, "logoUrl"),
        ({"supportEmail": "not-an-email"}, "supportEmail"),
    ],
)
def test_branding_values_are_checked(branding: dict[str, str], field: str) -> None:
    assert only_problem(config(listing(branding=branding))).startswith(
        f"marketplaceListings.ai-skills.branding.{field}: "
    )


def test_notification_emails_are_checked_at_both_levels() -> None:
    found = problems(config(listing(notificationEmail="nope"), notificationEmail="also-nope"))
    assert sorted(line.split(":")[0] for line in found) == [
        "deploymentSettings.notificationEmail",
        "marketplaceListings.ai-skills.notificationEmail",
    ]


def test_a_custom_domain_needs_a_us_east_1_certificate() -> None:
    good = {"domainName": "learn.example.com", "certificateArn": CERT}
    assert parse_config(config(listing(customDomain=good))).enabled_listings[0].custom_domain is not None
    wrong_region = {**good, "certificateArn": CERT.replace("us-east-1", "eu-west-1")}
    assert only_problem(config(listing(customDomain=wrong_region))).startswith(
        "marketplaceListings.ai-skills.customDomain.certificateArn: "
    )


def test_legacy_topic_arns_must_be_the_marketplace_topics_in_us_east_1() -> None:
    good = "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-abc123"
    assert parse_config(config(listing(legacyTopics={"subscriptionTopicArn": good})))
    for bad in (good.replace("us-east-1", "eu-west-1"), good.replace("subscription", "entitlement")):
        message = only_problem(config(listing(legacyTopics={"subscriptionTopicArn": bad})))
        assert message.startswith("marketplaceListings.ai-skills.legacyTopics.subscriptionTopicArn: ")


# --- tags -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "says"),
    [
        ({"aws:owner": "x"}, "the 'aws:' prefix is reserved by AWS"),
        ({"Stack": "x"}, "is set by the stacks themselves"),
        ({"Listing": "x"}, "is set by the stacks themselves"),
        ({"Environment": "x"}, "is set by the stacks themselves"),
        ({"bad!key": "x"}, "letters, digits, spaces and _ . : / = + - @"),
        ({"k" * 129: "x"}, "at most 128 characters"),
    ],
)
def test_tag_keys_follow_the_aws_rules(tags: dict[str, str], says: str) -> None:
    message = only_problem(config(listing(tags=tags)))
    assert message.startswith("marketplaceListings.ai-skills.tags.")
    assert "(the key)" in message
    assert says in message


def test_tag_values_follow_the_aws_rules() -> None:
    message = only_problem(config(listing(), tags={"Owner": "v" * 257}))
    assert message.startswith("deploymentSettings.tags.Owner: ")
    assert "at most 256 characters" in message


def test_at_most_50_tags_in_all() -> None:
    shared = {f"shared{i}": "x" for i in range(30)}
    own = {f"own{i}": "y" for i in range(18)}
    message = only_problem(config(listing(tags=own), tags=shared))
    assert message == (
        "marketplaceListings.ai-skills.tags: 51 tags in all with deploymentSettings.tags and the 3 built-in "
        "ones; AWS allows 50 per resource"
    )


# --- every problem at once, and files -------------------------------------------------------------------


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    item = listing(path="Bad", code="bad code", dimensions=[{"name": "bad name", "description": "d"}])
    del item["description"]
    found = problems(
        {"marketplaceListings": {"x": item}, "deploymentSettings": {"region": "mars", "extra": 1}}
    )
    assert sorted(line.split(":")[0] for line in found) == [
        "deploymentSettings.extra",
        "deploymentSettings.region",
        "marketplaceListings.x.description",
        "marketplaceListings.x.dimensions[0].name",
        "marketplaceListings.x.path",
        "marketplaceListings.x.productCode",
    ]
    assert all("\n" not in line for line in found)


def test_a_report_counts_the_problems_and_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "marketplace-config.json"
    file.write_text(json.dumps(config(listing(code="bad code"), region="mars")))
    with pytest.raises(ConfigError) as error:
        load_config(file)
    report = error.value.report()
    assert report.splitlines()[0] == f"The config file {file} has 2 problems:"
    assert all(line.startswith("  - ") for line in report.splitlines()[1:])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no such file"),
        ('{"marketplaceListings": {', "line 1, column 26: not valid JSON"),
        (b"\xff\xfe\x00", "cannot be read"),
    ],
)
def test_unreadable_files_are_reported_clearly(
    tmp_path: Path, content: str | bytes | None, says: str
) -> None:
    file = tmp_path / "marketplace-config.json"
    if isinstance(content, bytes):
        file.write_bytes(content)
    elif content is not None:
        file.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_config(file)
    assert says in error.value.problems[0]
    assert str(file) in error.value.report()


def test_a_truncated_file_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    shipped = (PROJECT_ROOT / "marketplace-config.json").read_text()
    cut = shipped[: shipped.index(",", len(shipped) // 2) + 1]  # cut after a comma: the JSON ends too early
    file = tmp_path / "marketplace-config.json"
    file.write_text(cut)
    with pytest.raises(ConfigError) as error:
        load_config(file)
    (problem,) = error.value.problems
    line = cut.count("\n") + 1
    column = len(cut.rsplit("\n", 1)[-1]) + 1
    assert problem.startswith(f"line {line}, column {column}: not valid JSON (")
    assert error.value.report().startswith(f"The config file {file} has 1 problem:")


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path)
    assert "cannot be read" in error.value.problems[0]


# --- the JSON Schema ------------------------------------------------------------------------------------


def test_the_schema_is_valid_and_accepts_the_shipped_config() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    shipped = json.loads((PROJECT_ROOT / "marketplace-config.json").read_text())
    assert shipped["$schema"] == "./marketplace-config.schema.json"
    jsonschema.Draft202012Validator(schema).validate(shipped)


def test_the_schema_rejects_unknown_keys_too() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    data = copy.deepcopy(config(listing()))
    data["marketplaceListings"]["ai-skills"]["prodcutCode"] = "x"
    assert not validator.is_valid(data)


def test_the_model_is_frozen() -> None:
    loaded: MarketplaceConfig = parse_config(config(listing()))
    with pytest.raises(ValueError, match="frozen"):
        loaded.deployment_settings.region = "eu-west-1"  # type: ignore[misc]


def test_an_entitlement_topic_on_a_subscription_listing_is_refused_with_the_field_named() -> None:
    topic = "arn:aws:sns:us-east-1:287250355862:aws-mp-entitlement-notification-CODE_1"
    message = only_problem(config(listing(legacy=True, legacyTopics={"entitlementTopicArn": topic})))
    assert message.startswith("marketplaceListings.ai-skills.legacyTopics.entitlementTopicArn: ")
    assert "contract" in message
    contract = listing(legacy=True, pricingModel="contract", legacyTopics={"entitlementTopicArn": topic})
    assert (
        parse_config(config(contract)).marketplace_listings["ai-skills"].legacy_topics.entitlement_topic_arn
    )
