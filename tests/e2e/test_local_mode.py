"""`./deploy-marketplace.sh --local` started as a seller starts it, driven over HTTP, stopped with SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from marketplace_saas.models import license_id
from tests.e2e.conftest import (
    PROJECT_ROOT,
    billed_for,
    mint_token,
    post_json,
    register_buyer,
    register_minted,
    request,
)

pytestmark = pytest.mark.e2e


def test_every_enabled_listing_is_served_with_its_own_config_and_security_headers(
    local_mode: dict[str, Any],
) -> None:
    listings = local_mode["listings"]
    assert sorted(listings) == ["ai-skills", "data-analytics"]
    assert local_mode["environment"] == "production"  # the config's one (default) environment
    status, headers, body = request(listings["ai-skills"]["siteUrl"] + "config.json")
    assert status == 200
    assert json.loads(body)["listing"]["name"] == "Codio AI Skills Training"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    _, _, other = request(listings["data-analytics"]["siteUrl"] + "config.json")
    assert json.loads(other)["listing"]["productCode"] == "CODIO_DATA_ANALYTICS_2024"


def test_a_minted_token_becomes_exactly_one_subscriber(local_mode: dict[str, Any]) -> None:
    listing = local_mode["listings"]["ai-skills"]
    emulator = local_mode["emulator"]["url"]
    # Given a buyer subscribed on the (emulated) AWS Marketplace
    status, minted = post_json(f"{emulator}/_emulator/subscriptions", {"productCode": listing["productCode"]})
    assert status == 201, minted
    # When AWS Marketplace posts the buyer's browser to the fulfillment URL
    form = urlencode({"x-amzn-marketplace-token": minted["token"]}).encode()
    status, headers, _ = request(
        listing["fulfillmentUrl"], "POST", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 303 and headers["location"] == "/"
    assert minted["token"] not in headers["set-cookie"]
    cookie = headers["set-cookie"].split(";", 1)[0]
    # Then the page's own API calls register them
    status, _, state_body = request(listing["apiUrl"] + "registration", headers={"Cookie": cookie})
    assert status == 200 and json.loads(state_body)["state"] == "unregistered"
    details = {
        "companyName": "Acme Learning Ltd",
        "contactPerson": "Jane Doe",
        "contactEmail": "jane.doe@example.com",
        "contactPhone": "+1 555 010 2030",
    }
    assert post_json(listing["apiUrl"] + "register", details, cookie)[0] == 201
    assert post_json(listing["apiUrl"] + "register", details, cookie)[0] == 200
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=local_mode["aws"]["url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    # (other tests share this local mode, so only this buyer's items are looked at)
    items = [
        item
        for item in dynamodb.scan(TableName=listing["tables"]["subscribers"])["Items"]
        if item["customerAWSAccountId"]["S"] == minted["customerAWSAccountId"]
    ]
    assert len(items) == 1
    assert items[0]["customerAWSAccountId"]["S"] == minted["customerAWSAccountId"]
    assert items[0]["licenseArn"]["S"] == minted["licenseArn"]
    assert items[0]["contactEmail"]["S"] == "jane.doe@example.com"
    # and the other listing's table is untouched
    other = local_mode["listings"]["data-analytics"]["tables"]["subscribers"]
    other_items = dynamodb.scan(TableName=other)["Items"]
    assert all(item["customerAWSAccountId"]["S"] != minted["customerAWSAccountId"] for item in other_items)


def test_buyer_routes_refuse_requests_that_did_not_come_through_the_distribution(
    local_mode: dict[str, Any],
) -> None:
    listing = local_mode["listings"]["ai-skills"]
    # API Gateway's own endpoint, as CloudFront reaches it: https://<api>.execute-api.<region>.../live/
    endpoint = listing["siteUrl"] + "live/"
    minted = mint_token(local_mode, listing["productCode"])
    form = urlencode({"x-amzn-marketplace-token": minted["token"]}).encode()
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    guessed = {"x-api-key": "a-guessed-key-0123456789abcdefghij"}
    for headers in (form_type, {**form_type, **guessed}):
        status, answered, body = request(endpoint + "marketplace/fulfillment", "POST", form, headers)
        assert (status, json.loads(body)["error"]) == (403, "INVALID_API_KEY")
        assert "set-cookie" not in answered  # refused before the function ran
    # Through the distribution the same buyer gets in; a viewer's own x-api-key is replaced by the real one
    status, answered, _ = request(listing["fulfillmentUrl"], "POST", form, {**form_type, **guessed})
    assert status == 303
    cookie = answered["set-cookie"].split(";", 1)[0]
    details = {
        "companyName": "Around Ltd",
        "contactPerson": "Kim Lee",
        "contactEmail": "kim@example.com",
        "contactPhone": "+1 555 010 2030",
    }
    status, _, body = request(endpoint + "api/registration", headers={"Cookie": cookie})
    assert (status, json.loads(body)["error"]) == (403, "INVALID_API_KEY")
    direct = request(
        endpoint + "api/register",
        "POST",
        json.dumps(details).encode(),
        {"Content-Type": "application/json", "Cookie": cookie},
    )
    assert direct[0] == 403
    # nothing was registered by the refused request: the first registration through the site creates it
    assert post_json(listing["apiUrl"] + "register", details, cookie)[0] == 201


def test_the_usage_api_is_on_api_gateways_own_endpoint_signed_without_the_distributions_key(
    local_mode: dict[str, Any],
) -> None:
    listing = local_mode["listings"]["ai-skills"]
    minted = register_buyer(local_mode, "ai-skills", company="Direct Ltd")
    url = listing["usageApiUrl"]
    assert url == listing["siteUrl"] + "live/api/usage"
    usage = json.dumps(
        {"customerAWSAccountId": minted["customerAWSAccountId"], "dimension": "learners", "quantity": 2}
    ).encode()
    unsigned = request(url, "POST", usage, {"Content-Type": "application/json"})
    assert (unsigned[0], json.loads(unsigned[2])["error"]) == (403, "MISSING_AUTHENTICATION_TOKEN")
    signed = {"Content-Type": "application/json", "Authorization": "AWS4-HMAC-SHA256 Credential=local/..."}
    status, _, body = request(url, "POST", usage, signed)
    assert status == 201, body
    assert json.loads(body)["hourTotal"] == "2"


def test_a_second_local_mode_is_refused(local_mode: dict[str, Any]) -> None:
    result = subprocess.run(  # noqa: S603
        [str(PROJECT_ROOT / "deploy-marketplace.sh"), "--local", "--port", str(local_mode["_port"] + 10)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode != 0
    assert "already running" in result.stdout + result.stderr


def test_usage_recorded_by_the_product_is_billed_once_by_the_metering_job(local_mode: dict[str, Any]) -> None:
    listing = local_mode["listings"]["data-analytics"]
    minted = mint_token(local_mode, listing["productCode"])
    buyer = {"companyName": "Beta", "contactPerson": "Sam Roe", "contactEmail": "sam@example.com"}
    register_minted(listing, minted["token"], {**buyer, "contactPhone": "+44 20 7946 0958"})

    # The product reports usage of the last hour (the current one is still accumulating), twice
    last_hour = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    usage = {
        "customerAWSAccountId": minted["customerAWSAccountId"],
        "dimension": "lab_hours",
        "time": last_hour,
    }
    url = listing["apiUrl"] + "usage"
    unsigned = request(
        url, "POST", json.dumps({**usage, "quantity": 3}).encode(), {"Content-Type": "application/json"}
    )
    assert unsigned[0] == 403  # IAM-authorized: unsigned requests never reach the function
    signed = {"Content-Type": "application/json", "Authorization": "AWS4-HMAC-SHA256 Credential=local/..."}
    for quantity in (3, 4):
        status, _, body = request(url, "POST", json.dumps({**usage, "quantity": quantity}).encode(), signed)
        assert status == 201, body
    assert json.loads(body)["hourTotal"] == "7"

    # The metering job (every 2 s here) sends it; the emulator billed it once, with the buyer's identity
    metering_url = f"{local_mode['emulator']['url']}/_emulator/metering?productCode={listing['productCode']}"
    deadline = time.monotonic() + 30
    billed: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not billed:
        records = json.loads(request(metering_url)[2])["records"]
        billed = [r for r in records if r["customer"] == minted["customerAWSAccountId"]]
        time.sleep(1)
    assert len(billed) == 1
    assert billed[0]["licenseArn"] == minted["licenseArn"]
    assert (billed[0]["dimension"], billed[0]["quantity"], billed[0]["status"]) == (
        "lab_hours",
        "7",
        "Success",
    )
    hour = datetime.fromisoformat(last_hour).replace(minute=0, second=0, microsecond=0)
    assert billed[0]["hour"] == hour.isoformat()


def test_the_record_usage_command_works_against_local_mode(local_mode: dict[str, Any]) -> None:
    minted = register_buyer(local_mode, "ai-skills")
    last_hour = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    command = [sys.executable, "-m", "operations.record_usage", "--local", "--listing", "ai-skills"]
    command += ["--customer", minted["customerAWSAccountId"], "--dimension", "learners", "--quantity", "5"]
    command += ["--time", last_hour, "--allocation", "2:team=red", "--allocation", "3:team=blue"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hourTotal"] == "5"
    refused = subprocess.run(  # noqa: S603
        [*command[:-4], "--quantity", "-1"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1 and "quantity" in refused.stderr
    (billed,) = billed_for(local_mode, minted["productCode"], minted["customerAWSAccountId"])
    assert billed["quantity"] == "5"
    assert sorted(a["quantity"] for a in billed["allocations"]) == ["2", "3"]


def test_usage_written_straight_into_the_table_in_the_documented_format_is_billed(
    local_mode: dict[str, Any],
) -> None:
    minted = register_buyer(local_mode, "data-analytics", company="Delta Ltd")
    listing = local_mode["listings"]["data-analytics"]
    table = boto3.resource(
        "dynamodb",
        endpoint_url=local_mode["aws"]["url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(listing["tables"]["metering"])
    hour = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
    # The README's item format, written with ADD so that concurrent writers add up
    for quantity in (6, 5):
        table.update_item(
            Key={
                "customerAWSAccountId": minted["customerAWSAccountId"],
                "usageKey": f"{hour}#learners#{license_id(minted['licenseArn'])}",
            },
            UpdateExpression="SET usageHour = :h, dimension = :d, licenseArn = :l, productCode = :p, "
            "pendingPartition = :pending, meteringStatus = :pending, allocated = :no ADD quantity :q",
            ConditionExpression="attribute_not_exists(sealedQuantity)",
            ExpressionAttributeValues={
                ":h": hour,
                ":d": "learners",
                ":l": minted["licenseArn"],
                ":p": listing["productCode"],
                ":pending": "pending",
                ":no": False,
                ":q": quantity,
            },
        )
    (billed,) = billed_for(local_mode, listing["productCode"], minted["customerAWSAccountId"])
    assert (billed["dimension"], billed["quantity"]) == ("learners", "11")
    assert billed["hour"] == hour.replace("Z", "+00:00")


def test_the_cdk_runtime_is_gone_once_local_mode_runs(local_mode: dict[str, Any]) -> None:
    """Synthesis runs in a child that exits: no Node.js process (jsii) stays beside the servers."""
    group = local_mode["_process"].pid  # local mode runs in a session (and process group) of its own
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # the process ended while it was read
        if int(fields[2]) == group:  # the fields after the command name: state, ppid, pgrp, ...
            members.append(command)
    assert any("local.aws_server" in command for command in members), members  # the group was found
    assert not [command for command in members if "jsii" in command or command.startswith("node ")]


def test_bill_now_in_the_console_bills_the_current_hour_once_and_closes_it(
    local_mode: dict[str, Any],
) -> None:
    listing = local_mode["listings"]["data-analytics"]
    minted = mint_token(local_mode, listing["productCode"])
    buyer = {"companyName": "Zeta", "contactPerson": "Kim Poe", "contactEmail": "kim@example.com"}
    register_minted(listing, minted["token"], {**buyer, "contactPhone": "+1 555 010 2030"})
    now = datetime.now(UTC).isoformat()
    usage = {"customerAWSAccountId": minted["customerAWSAccountId"], "dimension": "lab_hours", "time": now}
    signed = {"Content-Type": "application/json", "Authorization": "AWS4-HMAC-SHA256 Credential=local/..."}
    url = listing["apiUrl"] + "usage"
    status, _, body = request(url, "POST", json.dumps({**usage, "quantity": "2.5"}).encode(), signed)
    assert status == 201, body

    dashboard = request(local_mode["consoleUrl"])[2].decode()
    assert "Usage of an hour is billed once the hour is over" in dashboard
    form = urlencode({"listing": "data-analytics"}).encode()
    status, _, page = request(
        local_mode["consoleUrl"] + "bill-now",
        "POST",
        form,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, page
    assert "billed" in page.decode()

    billed = billed_for(local_mode, listing["productCode"], minted["customerAWSAccountId"], timeout=5)
    hour = datetime.fromisoformat(now).replace(minute=0, second=0, microsecond=0).isoformat()
    assert [(r["dimension"], r["quantity"], r["hour"], r["status"]) for r in billed] == [
        ("lab_hours", "2.5", hour, "Success")
    ]
    # The hour is closed: more usage in it is refused, and nothing is billed twice
    status, _, body = request(url, "POST", json.dumps({**usage, "quantity": 1}).encode(), signed)
    assert status == 409 and json.loads(body)["error"] == "hour_closed", body
    time.sleep(3)  # a scheduled run (every 2 s here) sends nothing more
    assert len(billed_for(local_mode, listing["productCode"], minted["customerAWSAccountId"])) == 1
