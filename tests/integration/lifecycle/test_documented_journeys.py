"""Whole journeys driven only by the events the emulator sends, which are AWS's documented example events
(tests/fixtures/marketplace_events): buy, renew, a second concurrent license, and a cancellation whose
`Purchase Agreement Ended` and `License Deprovisioned` arrive in either order with usage between them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from marketplace_saas.lifecycle import parse
from tests.integration.conftest import PRODUCT
from tests.integration.lifecycle.conftest import World, account_of

ACCOUNT = "111122223333"
# The emulator stamps its events with its own clock, which runs on in real time, while the test's clock
# stands still between `advance` calls: on a slow machine the events are seconds "ahead" of the test.
CLOCK_SLACK_SECONDS = 120


class Marketplace:
    """Plays AWS Marketplace through the emulator's admin API and hands its EventBridge events over."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lifecycle = world.lifecycle()
        self.handed: set[str] = set()

    def says(self, customer: str, kind: str, gap_seconds: float = 0) -> None:
        status, body = self.world.harness.emulator.admin(
            "POST",
            "/_emulator/events",
            {
                "productCode": PRODUCT,
                "customerAWSAccountId": account_of(customer),
                "licenseArn": self.world.licenses[customer],
                "type": kind,
                "endedToDeprovisionedSeconds": gap_seconds,
            },
        )
        assert status == 200, body

    def sent(self) -> list[dict[str, Any]]:
        """The EventBridge events delivered since the last call, in the order of their times."""
        log = self.world.harness.emulator.admin("GET", "/_emulator/events")[1]["events"]
        events = []
        for entry in log:
            for notification in entry.get("notifications", []):
                if notification["channel"] != "eventbridge" or notification["state"] != "delivered":
                    continue
                event = notification["event"]
                if event["id"] not in self.handed:
                    self.handed.add(event["id"])
                    events.append(event)
        return sorted(events, key=lambda event: str(event["time"]))

    def deliver(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            notice = parse(json.dumps(event))
            assert notice is not None, event["detail-type"]
            self.lifecycle.handle(notice)


@pytest.fixture
def marketplace(world: World) -> Marketplace:
    return Marketplace(world)


def _bought(world: World, marketplace: Marketplace, customer: str) -> None:
    world.subscribe(customer)
    marketplace.says(customer, "subscribe-success")
    marketplace.deliver(marketplace.sent())
    world.register(customer)
    assert world.subscriber(customer)["status"] == "active"


def test_buy_register_use_cancel(world: World, marketplace: Marketplace) -> None:
    _bought(world, marketplace, ACCOUNT)
    world.harness.record(ACCOUNT, 5, hours_ago=0)
    marketplace.says(ACCOUNT, "unsubscribe-pending")
    events = marketplace.sent()
    assert [event["detail-type"] for event in events] == [
        "Purchase Agreement Ended - Proposer",
        "License Deprovisioned - Manufacturer",
    ]
    marketplace.deliver(events)
    assert world.subscriber(ACCOUNT)["status"] == "cancel-pending"
    assert list(world.harness.billed().values()) == [5]  # sent at once, inside the final hour
    world.harness.advance(3600 + CLOCK_SLACK_SECONDS)  # the final hour is over
    assert marketplace.lifecycle.close_ended() == [ACCOUNT]
    assert world.subscriber(ACCOUNT)["status"] == "cancelled"


def test_a_renewal_keeps_the_buyer_active_and_billed(world: World, marketplace: Marketplace) -> None:
    _bought(world, marketplace, ACCOUNT)
    world.harness.record(ACCOUNT, 3, hours_ago=1)
    marketplace.says(ACCOUNT, "renew")
    events = marketplace.sent()
    assert [event["detail-type"] for event in events] == [
        "Purchase Agreement Created - Proposer",
        "Purchase Agreement Ended - Proposer",
    ]
    marketplace.deliver(events)
    item = world.subscriber(ACCOUNT)
    assert item["status"] == "active" and "agreementEndedAt" in item
    world.harness.run()
    assert list(world.harness.billed().values()) == [3]


def test_a_second_concurrent_license_lives_and_ends_on_its_own(
    world: World, marketplace: Marketplace
) -> None:
    second = f"{ACCOUNT}#2"
    _bought(world, marketplace, ACCOUNT)
    _bought(world, marketplace, second)
    assert world.licenses[ACCOUNT] != world.licenses[second]
    marketplace.says(second, "unsubscribe-pending")
    marketplace.deliver(marketplace.sent())
    assert world.subscriber(second)["status"] == "cancel-pending"
    assert world.subscriber(ACCOUNT)["status"] == "active"
    recorded = world.harness.record(ACCOUNT, 2, hours_ago=1, licenseArn=world.licenses[ACCOUNT])
    assert recorded.license_arn == world.licenses[ACCOUNT]
    world.harness.run()
    assert world.harness.billed_by_license() == {
        (world.licenses[ACCOUNT], "users", key[2]): Decimal(2) for key in world.harness.billed()
    }


@pytest.mark.parametrize("order", ["as AWS sends them", "Deprovisioned first"])
def test_usage_between_ended_and_deprovisioned_is_taken_and_billed(
    world: World, marketplace: Marketplace, order: str
) -> None:
    _bought(world, marketplace, ACCOUNT)
    marketplace.says(ACCOUNT, "unsubscribe-pending", gap_seconds=5)
    (ended,) = marketplace.sent()  # Deprovisioned follows five seconds later
    assert ended["detail-type"] == "Purchase Agreement Ended - Proposer"
    world.harness.advance(6)  # the emulator delivers what is due when its clock passes it
    (deprovisioned,) = marketplace.sent()
    assert deprovisioned["detail-type"] == "License Deprovisioned - Manufacturer"
    first, then = (ended, deprovisioned) if order == "as AWS sends them" else (deprovisioned, ended)
    marketplace.deliver([first])
    world.harness.record(ACCOUNT, 4, hours_ago=0)  # taken, not refused, whichever came first
    marketplace.deliver([then])
    assert world.subscriber(ACCOUNT)["status"] == "cancel-pending"
    world.harness.run()  # a leaving license's current hour goes with every run
    assert list(world.harness.billed().values()) == [4]
