"""`--destroy-disabled` against moto's CloudFormation, and the operator commands' argument checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.stack_template import ListingTemplate
from operations import cli, status as listing_status_module
from operations.destroy_disabled import destroy_disabled
from operations.status import show_status
from operations.target import OperationError
from stacks.config import MarketplaceConfig
from tests.infrastructure.conftest import config_with, listing
from tests.integration.conftest import templates  # noqa: F401 - the synthesized tables, as a fixture


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def config() -> MarketplaceConfig:
    return config_with(
        listing("ai-skills", "PROD_AI"),
        listing("retired", "PROD_OLD", enabled=False),
    )


def deploy_stack(name: str, tags: dict[str, str], *, retained_bucket: str | None = None) -> None:
    """A stack as a deploy leaves it: a listing stack is tagged with its environment (config_with's)."""
    tags = {"Environment": "test", **tags} if "Listing" in tags else tags
    resources: dict[str, Any] = {"Topic": {"Type": "AWS::SNS::Topic"}}
    if retained_bucket:
        resources["Data"] = {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "Properties": {"BucketName": retained_bucket},
        }
    boto3.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps({"Resources": resources}),
        Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
    )


def live_stacks() -> set[str]:
    stacks = boto3.client("cloudformation").describe_stacks()["Stacks"]
    return {stack["StackName"] for stack in stacks if stack["StackStatus"] != "DELETE_COMPLETE"}


@pytest.fixture
def deployed(aws: None) -> None:
    deploy_stack("codio-marketplace-ai-skills", {"Listing": "ai-skills"})
    deploy_stack("codio-marketplace-retired", {"Listing": "retired"}, retained_bucket="retired-data-bucket")
    deploy_stack("codio-marketplace-gone", {"Listing": "gone"})
    deploy_stack("codio-marketplace-gone-events", {"Listing": "gone"})
    deploy_stack("codio-marketplace-unrelated", {})  # our prefix, but not a listing stack
    deploy_stack("someone-elses-stack", {"Listing": "gone"})  # a Listing tag, but not our name


