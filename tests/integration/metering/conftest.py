"""The metering job against the emulator (over HTTP) and moto's in-process DynamoDB."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.marketplace_emulator import EmulatorServer
from local.stack_template import ListingTemplate
from marketplace_saas.metering import MeteringJob, RunReport
from marketplace_saas.models import license_id
from marketplace_saas.settings import ListingSettings, listing_settings
from marketplace_saas.usage import UsageRecord, UsageRecorder
from tests.integration.conftest import PRODUCT
from tests.integration.emulator.conftest import Emulator
from tests.support import moto_dynamodb

DIMENSIONS = ("users", "storage", "seats", "jobs", "gpu_hours")


class Crash(Exception):
    """Stands for the function being killed at this point."""


@dataclass
class CrashingProxy:
    """Forwards calls to `target`; the `crash_at`-th call of a watched method dies before or after it runs.

    A table's `meta.client` (what the job's workers call: transactions, batch reads) is watched too, with
    the same count. Calls from several threads are counted one by one."""

    target: Any
    methods: frozenset[str]
    crash_at: int | None = None
    after: bool = False
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if name == "meta" and hasattr(attribute, "client"):
            return _Meta(attribute, self)
        return self.watch(name, attribute)

    def watch(self, name: str, attribute: Any) -> Any:
        if name not in self.methods:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls += 1
                number = self.calls
            if number == self.crash_at and not self.after:
                raise Crash(f"before {name} #{number}")
            result = attribute(*args, **kwargs)
            if number == self.crash_at and self.after:
                raise Crash(f"after {name} #{number}")
            return result

        return call


class _Meta:
    """A table's `meta`, whose `client` counts (and crashes) with the table's proxy."""

    def __init__(self, meta: Any, proxy: CrashingProxy) -> None:
        self._meta = meta
        self.client = _Watched(meta.client, proxy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meta, name)


class _Watched:
    def __init__(self, target: Any, proxy: CrashingProxy) -> None:
        self._target, self._proxy = target, proxy

    def __getattr__(self, name: str) -> Any:
        return self._proxy.watch(name, getattr(self._target, name))


@dataclass
class Harness:
    emulator: Emulator
    template: ListingTemplate
    settings: ListingSettings
    now: list[float] = field(default_factory=lambda: [datetime.now(UTC).timestamp()])
    sleeps: list[float] = field(default_factory=list)

    def advance(self, seconds: float) -> None:
        """Time passes for the job and for AWS Marketplace alike."""
        self.now[0] += seconds
        self.emulator.shift_clock(seconds)

    @property
    def usage_table(self) -> Any:
        return boto3.resource("dynamodb").Table(self.settings.metering_table)

    @property
    def subscribers_table(self) -> Any:
        return boto3.resource("dynamodb").Table(self.settings.subscribers_table)

    @property
    def held_events_table(self) -> Any:
        return boto3.resource("dynamodb").Table(self.settings.held_events_table)

    def buyer(
        self, account: str, status: str = "active", legacy: bool | None = None, new_agreement: bool = False
    ) -> dict[str, Any]:
        """A registered subscriber; with `new_agreement`, another license of an account that has one."""
        legacy = self.settings.legacy_identity if legacy is None else legacy
        extra = {"newAgreement": True} if new_agreement else {}
        minted = self.emulator.subscribe(PRODUCT, customerAWSAccountId=account, **extra)
        item = {
            "customerAWSAccountId": account,
            "subscriptionKey": PRODUCT if legacy else license_id(minted["licenseArn"]),
            "licenseArn": minted["licenseArn"],
            "productCode": PRODUCT,
            "registrationDate": "2026-11-23T00:00:00+00:00",
            "companyName": "Acme",
            "contactPerson": "Jane",
            "contactEmail": "jane@example.com",
            "contactPhone": "+1 555 010 2030",
            "status": status,
        }
        if minted.get("customerIdentifier"):
            item["customerIdentifier"] = minted["customerIdentifier"]
        self.subscribers_table.put_item(Item=item)
        return minted

    def record(
        self,
        account: str,
        quantity: int | str | Decimal,
        *,
        hours_ago: float = 1,
        dimension: str = "users",
        **extra: Any,
    ) -> Any:
        moment = datetime.fromtimestamp(self.now[0] - hours_ago * 3600, UTC)
        recorder = UsageRecorder(
            self.settings, self.subscribers_table, self.usage_table, clock=lambda: self.now[0]
        )
        return recorder.record(
            UsageRecord.validate(
                {"customerAWSAccountId": account, "dimension": dimension, "quantity": quantity}
                | {"time": moment, **extra}
            )
        )

    def job(self, *, table: Any = None, client: Any = None, concurrency: int | None = None) -> MeteringJob:
        return MeteringJob(
            self.settings,
            table if table is not None else self.usage_table,
            self.subscribers_table,
            client if client is not None else boto3.client("meteringmarketplace"),
            clock=lambda: self.now[0],
            sleep=self.sleeps.append,
            concurrency=concurrency,
        )

    def run(self) -> RunReport:
        return self.job().run()

    def items(self) -> list[dict[str, Any]]:
        return list(self.usage_table.scan()["Items"])

    def billed(self) -> dict[tuple[str, str, str], Decimal]:
        """Billed by AWS Marketplace, per customer, dimension and hour (a customer's licenses summed)."""
        billed: dict[tuple[str, str, str], Decimal] = {}
        for record in self.emulator.billed(PRODUCT):
            key = (record["customer"], record["dimension"], record["hour"])
            billed[key] = billed.get(key, Decimal(0)) + Decimal(str(record["quantity"]))
        return billed

    def billed_by_license(self) -> dict[tuple[str, str, str], Decimal]:
        """What AWS Marketplace billed, by license, dimension and hour."""
        return {
            (str(record["licenseArn"]), record["dimension"], record["hour"]): Decimal(str(record["quantity"]))
            for record in self.emulator.billed(PRODUCT)
        }


def _harness(
    template: ListingTemplate,
    monkeypatch: pytest.MonkeyPatch,
    legacy: bool = False,
    record_calls: bool = False,  # keep every API call, for a check against botocore's model
) -> Iterator[Harness]:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    with EmulatorServer(record_calls=record_calls) as server:
        environment = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_MARKETPLACE_METERING": server.url,
            **next(iter(template.functions.values())).environment,
            "DIMENSIONS": ",".join(DIMENSIONS),
            "LEGACY_IDENTITY": "true" if legacy else "false",
        }
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        listing_settings.cache_clear()
        moto_dynamodb.apply()  # the job's workers call DynamoDB from several threads
        with mock_aws():
            client = boto3.client("dynamodb")
            for table in template.tables:
                client.create_table(**table.create_request)
            emulator = Emulator(server)
            emulator.product(PRODUCT, DIMENSIONS, legacy=legacy)
            harness = Harness(emulator, template, listing_settings())
            # Mid-month, at this time of day: the tests go back and forth by hours and a day, and must not
            # meet the month-end cutoff (06:00 UTC on the 1st) by the date they happen to run on.
            now = datetime.fromtimestamp(harness.now[0], UTC)
            harness.advance(now.replace(day=15).timestamp() - harness.now[0])
            yield harness
        listing_settings.cache_clear()


@pytest.fixture
def harness(templates: dict[str, ListingTemplate], monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    yield from _harness(templates["onboard"], monkeypatch)


@pytest.fixture
def legacy_harness(
    templates: dict[str, ListingTemplate], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    yield from _harness(templates["onboard"], monkeypatch, legacy=True)
