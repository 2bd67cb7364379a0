"""Property: whatever events are lost or late, events + reconciliation end where all events in order end.

For any history of purchases, renewals, upgrades (entitlement changes), cancellations and purchases again
over one or two concurrent licenses of one buyer, the emulator makes the agreements and the notifications
AWS Marketplace would send. One listing receives every notification in order (the reference); another loses
some, receives some late, and runs the reconciliation once, with the late ones arriving before or after it.
When the final hours are over both have each license in the same status, and AWS billed no usage twice.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from marketplace_saas.lifecycle import Lifecycle, parse
from marketplace_saas.marketplace import MarketplaceClient
from marketplace_saas.metering import MeteringJob
from marketplace_saas.models import BuyerIdentity, Subscriber, license_id
from marketplace_saas.reconcile import Reconciler, RunState
from marketplace_saas.seller_events import SellerEvents
from marketplace_saas.settings import MARKETPLACE_REGION, ListingSettings
from marketplace_saas.store import Subscribers
from marketplace_saas.usage import UsageRecord, UsageRecorder, UsageRejected
from tests.integration.conftest import PRODUCT
from tests.integration.metering.conftest import DIMENSIONS
from tests.integration.reconcile.conftest import Buyers

ACCOUNT = "777788889999"
CHANGES = ("renew", "upgrade", "cancel", "buy-again")
KIND = {"renew": "renew", "upgrade": "entitlement-updated", "cancel": "unsubscribe-pending"}
examples = itertools.count()


@st.composite
def histories(draw: st.DrawFn) -> tuple[bool, list[tuple[str, int]], list[str], bool, int]:
    """(two licenses?, changes as (what, license index), each notification's fate, late ones after the
    reconciliation?, seed for the late ones' order)."""
    two = draw(st.booleans())
    changes = draw(st.lists(st.tuples(st.sampled_from(CHANGES), st.integers(0, 1 if two else 0)), max_size=5))
    fates = draw(st.lists(st.sampled_from(("now", "now", "late", "lost")), min_size=40, max_size=40))
    return two, changes, fates, draw(st.booleans()), draw(st.integers(0, 2**16))


class Listing:
    """One listing's tables and lifecycle, apart from the other listing's in the same moto."""

    def __init__(self, buyers: Buyers, name: str) -> None:
        harness = buyers.world.harness
        client = boto3.client("dynamodb")
        names = {}
        for table in harness.template.tables:
            request = json.loads(json.dumps(table.create_request))
            names[request["TableName"]] = request["TableName"] = f"{request['TableName']}-{name}"
            client.create_table(**request)
        base = harness.settings
        self.settings: ListingSettings = replace(
            base,
            subscribers_table=names[base.subscribers_table],
            held_events_table=names[base.held_events_table],
            metering_table=names[base.metering_table],
            registrations_table=names[base.registrations_table],
        )
        dynamodb = boto3.resource("dynamodb")
        self.subscribers = dynamodb.Table(self.settings.subscribers_table)
        self.held = dynamodb.Table(self.settings.held_events_table)
        self.usage = dynamodb.Table(self.settings.metering_table)
        self.clock = lambda: harness.now[0]
        self.job = MeteringJob(
            self.settings,
            self.usage,
            self.subscribers,
            boto3.client("meteringmarketplace"),
            clock=self.clock,
            sleep=lambda _: None,
        )
        self.lifecycle = Lifecycle(
            self.settings,
            self.subscribers,
            self.held,
            MarketplaceClient.from_environment(),
            SellerEvents(boto3.client("events"), base.seller_bus, base.seller_event_source),
            flush=lambda customer: self.job.flush({customer}) and None,
            clock=self.clock,
        )
        self.parameter = f"/{name}/reconciliation"
        self.emulator_url = buyers.emulator.url

    def deliver(self, event: dict[str, Any]) -> None:
        notice = parse(json.dumps(event))
        assert notice is not None
        self.lifecycle.handle(notice)

    def reconcile(self) -> None:
        def client(service: str) -> Any:
            return boto3.client(service, region_name=MARKETPLACE_REGION, endpoint_url=self.emulator_url)

        Reconciler(
            self.settings,
            self.lifecycle,
            self.subscribers,
            client("marketplace-agreement"),
            client("marketplace-catalog"),
            RunState(boto3.client("ssm"), self.parameter),
            clock=self.clock,
        ).run()

    def register(self, license_arn: str) -> None:
        """The buyer fills in the listing's form after buying (what the registration function stores)."""
        identity = BuyerIdentity(ACCOUNT, PRODUCT, license_arn, None, None)
        Subscribers(self.subscribers, legacy=False, held_events=self.held).register(
            Subscriber(
                identity=identity,
                company_name="Acme",
                contact_person="Jane Doe",
                contact_email="jane@example.com",
                contact_phone="+1 555 010 2030",
                registration_date=datetime.now(UTC).isoformat(),
                status="pending",
                offer_type=None,
            )
        )

    def status(self, license_arn: str) -> str | None:
        key = {"customerAWSAccountId": ACCOUNT, "subscriptionKey": license_id(license_arn)}
        item = self.subscribers.get_item(Key=key, ConsistentRead=True).get("Item")
        return None if item is None else str(item["status"])

    def record(self, license_arn: str, hours_ago: float) -> bool:
        """One unit of usage for the license, if this listing takes it (a billable subscriber)."""
        recorder = UsageRecorder(self.settings, self.subscribers, self.usage, clock=self.clock)
        moment = self.clock() - hours_ago * 3600
        try:
            recorder.record(
                UsageRecord.validate(
                    {
                        "customerAWSAccountId": ACCOUNT,
                        "licenseArn": license_arn,
                        "dimension": DIMENSIONS[0],
                        "quantity": 1,
                        "time": datetime.fromtimestamp(moment, UTC),
                    }
                )
            )
        except UsageRejected:  # not billable here: the usage API refuses it, as it should
            return False
        return True


@settings(
    max_examples=20,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_lost_and_late_events_plus_reconciliation_end_as_all_events_in_order(
    buyers: Buyers, history: tuple[bool, list[tuple[str, int]], list[str], bool, int]
) -> None:
    two, changes, fates, late_after, seed = history
    example = next(examples)
    emulator, harness = buyers.emulator, buyers.world.harness
    assert emulator.admin("POST", "/_emulator/reset")[0] == 200
    emulator.set_clock(datetime.fromtimestamp(harness.now[0], UTC))  # a reset forgets the shifted clock
    emulator.product(PRODUCT, DIMENSIONS)
    buyers.seen = 0
    reference, listing = Listing(buyers, f"reference-{example}"), Listing(buyers, f"repaired-{example}")
    fate = iter(fates)
    late: list[dict[str, Any]] = []

    def happened() -> None:
        """What Marketplace sent for the last change: all to the reference, each to the other as fated."""
        entries = emulator.events()[buyers.seen :]
        buyers.seen += len(entries)
        for event in [n["event"] for entry in entries for n in entry["notifications"] if "event" in n]:
            reference.deliver(event)
            what = next(fate, "now")
            if what == "now":
                listing.deliver(event)
            elif what == "late":
                late.append(event)
        harness.advance(60)

    licenses = [emulator.subscribe(PRODUCT, customerAWSAccountId=ACCOUNT)["licenseArn"]]
    happened()
    if two:
        licenses.append(
            emulator.subscribe(PRODUCT, customerAWSAccountId=ACCOUNT, newAgreement=True)["licenseArn"]
        )
        happened()
    for each in (reference, listing):
        for license_arn in licenses:
            each.register(license_arn)
    for what, index in changes:
        license_arn = licenses[index]
        state = next(s for s in emulator.subscriptions(PRODUCT) if s["licenseArn"] == license_arn)["status"]
        if what == "buy-again":
            if index != len(licenses) - 1 or state == "active":
                continue  # buying again reuses the account's newest license, once it has ended
            emulator.subscribe(PRODUCT, customerAWSAccountId=ACCOUNT)
        else:
            if state != "active":
                continue
            status, body = emulator.event(
                KIND[what],
                PRODUCT,
                licenseArn=license_arn,
                customerAWSAccountId=ACCOUNT,
                endedToDeprovisionedSeconds=0,
            )
            assert status == 200, body
        happened()
    # Usage of the hour before, wherever it is taken: billed once at most.
    recorded = [listing.record(license_arn, hours_ago=0.5) for license_arn in licenses]

    random.Random(seed).shuffle(late)
    if not late_after:
        for event in late:
            listing.deliver(event)
    listing.reconcile()
    if late_after:
        for event in late:
            listing.deliver(event)
    harness.advance(2 * 3600)  # every final hour is over
    for each in (reference, listing):
        each.job.run()
        each.lifecycle.close_ended()

    assert [listing.status(arn) for arn in licenses] == [reference.status(arn) for arn in licenses]
    billed: dict[tuple[str, str], Decimal] = {}
    for record in emulator.billed(PRODUCT):
        key = (record["licenseArn"], record["hour"])
        assert key not in billed, f"billed twice: {key}"
        billed[key] = Decimal(str(record["quantity"]))
    # Each license's one unit, where it was taken, at most once (other hours are AWS's zero records).
    for license_arn, took in zip(licenses, recorded, strict=True):
        units = sum(quantity for (arn, _), quantity in billed.items() if arn == license_arn)
        assert units <= (1 if took else 0), (license_arn, units)
