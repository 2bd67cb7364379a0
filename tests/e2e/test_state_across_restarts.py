"""Local mode keeps its data across restarts, even when it is killed in the middle of a metering run.

Each test starts its own local mode (so it runs after test_shutdown.py has stopped the shared one: modules
run in name order) and kills it with SIGKILL, every process at once, as a machine that loses power would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import (
    ENDPOINTS,
    PROJECT_ROOT,
    STARTUP_SECONDS,
    consecutive_free_ports,
    mint_token,
    post_json,
    register_minted,
    request,
)

pytestmark = pytest.mark.e2e

LISTING = "data-analytics"
SIGNED = {"Content-Type": "application/json", "Authorization": "AWS4-HMAC-SHA256 Credential=local/..."}


class LocalMode:
    """One local mode process (and its children, in their own process group)."""

    def __init__(self, port: int, log: Path, fresh: bool, metering_interval: float = 3600) -> None:
        ENDPOINTS.unlink(missing_ok=True)  # a killed local mode leaves its file behind
        self.log = log
        command = [sys.executable, "-m", "operations.cli", "--local", "--port", str(port)]
        # By default the metering job runs by bill-now only
        command += ["--metering-interval", f"{metering_interval:g}", *(["--fresh"] if fresh else [])]
        import_path = os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "lambda")])
        environment = {**os.environ, "PYTHONPATH": import_path}
        with log.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command,
                cwd=PROJECT_ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not ENDPOINTS.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"local mode did not start:\n{self.output()[-4000:]}")
            time.sleep(0.5)
        time.sleep(0.5)  # the file is written whole, but let its writer finish
        self.endpoints: dict[str, Any] = json.loads(ENDPOINTS.read_text())
        self.listing: dict[str, Any] = self.endpoints["listings"][LISTING]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to local mode and every process it started, at the same moment."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def billed(self) -> list[dict[str, Any]]:
        emulator = self.endpoints["emulator"]["url"]
        url = f"{emulator}/_emulator/metering?productCode={self.listing['productCode']}"
        return list(json.loads(request(url)[2])["records"])

    def bill_now(self) -> dict[str, Any]:
        status, report = post_json(self.listing["siteUrl"] + "_local/bill-now", {})
        assert status == 200, report
        return report

    def record(self, account: str, quantity: int, hours_ago: int) -> None:
        moment = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()
        usage = {"customerAWSAccountId": account, "dimension": "lab_hours", "quantity": quantity}
        body = json.dumps({**usage, "time": moment}).encode()
        status, _, body = request(self.listing["apiUrl"] + "usage", "POST", body, SIGNED)
        assert status == 201, body

    def items(self, table: str) -> list[dict[str, Any]]:
        dynamodb = boto3.resource(
            "dynamodb",
            endpoint_url=self.endpoints["aws"]["url"],
            region_name=_region(),
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        return list(dynamodb.Table(self.listing["tables"][table]).scan()["Items"])

    def subscribers(self) -> list[dict[str, Any]]:
        return self.items("subscribers")


def _region() -> str:
    config = json.loads((PROJECT_ROOT / "marketplace-config.json").read_text())
    return str(config.get("deploymentSettings", {}).get("region", "us-east-1"))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    port = consecutive_free_ports(3)
    started: list[LocalMode] = []

    def start_local_mode(fresh: bool = False, metering_interval: float = 3600) -> LocalMode:
        mode = LocalMode(port, tmp_path / f"local-{len(started)}.log", fresh, metering_interval)
        started.append(mode)
        return mode

    yield start_local_mode
    for mode in started:
        mode.kill()
    ENDPOINTS.unlink(missing_ok=True)


def _per_hour(records: list[dict[str, Any]], account: str) -> dict[str, list[str]]:
    hours: dict[str, list[str]] = {}
    for record in records:
        if record["customer"] == account:
            hours.setdefault(record["hour"], []).append(record["quantity"])
    return hours


def _hour(hours_ago: int) -> str:
    moment = datetime.now(UTC) - timedelta(hours=hours_ago)
    return moment.replace(minute=0, second=0, microsecond=0).isoformat()


def test_a_sigkill_during_and_after_metering_runs_loses_nothing_and_bills_each_hour_once(start: Any) -> None:
    first = start(fresh=True)
    assert "Starting empty" in first.output()
    minted = mint_token(first.endpoints, first.listing["productCode"])
    account = minted["customerAWSAccountId"]
    buyer = {"companyName": "Delta", "contactPerson": "Ana Roe", "contactEmail": "ana@example.com"}
    register_minted(first.listing, minted["token"], {**buyer, "contactPhone": "+1 555 010 2030"})
    first.record(account, 3, hours_ago=1)
    first.record(account, 2, hours_ago=2)

    # Killed during a run: the records are sealed for sending, and AWS Marketplace is slow to answer
    status, _ = post_json(
        f"{first.endpoints['emulator']['url']}/_emulator/faults",
        {"latencyMs": 5000, "operations": ["BatchMeterUsage"]},
    )
    assert status == 200
    threading.Thread(target=lambda: _ignore_errors(first.bill_now), daemon=True).start()
    time.sleep(2)
    first.kill()

    second = start()
    assert "Kept 1 subscriber(s) (1 registered), 2 usage record(s) and 0 billed record(s)" in second.output()
    # The killed run had sealed both hours for sending (and sent nothing AWS Marketplace answered)
    assert sorted(str(item.get("sealedQuantity")) for item in second.items("metering")) == ["2", "3"]
    (subscriber,) = second.subscribers()
    assert (subscriber["customerAWSAccountId"], subscriber["companyName"]) == (account, "Delta")
    assert second.bill_now()["metered"] == 2  # the run cut short is finished
    assert _per_hour(second.billed(), account) == {_hour(1): ["3"], _hour(2): ["2"]}

    # Killed right after AWS Marketplace billed a record, whether or not the job had stored its answer
    second.record(account, 4, hours_ago=3)
    threading.Thread(target=lambda: _ignore_errors(second.bill_now), daemon=True).start()
    deadline = time.monotonic() + 30
    while len(second.billed()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    second.kill()

    third = start()
    assert "Kept 1 subscriber(s) (1 registered), 3 usage record(s) and 3 billed record(s)" in third.output()
    third.bill_now()  # whatever was left to store is stored; nothing is billed again
    expected = {_hour(1): ["3"], _hour(2): ["2"], _hour(3): ["4"]}
    assert _per_hour(third.billed(), account) == expected
    time.sleep(1)
    assert third.bill_now()["metered"] == 0
    assert _per_hour(third.billed(), account) == expected
    third.kill()

    # --fresh: nothing of it is left
    fresh = start(fresh=True)
    assert "Starting empty" in fresh.output()
    assert fresh.subscribers() == []
    assert fresh.billed() == []


def _ignore_errors(call: Any) -> None:
    with contextlib.suppress(OSError, AssertionError, ValueError):  # local mode was killed meanwhile
        call()
