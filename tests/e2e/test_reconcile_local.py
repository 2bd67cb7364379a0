"""`--reconcile --local`: events the emulator was told to lose are found and repaired, as a seller sees it."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from tests.e2e.conftest import local_client, mint_token, post_json, register_minted, seller_command

LISTING = "ai-skills"


def reconcile(*options: str) -> subprocess.CompletedProcess[str]:
    return seller_command("--reconcile", "--local", "--listing", LISTING, *options)


def subscriber(local_mode: dict[str, Any], account: str) -> dict[str, Any] | None:
    dynamodb = local_client(local_mode, "dynamodb")
    table = local_mode["listings"][LISTING]["tables"]["subscribers"]
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="customerAWSAccountId = :a",
        ExpressionAttributeValues={":a": {"S": account}},
        ConsistentRead=True,
    )["Items"]
    return items[0] if items else None


def status_of(local_mode: dict[str, Any], account: str) -> str | None:
    item = subscriber(local_mode, account)
    return None if item is None else item.get("status", {}).get("S")


def test_a_lost_cancellation_and_a_lost_purchase_are_found_and_repaired(local_mode: dict[str, Any]) -> None:
    listing = local_mode["listings"][LISTING]
    emulator = local_mode["emulator"]["url"]
    minted = mint_token(local_mode, listing["productCode"])
    register_minted(listing, minted["token"], {"companyName": "Lost Events Ltd"})
    account = minted["customerAWSAccountId"]
    deadline = time.monotonic() + 30
    while status_of(local_mode, account) != "active" and time.monotonic() < deadline:
        time.sleep(0.5)  # the purchase's events reach the lifecycle through the listing's queue
    assert status_of(local_mode, account) == "active"
    # The buyer cancels, and AWS's events never arrive.
    status, body = post_json(
        f"{emulator}/_emulator/events",
        {
            "type": "unsubscribe-pending",
            "productCode": listing["productCode"],
            "customerAWSAccountId": account,
            "endedToDeprovisionedSeconds": 0,
            "deliver": False,
        },
    )
    assert status == 200 and body["withheld"], body
    # Another buyer's purchase, whose events never arrive either.
    lost = mint_token(local_mode, listing["productCode"], deliver=False)["customerAWSAccountId"]
    time.sleep(2)
    assert status_of(local_mode, account) == "active" and subscriber(local_mode, lost) is None

    checked = reconcile("--dry-run")
    mine = [line for line in checked.stdout.splitlines() if account in line or lost in line]
    assert checked.returncode in (10, 11), checked.stdout + checked.stderr
    assert len(mine) == 2 and all("would repair" in line for line in mine), checked.stdout
    assert status_of(local_mode, account) == "active" and subscriber(local_mode, lost) is None

    repaired = reconcile()
    lines = repaired.stdout.splitlines()
    assert repaired.returncode in (10, 11), repaired.stdout + repaired.stderr
    (cancelled,) = [line for line in lines if account in line]
    assert "ended-there" in cancelled and "repaired (now cancel-pending)" in cancelled, cancelled
    (bought,) = [line for line in lines if lost in line]
    assert "missing-subscriber" in bought and "repaired (now active)" in bought, bought
    assert status_of(local_mode, account) == "cancel-pending"
    found = subscriber(local_mode, lost)
    assert found is not None and found["status"]["S"] == "active" and "registrationDate" not in found

    again = reconcile()
    assert account not in again.stdout and lost not in again.stdout, again.stdout
    assert again.returncode in (0, 11), again.stdout + again.stderr  # 11 only for another test's buyers
    # --status shows the last run.
    shown = seller_command("--status", "--local", "--listing", LISTING)
    (row,) = [line for line in shown.stdout.splitlines() if line.startswith(LISTING)]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: \d+ differences", row), row
