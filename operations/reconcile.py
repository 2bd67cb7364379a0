"""`--reconcile`: compare each listing's subscribers with AWS Marketplace's record of its agreements now.

It runs the listing's own reconciliation function (the one its daily schedule runs), so the command and the
schedule do exactly the same thing with the same permissions: deployed, with `lambda:InvokeFunction`;
with `--local`, through the running local mode's gateway. One line per difference and what was done.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from operations.target import OperationError, Target, aws_error, say
from stacks.config import MarketplaceConfig
from stacks.naming import RECONCILER_ROLE, ListingNames

# The exit codes (the README's table lists them with every command's).
EXIT_IN_STEP = 0  # every license agrees with AWS's record
EXIT_REPAIRED = 10  # differences were found and all were repaired (with --dry-run: found, none repaired)
EXIT_UNREPAIRED = 11  # some differences could not be repaired: the lines say which, for a person to look at
# The function may take up to its timeout (10 minutes) for a listing with many agreements.
INVOKE_CONFIG = Config(read_timeout=660, connect_timeout=10, retries={"max_attempts": 1})
LOCAL_PATH = "/_local/reconcile"


def reconcile(
    config: MarketplaceConfig, paths: Sequence[str], *, local: bool, full: bool, dry_run: bool
) -> int:
    target = Target.of(config, local)
    code = EXIT_IN_STEP
    for path in paths:
        what = "Checking" if dry_run else "Reconciling"
        scope = "every agreement" if full else "agreements changed since the last run"
        say(f"{what} {path} with AWS Marketplace's agreements ({scope})")
        report = _run(target, config, path, {"full": full, "dryRun": dry_run})
        found = report.get("found", [])
        for difference in found:
            print(f"  {path}: {_line(difference)}")
        summary = (
            f"{path}: {report.get('agreements', 0)} agreements, {report.get('licenses', 0)} licenses, "
            f"{len(found)} differences ({report.get('repaired', 0)} repaired, "
            f"{report.get('unrepairable', 0)} not repairable)"
        )
        print(f"  {summary}" + (" — dry run, nothing changed" if dry_run else ""))
        if report.get("unrepairable"):
            code = EXIT_UNREPAIRED
        elif found and code == EXIT_IN_STEP:
            code = EXIT_REPAIRED
    return code


def _line(difference: dict[str, Any]) -> str:
    text = (
        f"{difference['kind']}: {difference['customerAWSAccountId']} {difference['licenseArn']}: "
        f"here {difference['here']}, AWS {difference['there']} → {difference['action']}"
    )
    return f"{text} ({difference['note']})" if difference.get("note") else text


def _run(target: Target, config: MarketplaceConfig, path: str, options: dict[str, bool]) -> dict[str, Any]:
    if target.local is not None:
        listing = target.local["listings"].get(path)
        if listing is None:
            raise OperationError(f"--listing {path}: not running in local mode (restart --local)")
        return _local(str(listing["siteUrl"]).rstrip("/") + LOCAL_PATH, options)
    function = ListingNames(config.deployment_settings.name_prefix, path).function(RECONCILER_ROLE)
    client = target.client("lambda", config=INVOKE_CONFIG)
    try:
        answer = client.invoke(FunctionName=function, Payload=json.dumps(options).encode())
    except (ClientError, BotoCoreError) as error:
        if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == (
            "ResourceNotFoundException"
        ):
            raise OperationError(
                f"{path}: no function {function}; deploy the listing first (./deploy-marketplace.sh)"
            ) from None
        raise aws_error(error) from None
    payload = json.loads(answer["Payload"].read() or b"{}")
    if answer.get("FunctionError"):
        message = payload.get("errorMessage", "see the function's log") if isinstance(payload, dict) else ""
        raise OperationError(f"{path}: the reconciliation failed: {message}")
    return _checked(path, payload)


def _local(url: str, options: dict[str, bool]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the local gateway's loopback URL
        url, data=json.dumps(options).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=660) as response:  # noqa: S310
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("message", str(error))
        except ValueError:
            message = str(error)
        raise OperationError(f"the reconciliation failed: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        raise OperationError(
            f"local mode's gateway could not be reached ({error}); is --local running?"
        ) from None
    return _checked(url, payload)


def _checked(where: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or "error" in payload:
        problem = payload.get("error") if isinstance(payload, dict) else "an answer that is not an object"
        raise OperationError(f"{where}: the reconciliation refused the request: {problem}")
    return payload
