"""One exit code per cause, for every command: 1 could not do it, 2 bad config, 3 no working AWS credentials,
64 bad command line (argparse's own 2 would read as a bad config)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from operations import cli, record_usage
from operations.target import CredentialsError, OperationError, aws_error

PROJECT_ROOT = Path(__file__).resolve().parents[2]
USAGE = ["--listing", "ai-skills", "--customer", "123456789012", "--dimension", "learners", "--quantity", "1"]


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere boto3 looks: environment, ~/.aws, the instance metadata service."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    "argv",
    [
        [],  # deploy
        ["--plan"],
        ["--status"],
        ["--status", "--listing", "ai-skills"],
        ["--export-subscribers", "--listing", "ai-skills"],
        ["--destroy-disabled", "--yes"],
    ],
    ids=["deploy", "plan", "status", "status-one-listing", "export-subscribers", "destroy-disabled"],
)
def test_every_command_without_credentials_exits_3_and_says_what_to_set(
    argv: list[str], no_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 3
    error = capsys.readouterr().err
    assert "No AWS credentials found" in error
    assert "AWS_PROFILE" in error and "./deploy-marketplace.sh --local" in error
    assert "could not be reached" not in error and "Traceback" not in error


def test_record_usage_without_credentials_exits_3(
    no_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert record_usage.main(USAGE) == 3
    error = capsys.readouterr().err
    assert "No AWS credentials found" in error and "Traceback" not in error


@pytest.mark.parametrize("code", ["ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException"])
def test_credentials_aws_refuses_are_a_credentials_error(code: str) -> None:
    refused = aws_error(ClientError({"Error": {"Code": code, "Message": "no"}}, "DescribeStacks"))
    assert isinstance(refused, CredentialsError) and refused.exit_code == 3
    assert "do not work" in str(refused)
    assert isinstance(aws_error(NoCredentialsError()), CredentialsError)


def test_other_aws_failures_stay_exit_1() -> None:
    throttled = aws_error(ClientError({"Error": {"Code": "Throttling", "Message": "slow"}}, "Scan"))
    unreachable = aws_error(EndpointConnectionError(endpoint_url="https://example.invalid"))
    for failure in (throttled, unreachable):
        assert type(failure) is OperationError and failure.exit_code == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--no-such-option"],
        ["--synth", "--local"],
        ["--synth", "--plan"],
        ["--local", "--port", "eighty"],
        ["--local", "--metering-interval", "soon"],
        ["--plan", "--no-sync"],
        ["--local", "--no-sync"],
        ["--status", "--write"],
        ["--plan", "--require-approval"],
        ["--local", "--require-approval"],
        ["--execute-plan", "--discard-plan"],
        ["--execute-plan", "--listing", "ai-skills"],
    ],
)
def test_a_bad_command_line_exits_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 64
    assert "deploy-marketplace.sh: error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--export-subscribers"],
        ["--export-subscribers", "--listing", "ai-skills", "--format", "xml"],
        ["--local", "--metering-interval", "0"],
    ],
)
def test_option_values_the_command_refuses_exit_64(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 64
    assert "error: --" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--fresh"], ["--status", "--local", "--fresh"]])
def test_fresh_without_local_mode_exits_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 64
    assert "--fresh goes with --local" in capsys.readouterr().err


def test_record_usage_with_a_bad_command_line_exits_64(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        record_usage.main([*USAGE, "--quantity", "lots"])
    assert exit_.value.code == 64
    assert "expected a decimal number" in capsys.readouterr().err


def test_an_unknown_listing_exits_2_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    usage = [*USAGE]
    usage[1] = "no-such-listing"
    assert record_usage.main(usage) == 2
    assert cli.main(["--status", "--listing", "no-such-listing"]) == 2
    error = capsys.readouterr().err
    assert error.count("--listing no-such-listing: no") == 2


def test_the_process_itself_exits_64_on_a_bad_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "operations.cli", "--sycn"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 64, result.stderr
    assert "unrecognized arguments: --sycn" in result.stderr


def test_a_truncated_config_exits_2_naming_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "marketplace-config.json"
    config.write_text('{\n  "marketplaceListings": {\n    "ai-skills": {"name": "AI"')
    assert cli.main(["--synth", "--config", str(config)]) == 2
    assert record_usage.main([*USAGE, "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.count("line 3, column 31: not valid JSON") == 2


def test_record_usage_refuses_bad_values_with_exit_1_in_the_projects_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = [
        "--listing", "ai-skills", "--customer", "123", "--dimension", "learners", "--quantity", "1.12345678",
        "--license-arn", "not-an-arn",
    ]  # fmt: skip
    assert record_usage.main(bad) == 1
    error = capsys.readouterr().err
    assert (
        "customerAWSAccountId: '123' does not have the expected form (an AWS account id: 12 digits)" in error
    )
    assert "licenseArn: 'not-an-arn' does not have the expected form (a license ARN" in error
    assert "quantity: 1.12345678 has more than 6 decimal places" in error
    for validator_words in ("should", "Input", "pattern", "Decimal("):
        assert validator_words not in error
