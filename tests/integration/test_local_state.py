"""What local mode keeps across restarts: DynamoDB's writes (local/aws_server.py) and the emulator's state
(local/marketplace_emulator/persistence.py), each read back after the process that wrote it was killed."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.marketplace_emulator.persistence import StateFile
from local.marketplace_emulator.state import Marketplace, Subscription
from local.run import free_port

ROOT = Path(__file__).resolve().parents[2]


class AwsServer:
    def __init__(self, journal: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")])}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "local.aws_server", "--port", str(self.port), "--journal", str(journal)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):  # noqa: S310
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                assert self.process.poll() is None, self.process.stdout.read() if self.process.stdout else ""
                assert time.monotonic() < deadline, "the local AWS server did not start"
                time.sleep(0.2)

    def dynamodb(self) -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.url,
            region_name="eu-west-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture
def servers() -> Iterator[list[AwsServer]]:
    started: list[AwsServer] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.kill()


def _table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="usage",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_every_answered_dynamodb_write_survives_a_sigkill_and_is_applied_once(
    tmp_path: Path, servers: list[AwsServer]
) -> None:
    journal = tmp_path / "dynamodb.jsonl"
    servers.append(first := AwsServer(journal))
    dynamodb = first.dynamodb()
    _table(dynamodb)
    dynamodb.put_item(TableName="usage", Item={"k": {"S": "a"}, "n": {"N": "1"}})
    for _ in range(3):  # not idempotent: replayed twice, the total would be wrong
        dynamodb.update_item(
            TableName="usage",
            Key={"k": {"S": "a"}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
    with pytest.raises(ClientError):  # refused: changes nothing, so it is not kept
        dynamodb.put_item(
            TableName="usage", Item={"k": {"S": "a"}}, ConditionExpression="attribute_not_exists(k)"
        )
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "usage", "Item": {"k": {"S": "b"}}}}])
    dynamodb.get_item(TableName="usage", Key={"k": {"S": "a"}})  # reads are not kept
    first.kill()
    kept = journal.read_text()
    assert len(kept.splitlines()) == 6  # the table, the put, three updates, the transaction
    assert "Signature=-" in kept and not re.search(r"Signature=[0-9a-f]{64}", kept)  # never a signature
    with journal.open("a") as file:
        file.write('{"target": "DynamoDB_20120810.PutItem", "pa')  # a write cut off by the kill

    servers.append(second := AwsServer(journal))
    items = second.dynamodb().scan(TableName="usage")["Items"]
    assert sorted(items, key=lambda item: item["k"]["S"]) == [
        {"k": {"S": "a"}, "n": {"N": "4"}},
        {"k": {"S": "b"}},
    ]
    second.dynamodb().delete_item(TableName="usage", Key={"k": {"S": "b"}})
    second.kill()

    servers.append(third := AwsServer(journal))
    assert [item["k"]["S"] for item in third.dynamodb().scan(TableName="usage")["Items"]] == ["a"]


def _marketplace_with_a_billed_buyer() -> tuple[Marketplace, dict[str, Any]]:
    marketplace = Marketplace()
    marketplace.put_product({"productCode": "prod-a", "dimensions": ["users"]})
    subscription, token = marketplace.subscribe({"productCode": "prod-a"})
    hour = int(datetime.now(UTC).timestamp() // 3600 * 3600) - 3600
    marketplace.batch_meter_usage(
        {
            "ProductCode": "prod-a",
            "UsageRecords": [
                {
                    "Timestamp": datetime.fromtimestamp(hour + 60, UTC),
                    "CustomerAWSAccountId": subscription.customer_aws_account_id,
                    "Dimension": "users",
                    "QuantityAsDecimal": "2.5",
                }
            ],
        }
    )
    return marketplace, {"token": token, "license": subscription.license_arn}


def test_the_emulators_buyers_and_billing_are_read_back_but_no_registration_token(tmp_path: Path) -> None:
    marketplace, made = _marketplace_with_a_billed_buyer()
    marketplace.clock_offset = 120.0
    path = tmp_path / "emulator.pickle"
    StateFile(marketplace, path).save()
    assert made["token"].encode() not in path.read_bytes()  # a secret: never written down

    restored = Marketplace()
    assert StateFile(restored, path).load()
    assert [item.view() for item in restored.subscriptions] == [
        item.view() for item in marketplace.subscriptions
    ]
    assert restored.billed_records("prod-a") == marketplace.billed_records("prod-a")
    assert restored.billed_records("prod-a")[0]["quantity"] == "2.5"
    assert restored.clock_offset == 120.0
    assert restored.tokens == {}
    assert not StateFile(Marketplace(), tmp_path / "none.pickle").load()  # no file: nothing to read


def test_the_state_file_is_replaced_whole_and_never_left_half_written(tmp_path: Path) -> None:
    marketplace, _ = _marketplace_with_a_billed_buyer()
    path = tmp_path / "emulator.pickle"
    state = StateFile(marketplace, path)
    state.save()
    before = path.read_bytes()
    marketplace.put_product({"productCode": "prod-b", "dimensions": ["seats"]})
    state.save()
    assert path.read_bytes() != before
    assert sorted(file.name for file in tmp_path.iterdir()) == ["emulator.pickle"]  # no temporary left


def test_a_file_written_before_a_field_was_added_reads_with_the_fields_default(tmp_path: Path) -> None:
    marketplace, _ = _marketplace_with_a_billed_buyer()
    path = tmp_path / "emulator.pickle"
    StateFile(marketplace, path).save()
    # As if the file predated a field: the saved licenses lack it.
    field = next(item for item in dataclasses.fields(Subscription) if item.name == "final_hour_until")
    for subscription in marketplace.subscriptions:
        del subscription.__dict__[field.name]
    StateFile(marketplace, path).save()
    restored = Marketplace()
    StateFile(restored, path).load()
    assert restored.subscriptions[0].final_hour_until is None


def test_a_state_file_that_names_other_code_is_refused(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "emulator.pickle"
    path.write_bytes(pickle.dumps({"format": 1, "state": {"products": os.getcwd}}))
    with pytest.raises(pickle.UnpicklingError):
        StateFile(Marketplace(), path).load()
    path.write_text(json.dumps({"not": "pickle"}))
    with pytest.raises(pickle.UnpicklingError):
        StateFile(Marketplace(), path).load()