def test_only_stacks_of_disabled_or_removed_listings_are_deleted(
    deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    deleted = destroy_disabled(config(), yes=True)
    assert sorted(deleted) == [
        "codio-marketplace-gone",
        "codio-marketplace-gone-events",
        "codio-marketplace-retired",
    ]
    assert live_stacks() == {
        "codio-marketplace-ai-skills",
        "codio-marketplace-unrelated",
        "someone-elses-stack",
    }
    out = capsys.readouterr().out
    assert "AWS::S3::Bucket retired-data-bucket" in out
    assert "aws s3 rb s3://retired-data-bucket --force" in out


def test_nothing_is_deleted_without_confirmation(deployed: None) -> None:
    with pytest.raises(OperationError, match="not confirmed"):
        destroy_disabled(config(), yes=False, ask=lambda _prompt: "yes please")
    assert "codio-marketplace-retired" in live_stacks()


def test_without_a_terminal_it_asks_for_yes(
    deployed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    monkeypatch.setattr(cli, "read_config", lambda _path: config())
    assert cli.main(["--destroy-disabled"]) == 1
    assert "confirm with --yes" in capsys.readouterr().err
    assert "codio-marketplace-gone" in live_stacks()


def test_typing_delete_confirms(deployed: None) -> None:
    deleted = destroy_disabled(config(), yes=False, ask=lambda _prompt: "delete")
    assert len(deleted) == 3


def test_another_environments_stacks_are_never_taken_for_this_ones(aws: None) -> None:
    settings = {
        "environment": "production",
        "environments": {"staging": {"account": "123456789012"}, "production": {"account": "123456789012"}},
    }
    both = config_with(
        listing("ai-skills", "PROD_AI"),
        listing("trial", "PROD_TRIAL", environments=["production"]),
        **settings,
    )
    deploy_stack("codio-marketplace-ai-skills", {"Listing": "ai-skills", "Environment": "production"})
    deploy_stack("codio-marketplace-trial", {"Listing": "trial", "Environment": "production"})
    deploy_stack("codio-marketplace-staging-ai-skills", {"Listing": "ai-skills", "Environment": "staging"})
    # Left from when the trial listing was also in staging.
    deploy_stack("codio-marketplace-staging-trial", {"Listing": "trial", "Environment": "staging"})
    # Named as production's stack of a listing gone from the config, but tagged as another environment's.
    deploy_stack("codio-marketplace-gone", {"Listing": "gone", "Environment": "staging"})

    assert destroy_disabled(both.for_environment("production"), yes=True) == []
    assert destroy_disabled(both.for_environment("staging"), yes=True) == ["codio-marketplace-staging-trial"]
    assert live_stacks() == {
        "codio-marketplace-ai-skills",
        "codio-marketplace-trial",
        "codio-marketplace-staging-ai-skills",
        "codio-marketplace-gone",
    }


def test_nothing_to_retire_says_so(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    deploy_stack("codio-marketplace-ai-skills", {"Listing": "ai-skills"})
    assert destroy_disabled(config(), yes=True) == []
    assert "nothing to delete" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--export-subscribers"], "exactly one --listing"),
        (["--export-subscribers", "--listing", "ai-skills", "--listing", "data-analytics"], "exactly one"),
        (["--export-subscribers", "--listing", "ai-skills", "--format", "xml"], "csv or json"),
    ],
)
def test_export_arguments_are_checked(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) != 0
    assert says in capsys.readouterr().err


def test_local_goes_only_with_status_and_export(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--synth", "--local"])
    assert "--local does not go with --synth" in capsys.readouterr().err


def test_status_against_an_account_without_the_stacks_says_not_deployed(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    statuses = show_status(config(), ["ai-skills"], local=False)
    assert statuses[0].stack_status == "not deployed"
    assert "not deployed" in capsys.readouterr().out


def test_status_of_a_deployed_listing(
    aws: None,
    templates: dict[str, ListingTemplate],  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Against the account: stack status and URL from CloudFormation, counts from the tables, alarms."""
    stack = "codio-marketplace-onboard"
    boto3.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"WebsiteUrl": {"Value": "https://d111.cloudfront.net/"}},
            }
        ),
    )
    dynamodb = boto3.client("dynamodb")
    for table in templates["onboard"].tables:
        dynamodb.create_table(**table.create_request)
    subscribers = boto3.resource("dynamodb").Table("codio-marketplace-subscribers-onboard")
    for number, status in enumerate(["active", "active", "failed", "cancel-pending"]):
        subscribers.put_item(
            Item={
                "customerAWSAccountId": f"1111222233{number:02d}",
                "subscriptionKey": "l-1",
                "status": status,
                "registrationDate": "2026-11-30T10:00:00Z",
            }
        )
    # Announced by AWS Marketplace (a subscription event), never registered: counted apart.
    for number, status in enumerate(["active", "active", "cancelled"]):
        subscribers.put_item(
            Item={
                "customerAWSAccountId": f"9999222233{number:02d}",
                "subscriptionKey": "l-9",
                "status": status,
            }
        )
    subscribers.put_item(Item={"customerAWSAccountId": "agreement#agmt-1", "subscriptionKey": "PROD"})
    usage = boto3.resource("dynamodb").Table("codio-marketplace-metering-onboard")
    for number, status in enumerate(["pending", "metered", "metered", "failed"]):
        usage.put_item(
            Item={"customerAWSAccountId": "111122223300", "usageKey": f"h{number}", "meteringStatus": status}
        )
    cloudwatch = boto3.client("cloudwatch")
    for signal in ("api-5xx", "usage-pending-too-long"):
        cloudwatch.put_metric_alarm(
            AlarmName=f"{stack}-{signal}",
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    cloudwatch.set_alarm_state(AlarmName=f"{stack}-api-5xx", StateValue="ALARM", StateReason="test")

    config = config_with(listing("onboard", "PROD_ONBOARD"))
    (status,) = show_status(config, ["onboard"], local=False)
    assert (status.stack_status, status.website_url) == ("CREATE_COMPLETE", "https://d111.cloudfront.net/")
    assert {k: v for k, v in status.subscribers.items() if v} == {
        "active": 2,
        "failed": 1,
        "cancel-pending": 1,
    }
    assert {k: v for k, v in status.unregistered.items() if v} == {"active": 2, "cancelled": 1}
    assert status.usage == {"pending": 1, "metered": 2, "failed": 1}
    assert status.alarms_firing == ["api-5xx"]
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    assert re.split(r"\s{2,}", header)[3:5] == ["Registered", "Not registered"]
    assert re.split(r"\s{2,}", row)[3:5] == ["2 active, 1 cancel-pending, 1 failed", "2 active, 1 cancelled"]
    assert re.split(r"\s{2,}", row)[6:] == ["api-5xx", "never"]  # alarms firing; no reconciliation yet


def test_status_shows_the_oldest_pending_usage_hour_and_its_age(monkeypatch: pytest.MonkeyPatch) -> None:
    """How far behind the metering job is: the oldest record still to be sent, from the usage table."""
    from datetime import UTC, datetime, timedelta

    hour = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    items = [
        {"meteringStatus": {"S": "metered"}, "usageHour": {"S": "2000-01-01T00:00:00Z"}},
        {"meteringStatus": {"S": "pending"}, "usageHour": {"S": hour.strftime("%Y-%m-%dT%H:00:00Z")}},
        {"meteringStatus": {"S": "pending"}, "usageHour": {"S": f"{datetime.now(UTC):%Y-%m-%dT%H:00:00Z}"}},
    ]

    class Table:
        def scan(self, **request: Any) -> dict[str, Any]:
            assert "usageHour" in request["ProjectionExpression"]
            return {"Items": items}

    counts, oldest = listing_status_module._usage_counts(Table(), "metering")
    assert counts == {"pending": 2, "metered": 1, "failed": 0}
    assert oldest == hour.strftime("%Y-%m-%dT%H:00:00Z")  # the metered record's older hour does not count
    status = listing_status_module.ListingStatus("ai", "UPDATE_COMPLETE", "-", {}, counts, [], oldest, 3.25)
    row = listing_status_module.status_table([status]).splitlines()[2]
    assert f"2 pending, 1 metered (oldest pending {oldest}, 3.2 h ago)" in row
