"""The buyer-facing functions are safe to snapshot (Lambda SnapStart): their initialization opens no
connection and builds no client, and what must differ between execution environments is made per request.

A snapshot is taken once the handler module is imported; every environment resumed from it starts with that
memory, as if it had run the import itself.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from marketplace_saas.deadline import Clients
from marketplace_saas.models import BuyerIdentity
from marketplace_saas.store import PendingRegistrations

ROOT = Path(__file__).resolve().parents[2]
BUYER_FACING = ("handlers.fulfillment", "handlers.registration", "handlers.usage")

_PROBE = """
import json, socket
import boto3
opened = []
for name in ("connect", "connect_ex"):
    original = getattr(socket.socket, name)
    def record(self, address, _original=original):
        opened.append(repr(address))
        return _original(self, address)
    setattr(socket.socket, name, record)
import {module}
print(json.dumps({{"opened": opened, "session": boto3.DEFAULT_SESSION is not None}}))
"""


@pytest.mark.parametrize("module", BUYER_FACING)
def test_importing_a_buyer_facing_handler_opens_no_connection_and_builds_no_client(module: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lambda")])
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _PROBE.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"opened": [], "session": False}


def test_environments_resumed_from_one_snapshot_draw_different_retry_jitter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """botocore's standard retries wait `random.random() * backoff`; each environment must draw its own."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    snapshot = random.getstate()  # the `random` state an imported handler module leaves
    draws = []
    for _ in range(2):  # two environments resumed from the same snapshot, each at its first request
        random.setstate(snapshot)
        Clients().client("dynamodb")
        draws.append(random.random())  # what botocore's jitter draws next
    assert draws[0] != draws[1]


def test_registration_ids_differ_between_environments_resumed_from_one_snapshot() -> None:
    """Pending-registration ids are made with `secrets` (the operating system's generator) when the buyer
    arrives, so environments with identical memory still hand out different ids."""
    snapshot = random.getstate()
    created: list[str] = []

    class Table:
        def put_item(self, **request: Any) -> None:
            created.append(request["Item"]["registrationKey"])

    buyer = BuyerIdentity("123456789012", "PROD_QUICK", "arn:aws:license-manager::1:license:l-1", None)
    for _ in range(2):
        random.setstate(snapshot)
        PendingRegistrations(Table()).create(buyer, None, expires_at=2_000_000_000)
    assert len(set(created)) == 2
