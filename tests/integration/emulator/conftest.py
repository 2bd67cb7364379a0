"""A fresh emulator per test, and boto3 clients that reach it by environment variable alone."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from local.marketplace_emulator import EmulatorServer


@dataclass
class Emulator:
    server: EmulatorServer

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def product(
        self, code: str = "PROD", dimensions: tuple[str, ...] = ("users", "storage"), **extra: Any
    ) -> None:
        status, body = self.admin(
            "POST", "/_emulator/products", {"productCode": code, "dimensions": list(dimensions), **extra}
        )
        assert status == 201, body

    def subscribe(self, code: str = "PROD", **extra: Any) -> dict[str, Any]:
        status, body = self.admin("POST", "/_emulator/subscriptions", {"productCode": code, **extra})
        assert status == 201, body
        return body

    def shift_clock(self, seconds: float) -> None:
        assert self.admin("POST", "/_emulator/clock", {"offsetSeconds": seconds})[0] == 200

    def billed(self, code: str = "PROD") -> list[dict[str, Any]]:
        return self.admin("GET", f"/_emulator/metering?productCode={code}")[1]["records"]


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with EmulatorServer() as server:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_METERING", server.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE", server.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # tests see each error; the retry test opts back in
        yield Emulator(server)


@pytest.fixture
def metering(emulator: Emulator) -> Any:
    return boto3.client("meteringmarketplace")


@pytest.fixture
def entitlement(emulator: Emulator) -> Any:
    return boto3.client("marketplace-entitlement")
