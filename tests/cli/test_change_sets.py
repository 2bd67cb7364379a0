"""`--plan`'s change sets, `--execute-plan` and `--discard-plan` against moto's CloudFormation, S3 and STS.

The plan is made from real synthesized cloud assemblies: a listing stack in eu-west-1 with its us-east-1
event forwarder (synthesized once for the module), and a small app built here for what moto's CloudFormation
cannot run from a listing stack (it creates the listing stack's change set but cannot execute it: several of
its resource types are unknown to moto). Both go through the same code.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk import App, CfnOutput, RemovalPolicy, Stack, aws_iam as iam, aws_lambda as lambda_, aws_s3 as s3
from moto import mock_aws

from operations import change_sets, cli
from stacks.app_builder import build_app
from stacks.config import MarketplaceConfig
from tests.infrastructure.conftest import ACCOUNT, PROJECT_ROOT, config_with, listing

LISTING_STACK = "codio-marketplace-quick"
FORWARDER = f"{LISTING_STACK}-events"
SMALL_STACK = "codio-marketplace-small"
REGION = "eu-west-1"


def flags() -> dict[str, Any]:
    return {**json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"], "aws:cdk:bundling-stacks": []}


def listing_config() -> MarketplaceConfig:
    return config_with(listing("quick", "PROD_QUICK"), region=REGION)


@pytest.fixture(scope="module")
def listing_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("listing.out")
    app = App(outdir=str(outdir), context=flags())
    build_app(listing_config(), account=ACCOUNT, app=app)
    app.synth()
    return outdir


def small_assembly(outdir: Path, *, with_bucket: bool = True, handler: str = "v1") -> Path:
    """A stack moto can create: a role, a function with a directory asset, a retained bucket, outputs."""
    code = outdir.parent / f"{outdir.name}-code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "index.py").write_text(f"def handler(event, context):\n    return {handler!r}\n")
    app = App(outdir=str(outdir), context=flags())
    stack = Stack(app, SMALL_STACK, env={"account": ACCOUNT, "region": REGION}, tags={"Listing": "small"})
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    function = lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_asset(str(code)),
        role=role,
    )
    CfnOutput(stack, "WebsiteUrl", value="https://small.example.com/")
    CfnOutput(stack, "ApiUrl", value=function.function_arn)
    if with_bucket:
        s3.Bucket(stack, "Data", removal_policy=RemovalPolicy.RETAIN)
    app.synth()
    return outdir


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """moto with the account bootstrapped in both regions; the CLI's files in tmp_path; no terminal."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(change_sets, "POLL_SECONDS", 0)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(cli, "PLAN_FILE", tmp_path / "deploy-plan.json")
    monkeypatch.setattr(cli, "OUTPUTS_FILE", tmp_path / "deploy-outputs.json")
    with mock_aws():
        for region in (REGION, "us-east-1"):
            boto3.client("s3", region_name=region).create_bucket(
                Bucket=f"cdk-hnb659fds-assets-{ACCOUNT}-{region}",
                **(
                    {}
                    if region == "us-east-1"
                    else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                ),
            )
            boto3.client("ssm", region_name=region).put_parameter(
                Name="/cdk-bootstrap/hnb659fds/version", Value="27", Type="String"
            )
        yield


def config_file(tmp_path: Path, path: str = "quick") -> Path:
    file = tmp_path / "marketplace-config.json"
    file.write_text(
        json.dumps(
            {
                "marketplaceListings": {path: listing(path, f"PROD_{path.upper()}")},
                "deploymentSettings": {"region": REGION, "environment": "test"},
            }
        )
    )
    return file


def plan(assembly: Path, tmp_path: Path, path: str, stacks: list[str]) -> change_sets.Plan:
    config_path = tmp_path / "marketplace-config.json"
    if not config_path.exists():
        config_file(tmp_path, path)
    config = config_with(listing(path, f"PROD_{path.upper()}"), region=REGION)
    return change_sets.create_plan(config, config_path, [path], stacks, assembly, plan_file())


def plan_file() -> Path:
    """Where the CLI keeps the plan of the tests' environment (`test`)."""
    return cli.plan_file(listing_config())


