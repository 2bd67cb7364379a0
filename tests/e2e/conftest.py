"""Local mode, started once for the end-to-end tests exactly as a seller starts it, and a headless browser."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = PROJECT_ROOT / ".local" / "endpoints.json"
ARTIFACTS = PROJECT_ROOT / "tests" / "e2e" / "artifacts"
STARTUP_SECONDS = 120
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start local mode themselves (fixtures `start`, `own_local_mode`) run last, after
    test_shutdown.py has stopped the shared one: local mode writes .local/ of the checkout, so two at once
    would overwrite each other's endpoints.json and state. The rest keep their (name) order."""
    own = {id(item) for item in items if {"start", "own_local_mode"} & set(getattr(item, "fixturenames", ()))}
    items[:] = [item for item in items if id(item) not in own] + [item for item in items if id(item) in own]


@pytest.fixture(scope="session")
def local_mode() -> Iterator[dict[str, Any]]:
    ENDPOINTS.unlink(missing_ok=True)
    port = consecutive_free_ports(3)  # two listings and the console
    process = subprocess.Popen(  # noqa: S603
        [
            str(PROJECT_ROOT / "deploy-marketplace.sh"),
            "--local",
            "--port",
            str(port),
            "--metering-interval",
            "2",
            "--fresh",  # the tests count on what they create alone
        ],
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


def local_client(local_mode: dict[str, Any], service: str) -> Any:
    """A boto3 client of the running local mode's AWS services (they take any credentials)."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=local_mode["aws"]["url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def seller_command(*args: str) -> subprocess.CompletedProcess[str]:
    """./deploy-marketplace.sh with these options, as a seller runs it (no terminal)."""
    return subprocess.run(  # noqa: S603 - the command a seller runs
        [str(PROJECT_ROOT / "deploy-marketplace.sh"), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def mint_token(local_mode: dict[str, Any], product_code: str, **extra: Any) -> dict[str, Any]:
    status, minted = post_json(
        f"{local_mode['emulator']['url']}/_emulator/subscriptions", {"productCode": product_code, **extra}
    )
    assert status == 201, minted
    return minted


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./run-tests.sh, which installs Debian's chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def register_buyer(
    local_mode: dict[str, Any], listing_path: str, company: str = "Gamma Ltd", **mint: Any
) -> dict[str, Any]:
    """A buyer who came from AWS Marketplace and registered on the listing's page API."""
    listing = local_mode["listings"][listing_path]
    minted = mint_token(local_mode, listing["productCode"], **mint)
    register_minted(listing, minted["token"], {"companyName": company})
    return minted


def register_minted(listing: dict[str, Any], token: str, details: dict[str, str]) -> None:
    """The buyer with this registration token comes to the fulfillment URL, then fills in the form."""
    form = f"x-amzn-marketplace-token={token}".encode()
    headers = request(
        listing["fulfillmentUrl"], "POST", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )[1]
    cookie = headers["set-cookie"].split(";", 1)[0]
    form_fields = {
        "companyName": "Gamma Ltd",
        "contactPerson": "Alex Poe",
        "contactEmail": "alex@example.com",
        "contactPhone": "+1 555 010 2030",
        **details,
    }
    status, body = post_json(listing["apiUrl"] + "register", form_fields, cookie)
    assert status == 201, body


def billed_for(
    local_mode: dict[str, Any], product_code: str, customer: str, timeout: float = 30
) -> list[dict[str, Any]]:
    """Wait for the local metering job to send this customer's usage; return what the emulator billed."""
    url = f"{local_mode['emulator']['url']}/_emulator/metering?productCode={product_code}"
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in json.loads(request(url)[2])["records"] if r["customer"] == customer]
        if records or time.monotonic() > deadline:
            return records
        time.sleep(1)
