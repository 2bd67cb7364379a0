"""Where the listings run, for every operator command: the deployed account or a running `--local`.

Also what the commands share: the error they raise when they cannot do what was asked, and how they speak.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from stacks.config import MarketplaceConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = PROJECT_ROOT / ".local" / "endpoints.json"


LOCAL_NOT_RUNNING = "local mode is not running: start it with ./deploy-marketplace.sh --local"


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


class OperationError(Exception):
    """The command cannot do what was asked; the message says why and what to do."""


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Target:
    """The deployed account (credentials from the environment), or a running `--local`."""

    region: str
    local: dict[str, Any] | None = None

    @classmethod
    def of(cls, config: MarketplaceConfig, local: bool) -> Target:
        region = config.deployment_settings.region
        if not local:
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

    def client(self, service: str, region: str | None = None) -> Any:
        return boto3.client(service, **self._connection(region))  # type: ignore[call-overload]

    def resource(self, service: str) -> Any:
        return boto3.resource(service, **self._connection(None))  # type: ignore[call-overload]


def aws_error(error: Exception) -> OperationError:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return OperationError(f"AWS refused: {code}: {error.response.get('Error', {}).get('Message', '')}")
    return OperationError(f"AWS could not be reached: {error}")
