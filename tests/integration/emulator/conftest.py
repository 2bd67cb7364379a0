"""A fresh emulator per test, and boto3 clients that reach it by environment variable alone.

Every API call a test makes is recorded and, when the test ends, checked against botocore's installed
service models (model_check.py): the emulator may not accept what the model refuses, nor answer with
anything the model does not describe.
"""

from __future__ import annotations

import gzip
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.session
import pytest
from botocore.config import Config

from local.marketplace_emulator import EmulatorServer
from tests.integration.emulator import model_check


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
        self, code: str = "PROD", dimensions: tuple[Any, ...] = ("users", "storage"), **extra: Any
    ) -> dict[str, Any]:
        status, body = self.admin(
            "POST", "/_emulator/products", {"productCode": code, "dimensions": list(dimensions), **extra}
        )
        assert status == 201, body
        return body

    def subscribe(self, code: str = "PROD", **extra: Any) -> dict[str, Any]:
        status, body = self.admin("POST", "/_emulator/subscriptions", {"productCode": code, **extra})
        assert status == 201, body
        return body

    def event(self, kind: str, code: str = "PROD", **extra: Any) -> tuple[int, dict[str, Any]]:
        return self.admin("POST", "/_emulator/events", {"productCode": code, "type": kind, **extra})

    def shift_clock(self, seconds: float) -> None:
        assert self.admin("POST", "/_emulator/clock", {"offsetSeconds": seconds})[0] == 200

    def set_clock(self, moment: datetime) -> None:
        status, body = self.admin("POST", "/_emulator/clock", {"now": moment.isoformat()})
        assert status == 200, body

    def billed(self, code: str = "PROD") -> list[dict[str, Any]]:
        return self.admin("GET", f"/_emulator/metering?productCode={code}")[1]["records"]

    def subscriptions(self, code: str = "PROD") -> list[dict[str, Any]]:
        return self.admin("GET", f"/_emulator/subscriptions?productCode={code}")[1]["subscriptions"]

    def events(self) -> list[dict[str, Any]]:
        """The log of GET /_emulator/events: one entry per lifecycle event, with its notifications."""
        status, body = self.admin("GET", "/_emulator/events")
        assert status == 200, body
        events: list[dict[str, Any]] = body["events"]
        return events

    def notifications(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Every notification sent so far (or scheduled), in the order the events were made."""
        return [
            notification
            for event in self.events()
            for notification in event["notifications"]
            if channel is None or notification["channel"] == channel
        ]


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with EmulatorServer(record_calls=True) as server:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_METERING", server.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE", server.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT", server.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # tests see each error; the retry test opts back in
        yield Emulator(server)
        problems = model_check.all_problems(server.calls)
        assert not problems, "the emulator's traffic does not fit botocore's model:\n" + "\n".join(problems)


@pytest.fixture
def metering(emulator: Emulator) -> Any:
    return boto3.client("meteringmarketplace")


@pytest.fixture
def entitlement(emulator: Emulator) -> Any:
    return boto3.client("marketplace-entitlement")


CBOR_SERVICES = {"marketplace-entitlement": "2017-01-11", "marketplace-agreement": "2020-03-01"}


@pytest.fixture(scope="session")
def cbor_only_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed entitlement and agreement models with `json` removed from their protocols.

    botocore picks the first protocol of its own priority list that a model offers, and json comes before
    smithy-rpc-v2-cbor there, so boto3 sends GetEntitlements as AWS JSON 1.1 (and the Agreement API as AWS
    JSON 1.0) although the models list rpc-v2-cbor first (other SDKs pick it). With these models botocore's
    own CBOR serializer and parser talk to the emulator.
    """
    root = tmp_path_factory.mktemp("botocore-data")
    for service, version in CBOR_SERVICES.items():
        source = Path(botocore.__file__).parent / "data" / service / version
        target = root / service / version
        target.mkdir(parents=True)
        model = json.loads(gzip.decompress((source / "service-2.json.gz").read_bytes()))
        assert "smithy-rpc-v2-cbor" in model["metadata"]["protocols"]
        model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
        (target / "service-2.json").write_text(json.dumps(model))
        for item in source.iterdir():
            if not item.name.startswith("service-2."):
                shutil.copy(item, target / item.name)
    return root


def cbor_client(cbor_only_models: Path, service: str, config: Config | None = None) -> Any:
    """A boto3 client of `service` that speaks smithy-rpc-v2-cbor."""
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(cbor_only_models))
    client = boto3.Session(botocore_session=session).client(service, config=config)
    assert client.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    return client


@pytest.fixture
def cbor_entitlement(emulator: Emulator, cbor_only_models: Path) -> Any:
    """A boto3 entitlement client that speaks smithy-rpc-v2-cbor."""
    return cbor_client(cbor_only_models, "marketplace-entitlement")


@pytest.fixture
def agreement(emulator: Emulator) -> Any:
    """A boto3 Agreement API client as boto3 makes it: AWS JSON 1.0."""
    client = boto3.client("marketplace-agreement")
    assert client.meta.service_model.resolved_protocol == "json"
    return client


@pytest.fixture
def cbor_agreement(emulator: Emulator, cbor_only_models: Path) -> Any:
    """A boto3 Agreement API client that speaks smithy-rpc-v2-cbor."""
    return cbor_client(cbor_only_models, "marketplace-agreement")
