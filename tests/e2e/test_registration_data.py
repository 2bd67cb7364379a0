"""The seed's "View Registration Data" command, against local mode: it lists subscribers and nothing else."""

from __future__ import annotations

import time
from typing import Any

import boto3

from tests.e2e.conftest import mint_token, post_json, register_minted

LISTING = "ai-skills"
EMAIL = "registration-data@example.com"


def seed_scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """`aws dynamodb scan --table-name <table> --query
    'Items[*].{Email:contactEmail.S,Name:contactPerson.S,Date:registrationDate.S}'`, page by page."""
    rows, request_ = [], {"TableName": table}
    while True:
        page = dynamodb.scan(**request_)
        rows += [
            {
                "Email": item.get("contactEmail", {}).get("S"),
                "Name": item.get("contactPerson", {}).get("S"),
                "Date": item.get("registrationDate", {}).get("S"),
            }
            for item in page["Items"]
        ]
        if "LastEvaluatedKey" not in page:
            return rows
        request_["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_the_seed_scan_shows_a_buyer_whose_agreement_event_came_first_once(
    local_mode: dict[str, Any],
) -> None:
    listing = local_mode["listings"][LISTING]
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=local_mode["aws"]["url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # local mode takes any credentials
    )
    table = listing["tables"]["subscribers"]
    minted = mint_token(local_mode, listing["productCode"], status="pending")
    account = minted["customerAWSAccountId"]
    # AWS Marketplace announces the purchase (Purchase Agreement Created, then License Updated) before the
    # buyer has come to the page: the agreement event finds nobody to belong to, and is held.
    body = {
        "type": "subscribe-success",
        "productCode": listing["productCode"],
        "customerAWSAccountId": account,
    }
    assert post_json(f"{local_mode['emulator']['url']}/_emulator/events", body)[0] == 200
    deadline = time.monotonic() + 30
    while True:
        announced = dynamodb.query(
            TableName=table,
            KeyConditionExpression="customerAWSAccountId = :a",
            ExpressionAttributeValues={":a": {"S": account}},
            ConsistentRead=True,
        )["Items"]
        if announced and announced[0].get("status", {}).get("S") == "active":
            break
        assert time.monotonic() < deadline, f"the lifecycle never activated {account}: {announced}"
        time.sleep(0.5)

    details = {"companyName": "Registration Data Ltd", "contactPerson": "Robin Roe", "contactEmail": EMAIL}
    register_minted(listing, minted["token"], details)

    rows = seed_scan(dynamodb, table)
    ours = [row for row in rows if row["Email"] == EMAIL]
    assert len(ours) == 1 and ours[0]["Name"] == "Robin Roe" and ours[0]["Date"], rows
    # Every other row is a subscriber too: registered, or announced by AWS Marketplace (it has a status).
    items = dynamodb.scan(TableName=table)["Items"]
    assert len(items) == len(rows)
    ghosts = [item for item in items if "contactEmail" not in item and "status" not in item]
    assert ghosts == []
    assert not [i for i in items if i["customerAWSAccountId"]["S"].startswith(("agreement#", "customer-id"))]
