"""`--publish-service-catalog`: what it refuses before any AWS call, and the order of its steps (credentials,
gated synth, deploy of the portfolio stack alone), with AWS and the CDK CLI replaced by recorders."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from operations import cli, publish_catalog
from operations.target import EXIT_USAGE
from stacks.config import DeploymentSettings

SEED = Path(__file__).resolve().parents[2] / "marketplace-config.json"
ACCOUNT = "123456789012"
TEAM = f"arn:aws:iam::{ACCOUNT}:role/ListingTeam"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, ...]]:
    """Credentials of the environment's account (ACCOUNT when the config names none), as the account check
    leaves them; `cdk` calls recorded (a deploy writes the stack's outputs)."""
    calls: list[tuple[str, ...]] = []
    outputs = tmp_path / "outputs.json"
    monkeypatch.setattr(publish_catalog, "OUTPUTS_FILE", outputs)

    def aws_account(settings: DeploymentSettings, doing: str = "") -> str:
        calls.append(("account", settings.region))
        return settings.account or ACCOUNT

    monkeypatch.setattr(cli, "aws_account", aws_account)
    monkeypatch.setattr(
        publish_catalog,
        "synthesize",
        lambda selection, stack, context: calls.append(("synth", stack, *context)),
    )

    def cdk(*args: str, selection: Any, capture: bool = False) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        outputs.write_text(
            json.dumps(
                {
                    "codio-marketplace-service-catalog": {
                        "ProductId": "prod-abc",
                        "PortfolioId": "port-xyz",
                        "ProductName": "P",
                    }
                }
            )
        )
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(cli, "_cdk", cdk)
    # The command sets the environment for what it runs (CDK_DEFAULT_ACCOUNT, AWS_REGION, the environment's
    # name): here, a copy that goes with the test.
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("CDK_")})
    return calls


def publish(*args: str) -> int:
    return cli.main(["--publish-service-catalog", "--config", str(SEED), *args])


def test_bad_launch_principals_are_refused_before_any_aws_call(
    aws: list[tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = publish("--listing", "ai-skills", "--launch-principal", "ListingTeam", "--product-version", "1 0")
    assert code == EXIT_USAGE
    error = capsys.readouterr().err
    assert "--launch-principal ListingTeam: not the ARN of an IAM role, user or group" in error
    assert "--product-version '1 0'" in error  # every problem at once
    assert aws == []


def test_no_launch_principal_or_no_single_model_listing_is_refused(
    aws: list[tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish("--listing", "ai-skills") == EXIT_USAGE
    assert "--launch-principal: name at least one IAM role" in capsys.readouterr().err
    assert publish("--launch-principal", TEAM) == EXIT_USAGE
    assert "with exactly one --listing PATH" in capsys.readouterr().err
    assert aws == []


def test_a_principal_of_another_account_than_the_credentials_is_refused_before_the_synth(
    aws: list[tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = publish("--listing", "ai-skills", "--launch-principal", "arn:aws:iam::111122223333:role/Team")
    assert code == EXIT_USAGE
    assert (
        "is in account 111122223333, but the portfolio is in account 123456789012" in capsys.readouterr().err
    )
    assert aws == [("account", "us-east-1")]


def test_the_catalog_options_go_only_with_publishing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(["--synth", "--launch-principal", TEAM])
    assert exit_.value.code == EXIT_USAGE
    assert "--launch-principal goes with --publish-service-catalog" in capsys.readouterr().err


def test_a_publish_synthesizes_then_deploys_the_portfolio_stack_and_says_where_to_launch(
    aws: list[tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = publish("--listing", "ai-skills", "--launch-principal", TEAM, "--product-version", "2.0.0")
    assert code == 0
    stack = "codio-marketplace-service-catalog"
    context = (
        "--context", "catalog-listing=ai-skills",
        "--context", f"catalog-principals={TEAM}",
        "--context", "catalog-version=2.0.0",
    )  # fmt: skip
    account, synth, deploy = aws
    assert account == ("account", "us-east-1")
    assert synth == ("synth", stack, *context)
    assert deploy[:2] == ("deploy", stack) and deploy[-len(context) :] == context
    out = capsys.readouterr().out
    assert "version 2.0.0 (product prod-abc" in out
    assert "https://us-east-1.console.aws.amazon.com/servicecatalog/home?region=us-east-1#products" in out
    assert "--product-id prod-abc" in out
    assert "--provisioning-artifact-name 2.0.0" in out


def test_a_publish_goes_to_the_chosen_environments_account_region_and_prefix(
    aws: list[tuple[str, ...]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = json.loads(SEED.read_text())
    seed["deploymentSettings"]["environments"] = {
        "staging": {"account": "111111111111", "region": "eu-west-1", "namePrefix": "mp-staging"},
        "production": {"account": ACCOUNT},
    }
    config = tmp_path / "marketplace-config.json"
    config.write_text(json.dumps(seed))
    staging = "arn:aws:iam::111111111111:role/ListingTeam"
    # The staging account's principals only: ACCOUNT's are refused before any AWS call.
    code = cli.main(
        ["--publish-service-catalog", "--config", str(config), "--environment", "staging",
         "--listing", "ai-skills", "--launch-principal", TEAM]
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert (
        "is in account 123456789012, but the portfolio is in account 111111111111" in capsys.readouterr().err
    )
    assert aws == []
    cli.main(
        ["--publish-service-catalog", "--config", str(config), "--environment", "staging",
         "--listing", "ai-skills", "--launch-principal", staging]
    )  # fmt: skip
    account, synth, *_ = aws
    assert account == ("account", "eu-west-1")
    assert synth[:2] == ("synth", "mp-staging-service-catalog")
