"""Where the listings run, for every operator command: the deployed account or a running `--local`.

Also what the commands share: the error they raise when they cannot do what was asked, and how they speak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from stacks.config import DeploymentSettings, MarketplaceConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = PROJECT_ROOT / ".local" / "endpoints.json"


LOCAL_NOT_RUNNING = "local mode is not running: start it with ./deploy-marketplace.sh --local"

# One exit code per cause, for every command (the README's table lists them).
EXIT_FAILED = 1  # the command could not do what was asked: the message says why
EXIT_BAD_CONFIG = 2
EXIT_NO_CREDENTIALS = 3
EXIT_USAGE = 64  # a bad command line (sysexits' EX_USAGE), apart from a bad config

NO_CREDENTIALS = (
    "No AWS credentials found. Set AWS_PROFILE (after `aws configure` or `aws sso login`), or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
    "credentials), then run this again.\n"
    "To try every listing on this machine without an AWS account: ./deploy-marketplace.sh --local"
)
# What AWS answers to credentials that exist but do not work (expired, revoked, mistyped).
REJECTED_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "AuthFailure",
        "RequestExpired",
    }
)


def running_local_mode() -> dict[str, Any] | None:
    """The endpoints of the running `--local`, or None when none runs.

    A local mode that was killed (not stopped) leaves its endpoints.json behind: the process it names must
    still be alive.
    """
    try:
        endpoints: dict[str, Any] = json.loads(ENDPOINTS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = endpoints.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
    return endpoints


def environment_for(local: bool, requested: str | None) -> str | None:
    """The environment a command works on: the one asked for; with --local, the one local mode runs (a
    different one asked for is refused, since local mode holds only the environment it started with)."""
    if not local:
        return requested
    endpoints = running_local_mode()
    running = endpoints.get("environment") if endpoints else None
    if requested and running and requested != running:
        raise UsageError(
            f"--environment {requested}: local mode is running environment {running}; stop it and start "
            f"./deploy-marketplace.sh --local --environment {requested}, or leave --environment out"
        )
    return requested or running


class OperationError(Exception):
    """The command cannot do what was asked; the message says why and what to do."""

    exit_code = EXIT_FAILED


class CredentialsError(OperationError):
    """No AWS credentials, or credentials AWS does not accept: the same exit code for every command."""

    exit_code = EXIT_NO_CREDENTIALS


class UsageError(OperationError):
    """A command line that asks for something the command does not do (a bad value of an option)."""

    exit_code = EXIT_USAGE


class CommandLineParser(argparse.ArgumentParser):
    """argparse, exiting with the usage code (64) on a bad command line rather than its own 2, which is
    the code of a bad config."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def check_account(found: str, settings: DeploymentSettings) -> None:
    """Refuse credentials of another account than the environment's (when the config names one), before
    anything is read or changed there."""
    if settings.account is None or found == settings.account:
        return
    raise CredentialsError(
        f"The AWS credentials in the environment are for account {found}, but the config puts environment "
        f"{settings.environment!r} in account {settings.account}. Nothing was changed. Use credentials for "
        f"{settings.account} (e.g. AWS_PROFILE=<its profile>), or pick another environment with "
        "--environment NAME, and run this again."
    )


def caller_account(session: boto3.Session, config: Config | None = None) -> str:
    """The account the session's credentials belong to (STS GetCallerIdentity)."""
    try:
        identity = session.client("sts", config=config).get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        raise CredentialsError(
            f"The AWS credentials in the environment do not work ({error}). Refresh them (e.g. `aws sso "
            "login`) or try ./deploy-marketplace.sh --local"
        ) from None
    return str(identity["Account"])


@dataclass(frozen=True)
class Target:
    """The deployed account (credentials from the environment), or a running `--local`."""

    region: str
    local: dict[str, Any] | None = None

    @classmethod
    def of(cls, config: MarketplaceConfig, local: bool) -> Target:
        region = config.deployment_settings.region
        if not local:
            # Checked before the first call: without it boto3's NoCredentialsError would only say that
            # AWS "could not be reached", and the command would exit as if AWS were down.
            session = boto3.Session(region_name=region)
            if session.get_credentials() is None:
                raise CredentialsError(NO_CREDENTIALS)
            if config.deployment_settings.account is not None:
                check_account(caller_account(session), config.deployment_settings)
            return cls(region)
        endpoints = running_local_mode()
        if endpoints is None:
            raise OperationError(LOCAL_NOT_RUNNING)
        return cls(region, endpoints)

    def _connection(self, region: str | None) -> dict[str, Any]:
        connection: dict[str, Any] = {"region_name": region or self.region}
        if self.local is not None:
            connection["endpoint_url"] = self.local["aws"]["url"]
            connection["aws_access_key_id"] = "local"
            connection["aws_secret_access_key"] = "local"  # noqa: S105 - local mode accepts any
        return connection

    def client(self, service: str, region: str | None = None, config: Config | None = None) -> Any:
        return boto3.client(service, config=config, **self._connection(region))  # type: ignore[call-overload]

    def resource(self, service: str) -> Any:
        return boto3.resource(service, **self._connection(None))  # type: ignore[call-overload]


def aws_error(error: Exception) -> OperationError:
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return CredentialsError(NO_CREDENTIALS)
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in REJECTED_CREDENTIALS:
            return CredentialsError(
                f"The AWS credentials in the environment do not work ({code}). Refresh them (e.g. `aws sso "
                "login`) or try ./deploy-marketplace.sh --local"
            )
        return OperationError(f"AWS refused: {code}: {error.response.get('Error', {}).get('Message', '')}")
    return OperationError(f"AWS could not be reached: {error}")
