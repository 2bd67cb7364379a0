"""Property: any arrival order of a customer's events, with repeats, ends in the status their times give.

Marketplace's events can come twice, late, out of order, and before or after the buyer registers. Whatever
the order, each customer ends in the status the rules give for their story, the seller's product is told
about that status, and a customer who was never active is never metered.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import boto3
from hypothesis import HealthCheck, given, settings, strategies as st

from marketplace_saas.lifecycle import parse
from tests.integration.lifecycle.conftest import World, account_of

HOUR_MS = 3600 * 1000

# Each story: the events AWS Marketplace sends for one customer (in the order they happened), and the
# status the customer must end in.
STORIES: dict[str, tuple[list[tuple[str, str]], str]] = {
    "subscribes": ([("license", "Updated")], "active"),
    "subscribes through an agreement": ([("agreement", "Created"), ("license", "Updated")], "active"),
    "starts cancelling": ([("license", "Updated"), ("license", "Deprovisioned")], "cancel-pending"),
    # AWS sends Ended first, seconds to minutes before Deprovisioned; the final hour is still open after both
    # (the metering job closes the license when it is over).
    "cancels, Ended first": (
        [("license", "Updated"), ("agreement", "Ended"), ("license", "Deprovisioned")],
        "cancel-pending",
    ),
    "cancels, Deprovisioned first": (
        [("license", "Updated"), ("license", "Deprovisioned"), ("agreement", "Ended")],
        "cancel-pending",
    ),
    # A renewal or replacement ends the old agreement while the buyer stays.
    "renews": ([("agreement", "Created"), ("license", "Updated"), ("agreement", "Ended")], "active"),
    "payment fails": ([("agreement", "Ended"), ("license", "Deprovisioned")], "failed"),
    # An entitlement change after the license was deprovisioned does not bring it back.
    "entitlements change while leaving": (
        [("license", "Updated"), ("license", "Deprovisioned"), ("license", "Updated")],
        "cancel-pending",
    ),
    "never hears back": ([], "pending"),
}
SELLER_EVENT = {
    "active": "subscriber.activated",
    "cancel-pending": "subscriber.cancel-pending",
    "cancelled": "subscriber.deactivated",
    "failed": "subscriber.failed",
}
accounts = itertools.count(100_000_000_000)


@dataclass
class Recorder:
    """A metering client that remembers which licenses each BatchMeterUsage call billed."""

    target: Any
    licenses: list[str]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)

    def batch_meter_usage(self, **request: Any) -> Any:
        self.licenses += [record["LicenseArn"] for record in request["UsageRecords"]]
        return self.target.batch_meter_usage(**request)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, int]], bool]:
    """Three customers' stories, and an arrival order: every event at least once, some twice, any order,
    with each buyer's registration somewhere among them (index -1). The third customer is sometimes a
    second license of the second one's account (concurrent agreements): each license has its own story."""
    stories = [draw(st.sampled_from(sorted(STORIES))) for _ in range(3)]
    concurrent = draw(st.booleans())
    steps = [
        (customer, index) for customer, story in enumerate(stories) for index in range(len(STORIES[story][0]))
    ]
    repeats = draw(st.lists(st.sampled_from(steps), max_size=4)) if steps else []
    registrations = [(customer, -1) for customer in range(3)]
    order = draw(st.permutations(steps + repeats + registrations))
    return stories, [(str(customer), index) for customer, index in order], concurrent


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries())
def test_any_order_of_events_converges_and_the_never_active_are_never_metered(
    world: World, plan: tuple[list[str], list[tuple[str, int]], bool]
) -> None:
    stories, order, concurrent = plan
    harness = world.harness
    customers = [f"{next(accounts):012d}" for _ in stories]
    if concurrent:
        customers[2] = f"{customers[1]}#2"  # the second customer's account buys a second license
    started_ms = world.now_ms - 2 * HOUR_MS  # the events happened over the last two hours
    for account in customers:
        world.subscribe(account)
        world.marketplace_says(account, "subscribe-success")  # Marketplace itself would bill anyone sent
    # Usage of the last hour for everyone, as the seller's product would report it.
    hour = harness.now[0] // 3600 * 3600 - 3600
    for account in customers:
        harness.usage_table.put_item(Item=_usage(account_of(account), world.licenses[account], int(hour)))

    lifecycle = world.lifecycle()
    for customer, step in order:
        account, story = customers[int(customer)], stories[int(customer)]
        if step == -1:
            world.register(account)
            continue
        kind, change = STORIES[story][0][step]
        at_ms = started_ms + (step + 1) * 60_000
        body = (
            world.license_event(account, change, at_ms)
            if kind == "license"
            else world.agreement_event(account, change, at_ms)
        )
        notice = parse(body)
        assert notice is not None
        lifecycle.handle(notice)

    published: dict[str, set[str]] = {}
    for event in world.seller_events():
        published.setdefault(event["detail"]["licenseArn"], set()).add(event["detail-type"])
    sent: list[str] = []
    harness.job(client=Recorder(boto3.client("meteringmarketplace"), sent)).run()
    for account, story in zip(customers, stories, strict=True):
        events, expected = STORIES[story]
        assert world.subscriber(account)["status"] == expected, (story, order)
        license_arn = world.licenses[account]
        if expected != "pending":
            assert SELLER_EVENT[expected] in published[license_arn], (story, order)
        ever_active = ("license", "Updated") in events or ("agreement", "Created") in events
        if not ever_active:
            assert license_arn not in sent, (story, order)
            assert "subscriber.activated" not in published.get(license_arn, set())
    # Nobody's usage was sent twice, and the active customers' usage was sent (now or at their flush).
    assert len(sent) == len(set(sent))


def _usage(account: str, license_arn: str, hour: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    iso_hour = datetime.fromtimestamp(hour, UTC).isoformat().replace("+00:00", "Z")
    return {
        "customerAWSAccountId": account,
        "usageKey": f"{iso_hour}#users#{license_arn.rsplit(':', 1)[-1]}",
        "usageHour": iso_hour,
        "dimension": "users",
        "quantity": 4,
        "productCode": "PROD_ONBOARD",
        "licenseArn": license_arn,
        "pendingPartition": "pending",
        "meteringStatus": "pending",
        "allocated": False,
    }
