"""`./deploy-marketplace.sh --local --environment staging`: the staging environment's stacks on this machine,
said in the console and endpoints.json, its data kept apart from the default environment's, and the
commands that read local mode working on the environment it runs.

It starts its own local mode (the `own_local_mode` fixture runs it after the shared one has stopped).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ENDPOINTS,
    PROJECT_ROOT,
    STARTUP_SECONDS,
    consecutive_free_ports,
    local_client,
    mint_token,
    register_minted,
    request,
)

pytestmark = pytest.mark.e2e

LISTING = {"description": "Hands-on labs", "dimensions": [{"name": "lab_hours", "description": "Lab hours"}]}
CONFIG = {
    "marketplaceListings": {
        "labs": {**LISTING, "name": "Labs", "productCode": "ENV_LABS", "path": "labs"},
        # In production only: staging's local mode must not run it.
        "live": {
            **LISTING,
            "name": "Live",
            "productCode": "ENV_LIVE",
            "path": "live",
            "environments": ["production"],
        },
    },
    "deploymentSettings": {
        "environments": {"staging": {"account": "111111111111"}, "production": {"account": "222222222222"}}
    },
}


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "operations.cli", "--config", str(config), *args]


def environment() -> dict[str, str]:
    import_path = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "lambda")])
    return {
        **{k: v for k, v in os.environ.items() if k != "MARKETPLACE_ENVIRONMENT"},
        "PYTHONPATH": import_path,
    }


@pytest.fixture
def own_local_mode(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any], Path]]:
    config = tmp_path / "marketplace-config.json"
    config.write_text(json.dumps(CONFIG))
    log = tmp_path / "local.log"
    ENDPOINTS.unlink(missing_ok=True)
    port = consecutive_free_ports(2)
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command(config, "--local", "--environment", "staging", "--fresh", "--port", str(port)),
            cwd=PROJECT_ROOT,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not ENDPOINTS.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"local mode did not start:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
        time.sleep(0.5)  # the file is written whole, but let its writer finish
        yield config, json.loads(ENDPOINTS.read_text()), log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        ENDPOINTS.unlink(missing_ok=True)


def test_local_mode_runs_the_environment_it_is_given_and_says_so(
    own_local_mode: tuple[Path, dict[str, Any], Path],
) -> None:
    config, endpoints, log = own_local_mode
    assert endpoints["environment"] == "staging"
    assert list(endpoints["listings"]) == ["labs"]  # not the production-only listing
    assert "Local mode is running environment staging" in log.read_text()
    # Staging's names: its stack in the local CloudFormation, its tables.
    stacks = local_client(endpoints, "cloudformation").describe_stacks()["Stacks"]
    assert [stack["StackName"] for stack in stacks] == ["codio-marketplace-staging-labs"]
    tags = {tag["Key"]: tag["Value"] for tag in stacks[0]["Tags"]}
    assert tags["Environment"] == "staging"
    assert (
        endpoints["listings"]["labs"]["tables"]["subscribers"] == "codio-marketplace-staging-subscribers-labs"
    )
    # The console's header says which environment runs.
    status, _, page = request(endpoints["consoleUrl"])
    assert status == 200
    assert "environment <strong>staging</strong>" in page.decode()
    # Its data is kept apart from the default environment's.
    assert (PROJECT_ROOT / ".local" / "state-staging" / "dynamodb.jsonl").exists()

    # The commands that read local mode work on the environment it runs, without being told.
    minted = mint_token(endpoints, "ENV_LABS")
    buyer = {"companyName": "Delta", "contactPerson": "Ana Roe", "contactEmail": "ana@example.com"}
    register_minted(endpoints["listings"]["labs"], minted["token"], buyer)
    shown = subprocess.run(  # noqa: S603
        command(config, "--status", "--local"),
        cwd=PROJECT_ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith("labs "))
    assert "1 active" in row, shown.stdout  # the buyer, in staging's table
    assert "Environment staging" in shown.stderr
    # Asking one for another environment is refused: local mode holds only staging.
    refused = subprocess.run(  # noqa: S603
        command(config, "--status", "--local", "--environment", "production"),
        cwd=PROJECT_ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 64, refused.stderr
    assert "local mode is running environment staging" in refused.stderr
