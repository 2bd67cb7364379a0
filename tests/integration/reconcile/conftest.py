"""Reconciliation against the Marketplace emulator's Agreement API, moto's DynamoDB, SSM and EventBridge.

A `Buyers` world plays AWS Marketplace: each purchase and lifecycle change happens in the emulator, which
logs the notifications it would send; a test delivers them to the lifecycle (in order, late, or never) and
then lets the reconciliation compare the subscribers with the emulator's agreements.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest

from local.stack_template import ListingTemplate
from marketplace_saas import wiring
from marketplace_saas.lifecycle import Lifecycle, Notice, parse
from marketplace_saas.models import license_id
from marketplace_saas.reconcile import Reconciler, ReconcileReport, RunState
from marketplace_saas.settings import MARKETPLACE_REGION
from tests.integration.conftest import PRODUCT
from tests.integration.emulator import model_check
from tests.integration.lifecycle.conftest import World, _world
from tests.integration.metering.conftest import _harness

STATE_PARAMETER = "/codio-marketplace-onboard/reconciliation"


@dataclass
class Buyers:
    world: World
    lifecycle: Lifecycle
    product_id: str = ""  # set: the listing's entityId; empty: found through the Catalog API
    seen: int = 0  # entries of the emulator's event log already taken
    withheld: list[dict[str, Any]] = field(default_factory=list)

    @property
    def emulator(self) -> Any:
        return self.world.harness.emulator

    def reconciler(self) -> Reconciler:
        harness = self.world.harness
        settings = harness.settings
        if self.product_id:
            settings = replace(settings, product_id=self.product_id)
        return Reconciler(
            settings,
            self.lifecycle,
            harness.subscribers_table,
            self.client("marketplace-agreement"),
            self.client("marketplace-catalog"),
            RunState(boto3.client("ssm"), STATE_PARAMETER),
            clock=lambda: harness.now[0],
        )

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=MARKETPLACE_REGION, endpoint_url=self.emulator.url)

    def reconcile(self, *, full: bool = False, dry_run: bool = False) -> ReconcileReport:
        return self.reconciler().run(full=full, dry_run=dry_run)

    # --- AWS Marketplace -------------------------------------------------------------------------------

    def buy(self, account: str, *, deliver: bool = True, another: bool = False) -> str:
        """The buyer subscribes and Marketplace announces it (to the lifecycle, unless not `deliver`)."""
        extra: dict[str, Any] = {"newAgreement": True} if another else {}
        minted = self.emulator.subscribe(PRODUCT, customerAWSAccountId=account, deliver=deliver, **extra)
        key = f"{account}#{len(self.world.licenses)}" if another else account
        self.world.licenses[key] = minted["licenseArn"]
        self.world.agreements[key] = minted["agreementId"]
        self.take(deliver)
        return str(minted["licenseArn"])

    def change(self, account: str, kind: str, *, deliver: bool = True) -> dict[str, Any]:
        """A lifecycle change of the license (unsubscribe-pending, renew, ...), Deprovisioned at once."""
        status, body = self.emulator.event(
            kind,
            PRODUCT,
            customerAWSAccountId=account.split("#")[0],
            licenseArn=self.world.licenses[account],
            endedToDeprovisionedSeconds=0,
            deliver=deliver,
        )
        assert status == 200, body
        self.take(deliver)
        return body

    def take(self, deliver: bool) -> list[dict[str, Any]]:
        """The notifications Marketplace sent since the last call: delivered now, or kept as withheld."""
        entries = self.emulator.events()[self.seen :]
        self.seen += len(entries)
        events = [n["event"] for entry in entries for n in entry["notifications"] if "event" in n]
        if deliver:
            for event in events:
                self.deliver(event)
        else:
            self.withheld += events
        return events

    def deliver(self, event: dict[str, Any]) -> None:
        notice = parse(json.dumps(event))
        assert isinstance(notice, Notice)
        self.lifecycle.handle(notice)

    # --- here ------------------------------------------------------------------------------------------

    def item(self, account: str) -> dict[str, Any] | None:
        key = {
            "customerAWSAccountId": account.split("#")[0],
            "subscriptionKey": license_id(self.world.licenses[account]),
        }
        found: dict[str, Any] | None = self.world.harness.subscribers_table.get_item(
            Key=key, ConsistentRead=True
        ).get("Item")
        return found

    def status(self, account: str) -> str | None:
        item = self.item(account)
        return None if item is None else str(item.get("status"))


def _buyers(world: World) -> Buyers:
    # As the stack creates it.
    boto3.client("ssm").put_parameter(Name=STATE_PARAMETER, Value="{}", Type="String")
    return Buyers(world, world.lifecycle())


@pytest.fixture
def buyers(templates: dict[str, ListingTemplate], monkeypatch: pytest.MonkeyPatch) -> Iterator[Buyers]:
    for harness in _harness(templates["onboard"], monkeypatch, record_calls=True):
        yield _buyers(_world(harness))
        wiring.use(None)
        # Every Agreement, Catalog and Metering API call the reconciliation made fits botocore's model.
        problems = model_check.all_problems(harness.emulator.server.calls)
        assert not problems, "the traffic does not fit botocore's model:\n" + "\n".join(problems)