def cloudformation(region: str = REGION) -> Any:
    return boto3.client("cloudformation", region_name=region)


def stack_status(name: str, region: str = REGION) -> str | None:
    try:
        return str(cloudformation(region).describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])
    except cloudformation(region).exceptions.ClientError as error:
        assert "does not exist" in str(error)
        return None


def test_a_plan_creates_a_change_set_per_stack_and_the_forwarder_first_and_reviews_them(
    aws: None, listing_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    assert [(item.stack, item.region, item.change_set_type) for item in made.stacks] == [
        (FORWARDER, "us-east-1", "CREATE"),
        (LISTING_STACK, REGION, "CREATE"),
    ]
    for item in made.stacks:
        assert item.change_set is not None
        described = cloudformation(item.region).describe_change_set(ChangeSetName=item.change_set)
        assert (described["Status"], described["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
        assert stack_status(item.stack, item.region) == "REVIEW_IN_PROGRESS"  # nothing executed
    listing = cloudformation().describe_change_set(ChangeSetName=made.stacks[1].change_set)
    review_stack = cloudformation().describe_stacks(StackName=LISTING_STACK)["Stacks"][0]
    assert {"Key": "Listing", "Value": "quick"} in review_stack["Tags"]
    assert (
        review_stack["RoleARN"]
        == f"arn:aws:iam::{ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-{ACCOUNT}-{REGION}"
    )
    template = json.loads((listing_assembly / f"{LISTING_STACK}.template.json").read_text())
    assert len(listing["Changes"]) == len(template["Resources"])

    # the assets are where the template says they are
    bucket = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
    keys = {
        item["Key"]
        for item in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket)["Contents"]
    }
    code = template["Resources"]
    lambda_keys = {
        resource["Properties"]["Code"]["S3Key"]
        for resource in code.values()
        if resource["Type"] == "AWS::Lambda::Function" and "S3Key" in resource["Properties"].get("Code", {})
    }
    assert lambda_keys and lambda_keys <= keys

    out = capsys.readouterr()
    assert f"{LISTING_STACK} ({REGION}, CREATE): {len(template['Resources'])} change(s)" in out.out
    roles = [line for line in out.out.splitlines() if "AWS::IAM::Role" in line]
    assert roles and all(line.endswith("[IAM/security]") and "+ Add" in line for line in roles)
    queues = [line for line in out.out.splitlines() if line.rstrip().endswith("AWS::SQS::Queue")]
    assert queues  # a queue is no security change
    assert "change set CREATE_COMPLETE" in out.err

    written = json.loads(plan_file().read_text())
    assert (written["environment"], written["account"], written["region"]) == ("test", ACCOUNT, REGION)
    assert [item["changeSet"] for item in written["stacks"]] == [item.change_set for item in made.stacks]
    assert written["config"]["sha256"] == change_sets.config_hash(tmp_path / "marketplace-config.json")
    assert any("AWS::IAM::Role" in line for line in written["stacks"][1]["securityChanges"])


def test_a_second_plan_uploads_nothing_new_and_replaces_the_first_ones_change_sets(
    aws: None, listing_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    assert f"{LISTING_STACK}: 7 asset(s) published, 0 already there" in capsys.readouterr().err
    second = plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    err = capsys.readouterr().err
    assert f"{LISTING_STACK}: 0 asset(s) published, 7 already there" in err
    assert "Replacing the previous plan" in err
    for old, new in zip(first.stacks, second.stacks, strict=True):
        summaries = cloudformation(new.region).list_change_sets(StackName=new.stack)["Summaries"]
        assert [summary["ChangeSetId"] for summary in summaries] == [new.change_set] != [old.change_set]


def test_a_region_that_is_not_bootstrapped_exits_4_and_leaves_no_change_set(
    aws: None, listing_assembly: Path, tmp_path: Path
) -> None:
    bucket = boto3.resource("s3", region_name=REGION).Bucket(f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}")
    bucket.delete()
    with pytest.raises(change_sets.NotBootstrapped) as raised:
        plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    assert raised.value.exit_code == 4
    assert f"npx cdk bootstrap aws://{ACCOUNT}/{REGION}" in str(raised.value)
    assert stack_status(FORWARDER, "us-east-1") is None  # its change set, made first, was deleted again
    assert not plan_file().exists()


def test_a_directory_asset_zips_the_same_every_time(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.py").write_text("x = 1\n")
    (tmp_path / "b.txt").write_text("b")
    first = change_sets.zip_directory(tmp_path)
    (tmp_path / "b.txt").touch()  # a new mtime only
    assert change_sets.zip_directory(tmp_path) == first
    (tmp_path / "b.txt").write_text("c")
    assert change_sets.zip_directory(tmp_path) != first


def test_discard_deletes_the_change_sets_the_empty_stacks_and_the_file(
    aws: None, listing_assembly: Path, tmp_path: Path
) -> None:
    plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    assert cli.main(["--discard-plan", "--config", str(tmp_path / "marketplace-config.json")]) == 0
    for region, name in (("us-east-1", FORWARDER), (REGION, LISTING_STACK)):
        assert stack_status(name, region) is None
        assert cloudformation(region).list_change_sets(StackName=name)["Summaries"] == []
    assert not plan_file().exists()


def test_execute_refuses_credentials_of_another_account_and_executes_nothing(
    aws: None, listing_assembly: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "210987654321")
    assert cli.main(["--execute-plan", "--config", str(tmp_path / "marketplace-config.json")]) == 3
    error = capsys.readouterr().err
    assert "credentials in the environment are for account 210987654321" in error
    assert f"is account {ACCOUNT}" in error and "Nothing was changed" in error
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    assert stack_status(FORWARDER, "us-east-1") == "REVIEW_IN_PROGRESS"
    assert plan_file().exists()


def test_a_plan_refuses_credentials_of_another_account_than_the_environments_before_anything(
    aws: None, listing_assembly: Path, tmp_path: Path
) -> None:
    config = config_with(listing("quick", "PROD_QUICK"), region=REGION, account="210987654321")
    with pytest.raises(change_sets.WrongAccount) as raised:
        change_sets.create_plan(
            config, config_file(tmp_path), ["quick"], [LISTING_STACK], listing_assembly, plan_file()
        )
    assert raised.value.exit_code == 3
    assert f"are for account {ACCOUNT}, but environment test's deploymentSettings.account" in str(
        raised.value
    )
    assert stack_status(FORWARDER, "us-east-1") is None and stack_status(LISTING_STACK) is None
    assert "Contents" not in boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
    )
    assert not plan_file().exists()


def test_execute_refuses_after_the_config_changed(
    aws: None, listing_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    config = tmp_path / "marketplace-config.json"
    changed = json.loads(config.read_text())
    changed["marketplaceListings"]["quick"]["description"] = "Something else"
    config.write_text(json.dumps(changed))
    assert cli.main(["--execute-plan", "--config", str(config)]) == 1
    assert "changed since the plan was made" in capsys.readouterr().err
    assert stack_status(FORWARDER, "us-east-1") == "REVIEW_IN_PROGRESS"
    assert stack_status(LISTING_STACK) == "REVIEW_IN_PROGRESS"


def test_require_approval_without_a_terminal_lists_the_iam_changes_and_refuses_unless_yes(
    aws: None, listing_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    capsys.readouterr()
    config = str(tmp_path / "marketplace-config.json")
    assert cli.main(["--execute-plan", "--require-approval", "--config", config]) == 1
    captured = capsys.readouterr()
    assert "The plan makes IAM/security changes:" in captured.out
    assert re.search(rf"{FORWARDER}: \+ Add +\S+ +AWS::IAM::Role +\[IAM/security\]", captured.out)
    assert "no terminal to ask; nothing was executed" in captured.err
    assert "--execute-plan --require-approval --yes" in captured.err
    assert stack_status(FORWARDER, "us-east-1") == "REVIEW_IN_PROGRESS"


def test_at_a_terminal_require_approval_asks_and_a_no_executes_nothing(
    aws: None, listing_assembly: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    questions: list[str] = []

    def ask(question: str) -> str:
        questions.append(question)
        return "n"

    monkeypatch.setattr(cli.sync_listings, "terminal_prompt", lambda: ask)
    assert (
        cli.main(
            ["--execute-plan", "--require-approval", "--config", str(tmp_path / "marketplace-config.json")]
        )
        == 1
    )
    assert questions == ["Execute these changes? [y/N] "]
    assert stack_status(FORWARDER, "us-east-1") == "REVIEW_IN_PROGRESS"
    assert plan_file().exists()


def test_a_stack_cloudformation_refuses_to_create_exits_6_and_leaves_no_plan(
    aws: None, listing_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto's CloudFormation refuses to execute the listing stack (it cannot make a global table), after
    the forwarder stack was created."""
    plan(listing_assembly, tmp_path, "quick", [LISTING_STACK])
    assert cli.main(["--execute-plan", "--yes", "--config", str(tmp_path / "marketplace-config.json")]) == 6
    assert f"{LISTING_STACK}: CloudFormation refused" in capsys.readouterr().err
    assert stack_status(FORWARDER, "us-east-1") == "CREATE_COMPLETE"
    assert not plan_file().exists()


def test_execute_creates_the_stack_prints_the_url_table_then_a_new_plan_has_no_changes(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assembly = small_assembly(tmp_path / "small.out")
    made = plan(assembly, tmp_path, "small", [SMALL_STACK])
    (planned,) = made.stacks
    assert planned.change_set_type == "CREATE"
    config = str(tmp_path / "marketplace-config.json")
    capsys.readouterr()
    assert cli.main(["--execute-plan", "--require-approval", "--yes", "--config", config]) == 0
    captured = capsys.readouterr()
    assert f"{SMALL_STACK}: CREATE_COMPLETE" in captured.err
    assert "The plan makes IAM/security changes:" in captured.out  # listed, not asked (--yes)
    # moto's CloudFormation gives a stack made by a change set no outputs; the next test reads them
    assert [line for line in captured.out.splitlines() if line.startswith("small ")]
    assert not plan_file().exists()
    assert stack_status(SMALL_STACK) == "CREATE_COMPLETE"
    deployed = cloudformation().get_template(StackName=SMALL_STACK)["TemplateBody"]
    synthesized = json.loads((assembly / f"{SMALL_STACK}.template.json").read_text())
    assert (deployed if isinstance(deployed, dict) else json.loads(deployed)) == synthesized
    function = boto3.client("lambda", region_name=REGION).list_functions()["Functions"]
    assert [item["Handler"] for item in function] == ["index.handler"]

    again = plan(assembly, tmp_path, "small", [SMALL_STACK])
    assert again.stacks[0].change_set is None
    assert f"{SMALL_STACK} ({REGION}): no changes" in capsys.readouterr().out
    assert cloudformation().list_change_sets(StackName=SMALL_STACK)["Summaries"] == [
        summary
        for summary in cloudformation().list_change_sets(StackName=SMALL_STACK)["Summaries"]
        if summary["ChangeSetId"] == planned.change_set  # only the executed one, none from the new plan
    ]
    assert cli.main(["--execute-plan", "--config", config]) == 0
    assert f"{SMALL_STACK}: no changes" in capsys.readouterr().err


def test_an_update_that_drops_a_retained_bucket_is_marked_and_a_used_change_set_is_refused(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = plan(small_assembly(tmp_path / "v1.out"), tmp_path, "small", [SMALL_STACK])
    config = str(tmp_path / "marketplace-config.json")
    assert cli.main(["--discard-plan", "--config", config]) == 0
    # deployed before, the way cdk deploy did it: a stack made from the published template
    (published,) = change_sets.read_assembly(tmp_path / "v1.out", [SMALL_STACK])
    url = change_sets.template_url(published, change_sets.Credentials.check(REGION, {}))
    cloudformation().create_stack(
        StackName=SMALL_STACK, TemplateURL=url, Capabilities=change_sets.CAPABILITIES
    )
    assert first.stacks[0].change_set_type == "CREATE"
    capsys.readouterr()

    v2 = small_assembly(tmp_path / "v2.out", with_bucket=False, handler="v2")
    made = plan(v2, tmp_path, "small", [SMALL_STACK])
    assert made.stacks[0].change_set_type == "UPDATE"
    out = capsys.readouterr().out
    (removed,) = [line for line in out.splitlines() if "AWS::S3::Bucket" in line]
    assert "- Remove" in removed
    assert "[DATA: removed from the stack; the old one stays in the account, unmanaged]" in removed
    assert made.stacks[0].data == (removed.strip(),)

    kept = plan_file().read_text()
    assert cli.main(["--execute-plan", "--config", config]) == 0
    table = capsys.readouterr().out
    (row,) = [line for line in table.splitlines() if line.startswith("small ")]
    assert "https://small.example.com/" in row
    assert json.loads((tmp_path / "deploy-outputs.json").read_text())[SMALL_STACK]["WebsiteUrl"] == (
        "https://small.example.com/"
    )
    deployed = cloudformation().get_template(StackName=SMALL_STACK)["TemplateBody"]
    assert "Data" not in (deployed if isinstance(deployed, dict) else json.loads(deployed))["Resources"]
    plan_file().write_text(kept)  # the same plan again: its change set has run
    assert cli.main(["--execute-plan", "--config", config]) == 1
    assert "can no longer be executed" in capsys.readouterr().err


def test_execute_refuses_when_a_change_set_is_gone_or_another_environment_has_no_plan(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (planned,) = plan(small_assembly(tmp_path / "small.out"), tmp_path, "small", [SMALL_STACK]).stacks
    config = tmp_path / "marketplace-config.json"
    staging = json.loads(config.read_text())
    staging["deploymentSettings"]["environment"] = "staging"
    other = tmp_path / "staging.json"
    other.write_text(json.dumps(staging))
    assert cli.main(["--execute-plan", "--config", str(other)]) == 1
    # each environment has its own plan: staging has none
    error = capsys.readouterr().err
    assert "no plan to run: deploy-plan-staging.json does not exist" in error
    assert "(other environments' plans: deploy-plan-test.json; pick one with --environment)" in error

    cloudformation().delete_change_set(ChangeSetName=planned.change_set)
    assert cli.main(["--execute-plan", "--config", str(config)]) == 1
    assert f"{SMALL_STACK}: the plan's change set is gone" in capsys.readouterr().err
    assert stack_status(SMALL_STACK) == "REVIEW_IN_PROGRESS"
    assert cli.main(["--discard-plan", "--config", str(config)]) == 0  # what is left of it
    assert stack_status(SMALL_STACK) is None


def test_the_review_marks_policy_properties_and_replaced_tables() -> None:
    description = {
        "Changes": [
            {
                "ResourceChange": {
                    "Action": "Modify",
                    "LogicalResourceId": "Api",
                    "ResourceType": "AWS::ApiGateway::RestApi",
                    "Replacement": "False",
                    "Details": [{"Target": {"Attribute": "Properties", "Name": "Policy"}}],
                }
            },
            {
                "ResourceChange": {
                    "Action": "Modify",
                    "LogicalResourceId": "Table",
                    "ResourceType": "AWS::DynamoDB::Table",
                    "Replacement": "True",
                    "Details": [{"Target": {"Attribute": "Properties", "Name": "KeySchema"}}],
                }
            },
            {
                "ResourceChange": {
                    "Action": "Add",
                    "LogicalResourceId": "Q",
                    "ResourceType": "AWS::SQS::Queue",
                }
            },
        ]
    }
    api, table, queue = change_sets.review(
        description, {"Resources": {"Table": {"DeletionPolicy": "Delete"}}}
    )
    assert api.security and not api.data
    assert not table.security
    assert table.data == "replaced by a new, empty one; the old one is DELETED with its data"
    assert "replacement: True" in table.line()
    assert not queue.security and not queue.data and queue.line() == "  + Add     Q  AWS::SQS::Queue"


def test_every_call_the_module_makes_is_in_botocores_models() -> None:
    source = Path(change_sets.__file__).read_text()
    for service, pattern in (
        ("cloudformation", r"cloudformation\.([a-z_]+)\("),
        ("s3", r"\bs3\.([a-z_]+)\("),
        ("sts", r'client\("sts"\)\.([a-z_]+)\('),
    ):
        calls = set(re.findall(pattern, source))
        assert calls, service
        operations = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping
        assert calls <= set(operations), (service, calls - set(operations))
