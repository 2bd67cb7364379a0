"""`./deploy-marketplace.sh --local` started as a seller starts it, driven over HTTP, stopped with SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = PROJECT_ROOT / ".local" / "endpoints.json"
STARTUP_SECONDS = 120

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local-mode")]


def consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count >= 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                candidate = socket.socket()
                sockets.append(candidate)
                candidate.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for candidate in sockets:
                candidate.close()
    raise RuntimeError("no consecutive free ports")


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.request(method, parts.path or "/", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def post_json(url: str, payload: dict[str, Any], cookie: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = cookie
    status, _, body = request(url, "POST", json.dumps(payload).encode(), headers)
    return status, json.loads(body)


@pytest.fixture(scope="module")
def local_mode() -> Iterator[dict[str, Any]]:
    ENDPOINTS.unlink(missing_ok=True)
    port = consecutive_free_ports(2)
    process = subprocess.Popen(  # noqa: S603
        [str(PROJECT_ROOT / "deploy-marketplace.sh"), "--local", "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ENDPOINTS.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.stdout.read().decode() if process.stdout else ""
            process.kill()
            pytest.fail(f"local mode did not start:\n{output[-4000:]}")
        time.sleep(0.5)
    endpoints = json.loads(ENDPOINTS.read_text())
    endpoints["_process"] = process
    endpoints["_port"] = port
    try:
        yield endpoints
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_every_enabled_listing_is_served_with_its_own_config_and_security_headers(
    local_mode: dict[str, Any],
) -> None:
    listings = local_mode["listings"]
    assert sorted(listings) == ["ai-skills", "data-analytics"]
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
    items = dynamodb.scan(TableName=listing["tables"]["subscribers"])["Items"]
    assert len(items) == 1
    assert items[0]["customerAWSAccountId"]["S"] == minted["customerAWSAccountId"]
    assert items[0]["licenseArn"]["S"] == minted["licenseArn"]
    assert items[0]["contactEmail"]["S"] == "jane.doe@example.com"
    # and the other listing's table is untouched
    other = local_mode["listings"]["data-analytics"]["tables"]["subscribers"]
    assert dynamodb.scan(TableName=other)["Items"] == []


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


def test_sigterm_stops_everything_it_started(local_mode: dict[str, Any]) -> None:
    process: subprocess.Popen[bytes] = local_mode["_process"]
    ports = [int(urlsplit(item["siteUrl"]).port or 0) for item in local_mode["listings"].values()]
    ports += [int(urlsplit(local_mode[name]["url"]).port or 0) for name in ("emulator", "aws")]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
    pgrep = shutil.which("pgrep") or "/usr/bin/pgrep"
    leftover = subprocess.run(  # noqa: S603
        [pgrep, "-g", str(process.pid)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", f"processes left behind: {leftover.stdout}"
    assert not ENDPOINTS.exists()
