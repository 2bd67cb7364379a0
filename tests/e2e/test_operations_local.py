"""`--status` and `--export-subscribers` against a running `--local`, with subscribers in every state."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import PROJECT_ROOT, local_client, post_json, register_buyer, seller_command

LISTING = "data-analytics"
STATES = ("pending", "active", "cancel-pending", "cancelled", "failed")
# What AWS Marketplace says after the buyer registered, to put them in each state.
EVENTS = {
    "pending": [],
    "active": [],
    "cancel-pending": ["unsubscribe-pending"],
    # Cancelled: the final hour after the cancellation is over (the subscription and its cancellation are
    # played two hours ago, and the local metering job closes the license on its next run).
    "cancelled": ["unsubscribe-pending"],
    "failed": ["subscribe-fail"],
}


def command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "operations.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def export(fmt: str) -> str:
    result = command("--export-subscribers", "--listing", LISTING, "--local", "--format", fmt)
    assert result.returncode == 0, result.stderr
    return result.stdout


def status_counts() -> dict[str, int]:
    """The subscriber counts `--status --local` prints for the listing."""
    result = seller_command("--status", "--local", "--listing", LISTING)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["Listing", "Stack", "Website"]
    (row,) = [line for line in lines if line.startswith(LISTING)]
    assert "running locally" in row and "n/a locally" in row
    columns = re.split(r"\s{2,}", row)
    assert len(columns) == 8, row  # the last: the last reconciliation
    counts = {}
    for part in columns[3].split(", "):  # the Registered column, e.g. "2 active, 1 failed"
        if part != "none":
            count, state = part.split(" ", 1)
            counts[state] = int(count)
    return counts


def _aws(local_mode: dict[str, Any], service: str) -> Any:
    return local_client(local_mode, service)


def listen_to_seller_bus(local_mode: dict[str, Any]) -> str:
    """What a seller's product does: a rule on the listing's bus that sends every event to its queue."""
    sqs, events = _aws(local_mode, "sqs"), _aws(local_mode, "events")
    url: str = sqs.create_queue(QueueName="seller-product-test")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = f"codio-marketplace-{LISTING}-subscribers"
    events.put_rule(Name="seller-product-test", EventBusName=bus, EventPattern='{"source": [{"prefix": ""}]}')
    events.put_targets(Rule="seller-product-test", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return url


def drain(local_mode: dict[str, Any], url: str) -> list[dict[str, Any]]:
    sqs, received = _aws(local_mode, "sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return received


def test_status_and_export_show_subscribers_in_every_state(
    local_mode: dict[str, Any], tmp_path: Path
) -> None:
    before = status_counts()
    product = local_mode["listings"][LISTING]["productCode"]
    seller_queue = listen_to_seller_bus(local_mode)
    accounts = {}
    for state in STATES:
        mint = {"status": "pending"} if state in ("pending", "failed") else {}
        emulator = local_mode["emulator"]["url"]
        shift = 2 * 3600 if state == "cancelled" else 0
        if shift:
            assert post_json(f"{emulator}/_emulator/clock", {"offsetSeconds": -shift})[0] == 200
        try:
            minted = register_buyer(local_mode, LISTING, company=f"Ops {state} Ltd", **mint)
            accounts[state] = minted["customerAWSAccountId"]
            for kind in EVENTS[state]:
                body = {
                    "type": kind,
                    "productCode": product,
                    "customerAWSAccountId": accounts[state],
                    "endedToDeprovisionedSeconds": 0,  # both at the (shifted) moment of the cancellation
                }
                assert post_json(f"{emulator}/_emulator/events", body)[0] == 200
        finally:
            if shift:
                assert post_json(f"{emulator}/_emulator/clock", {"offsetSeconds": shift})[0] == 200

    # The lifecycle function works through the queue: wait until the export shows every state.
    deadline = time.monotonic() + 30
    while True:
        rows = {row["customerAWSAccountId"]: row for row in json.loads(export("json"))}
        seen = {state: rows.get(account, {}).get("status") for state, account in accounts.items()}
        if seen == {state: state for state in STATES} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert seen == {state: state for state in STATES}
    for state, account in accounts.items():
        row = rows[account]
        assert row["companyName"] == f"Ops {state} Ltd"
        assert row["contactEmail"] == "alex@example.com"
        assert row["productCode"] == product and row["licenseArn"].startswith("arn:aws:license-manager:")
        assert row["registrationDate"]

    # The seller's product heard of every change on the listing's bus.
    heard: dict[str, set[str]] = {}
    for event in drain(local_mode, seller_queue):
        heard.setdefault(event["detail"]["customerAWSAccountId"], set()).add(event["detail-type"])
    for account in accounts.values():
        assert "subscriber.registered" in heard[account]  # who the buyer is, from the form
        heard[account].discard("subscriber.registered")
    assert heard[accounts["pending"]] == set()
    assert heard[accounts["active"]] == {"subscriber.activated"}
    assert heard[accounts["cancel-pending"]] == {"subscriber.activated", "subscriber.cancel-pending"}
    assert "subscriber.deactivated" in heard[accounts["cancelled"]]
    assert heard[accounts["failed"]] == {"subscriber.failed"}

    after = status_counts()
    for state in STATES:
        assert after.get(state, 0) - before.get(state, 0) == 1, (state, before, after)

    table = list(csv.DictReader(io.StringIO(export("csv"))))
    assert {row["customerAWSAccountId"] for row in table} >= set(accounts.values())
    assert list(table[0]) == [
        "customerAWSAccountId", "licenseArn", "customerIdentifier", "productCode", "status", "registered",
        "companyName", "contactPerson", "contactEmail", "contactPhone", "registrationDate", "offerType",
        "freeTrial",
    ]  # fmt: skip
    for account in accounts.values():
        (row,) = [row for row in table if row["customerAWSAccountId"] == account]
        assert (row["registered"], row["freeTrial"]) == ("true", "false")

    target = tmp_path / "subscribers.csv"
    result = command("--export-subscribers", "--listing", LISTING, "--local", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert f"subscribers of {LISTING} to {target}" in result.stderr
    assert len(list(csv.DictReader(target.open()))) == len(table)
    missing = tmp_path / "no-such-folder" / "out.csv"
    result = command("--export-subscribers", "--listing", LISTING, "--local", "--output", str(missing))
    assert result.returncode == 1 and "does not exist" in result.stderr
