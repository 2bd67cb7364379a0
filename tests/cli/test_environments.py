"""`--environment NAME` on the command line: credentials of another account are refused before anything
changes (exit 3, against moto's STS), the environment reaches the CDK app, and bad names are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from operations import cli

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MOTO_ACCOUNT = "123456789012"  # the account moto's STS answers for
OTHER_ACCOUNT = "111111111111"

LISTING = {"name": "Labs", "description": "Hands-on labs", "productCode": "ENV_LABS", "path": "labs"}


def write_config(tmp_path: Path, staging_account: str) -> Path:
    config = {
        "marketplaceListings": {"labs": LISTING},
        "deploymentSettings": {
            "environments": {
                "staging": {"account": staging_account, "retainResources": False},
                "production": {"account": "222222222222", "region": "eu-west-1"},
            }
        },
    }
    file = tmp_path / "marketplace-config.json"
    file.write_text(json.dumps(config))
    return file


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("AWS_") or key == "MARKETPLACE_ENVIRONMENT":
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def nothing_may_be_built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails the test if the command synthesizes or runs the CDK CLI: the check comes before both."""
    calls: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args))
        raise AssertionError("the command went on after the account check")

    monkeypatch.setattr(cli, "synthesize", refuse)
    monkeypatch.setattr(cli, "_cdk", refuse)
    return calls


@pytest.mark.parametrize(
    "argv",
    [[], ["--plan"], ["--status"], ["--destroy-disabled", "--yes"]],
    ids=["deploy", "plan", "status", "destroy-disabled"],
)
def test_credentials_of_another_account_are_refused_with_exit_3_before_anything_changes(
    argv: list[str],
    aws: None,
    nothing_may_be_built: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, staging_account=OTHER_ACCOUNT)
    assert cli.main([*argv, "--config", str(config), "--environment", "staging"]) == 3
    error = capsys.readouterr().err
    refusal = f"are for account {MOTO_ACCOUNT}, but the config puts environment 'staging' in account"
    assert f"{refusal} {OTHER_ACCOUNT}" in error
    assert "Nothing was changed" in error and "Traceback" not in error
    assert nothing_may_be_built == []


def test_the_environments_own_credentials_pass_the_check_and_the_deploy_says_which_account(
    aws: None, nothing_may_be_built: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, staging_account=MOTO_ACCOUNT)
    # Past the account check, the next one: moto's account is not bootstrapped for CDK.
    assert cli.main(["--config", str(config), "--environment", "staging"]) == 4
    error = capsys.readouterr().err
    assert f"The credentials are for AWS account {MOTO_ACCOUNT}" in error
    assert f"Deploying to AWS account {MOTO_ACCOUNT}, region us-east-1 (environment staging)" in error
    assert f"npx cdk bootstrap aws://{MOTO_ACCOUNT}/us-east-1" in error


def test_the_environment_variable_picks_the_environment_as_the_option_does(
    aws: None,
    nothing_may_be_built: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, staging_account=OTHER_ACCOUNT)
    monkeypatch.setenv("MARKETPLACE_ENVIRONMENT", "staging")
    assert cli.main(["--config", str(config)]) == 3
    assert "environment 'staging'" in capsys.readouterr().err


def test_an_unknown_environment_exits_2_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, staging_account=OTHER_ACCOUNT)
    assert cli.main(["--synth", "--config", str(config), "--environment", "qa"]) == 2
    error = capsys.readouterr().err
    assert (
        "--environment qa: no such environment in deploymentSettings.environments (staging, production)"
        in error
    )


def test_a_listing_not_deployed_to_the_environment_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads(write_config(tmp_path, staging_account=OTHER_ACCOUNT).read_text())
    config["marketplaceListings"]["labs"]["environments"] = ["staging"]
    file = tmp_path / "limited.json"
    file.write_text(json.dumps(config))
    assert (
        cli.main(["--synth", "--config", str(file), "--environment", "production", "--listing", "labs"]) == 2
    )
    error = capsys.readouterr().err
    assert (
        "--listing labs: the listing is not deployed to environment 'production' (its environments: staging)"
        in error
    )


def test_the_cdk_app_builds_the_environment_it_is_given(tmp_path: Path) -> None:
    """What `--environment` hands the CDK CLI: app.py reads MARKETPLACE_ENVIRONMENT (bundling skipped)."""
    config = write_config(tmp_path, staging_account=OTHER_ACCOUNT)
    flags = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    outdir = tmp_path / "cdk.out"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))},
        "MARKETPLACE_CONFIG": str(config),
        "MARKETPLACE_ENVIRONMENT": "staging",
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**flags, "aws:cdk:bundling-stacks": []}),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    built = subprocess.run(
        [sys.executable, "app.py"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert list(stacks) == ["codio-marketplace-staging-labs"]
    artifact = stacks["codio-marketplace-staging-labs"]
    assert artifact["environment"] == f"aws://{OTHER_ACCOUNT}/us-east-1"
    assert artifact["properties"]["tags"]["Environment"] == "staging"


def test_a_deploy_outside_the_default_environment_leaves_the_listings_on_aws_marketplace_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both environments deploy the same listings, whose fulfillment URL can name only one of them."""
    monkeypatch.delenv("MARKETPLACE_ENVIRONMENT", raising=False)
    config = str(write_config(tmp_path, staging_account=OTHER_ACCOUNT))
    staging = cli.select(config, [], "staging")
    assert cli.sync_step(staging, cli.parse_args(["--yes"])) == cli.SyncStep(enabled=False)
    assert "--sync-listings --environment staging" in capsys.readouterr().err
    production = cli.select(config, [], None)
    assert cli.sync_step(production, cli.parse_args(["--yes"])) == cli.SyncStep(enabled=True, yes=True)
    assert cli.sync_step(production, cli.parse_args(["--no-sync"])) == cli.SyncStep(enabled=False)
