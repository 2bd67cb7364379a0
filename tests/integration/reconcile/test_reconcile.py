"""Reconciliation repairs what lost events left wrong, through the lifecycle, and changes nothing else."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketplace_saas.reconcile import AgreementsUnavailable
from tests.integration.reconcile.conftest import Buyers

BUYER = "111122223333"
OTHER = "444455556666"


def kinds(buyers: Buyers, **options: bool) -> list[tuple[str, str, str]]:
    report = buyers.reconcile(**options)
    return [(d.kind, d.account, d.action) for d in report.differences]


def registered(buyers: Buyers, account: str) -> None:
    assert buyers.world.register(account) is not None


def test_a_cancellation_whose_events_were_lost_is_found_and_its_final_hour_billed(buyers: Buyers) -> None:
    buyers.buy(BUYER)
    registered(buyers, BUYER)
    assert buyers.status(BUYER) == "active"
    buyers.world.seller_events()
    harness = buyers.world.harness
    harness.record(BUYER, 3, hours_ago=0.2)  # this hour's usage, not yet sent
    buyers.change(BUYER, "unsubscribe-pending", deliver=False)
    assert buyers.status(BUYER) == "active"  # nothing told the listing

    report = buyers.reconcile()

    (difference,) = report.differences
    assert (difference.kind, difference.here, difference.there, difference.action) == (
        "ended-there",
        "active",
        "ended",
        "repaired",
    )
    assert buyers.status(BUYER) == "cancel-pending"
    (event,) = buyers.world.seller_events()
    assert event["detail-type"] == "subscriber.cancel-pending"
    assert event["detail"]["foundBy"] == "reconciliation"
    # The final hour is open: the license's usage went at once, and AWS billed it.
    assert sum(harness.billed().values()) == Decimal(3)
    # An hour later the metering job closes the license, and nothing it sends is refused.
    harness.advance(3700)
    harness.run()
    assert buyers.lifecycle.close_ended() == [BUYER]
    assert buyers.status(BUYER) == "cancelled"
    assert [i for i in harness.items() if i.get("meteringStatus") == "failed"] == []
    assert kinds(buyers) == []  # in step now


def test_a_cancellation_found_after_its_final_hour_sends_nothing_aws_would_refuse(buyers: Buyers) -> None:
    buyers.buy(BUYER)
    registered(buyers, BUYER)
    harness = buyers.world.harness
    harness.record(BUYER, 5, hours_ago=0.1)
    buyers.change(BUYER, "unsubscribe-pending", deliver=False)
    harness.advance(2 * 3600)

    assert kinds(buyers) == [("ended-there", BUYER, "repaired")]

    assert buyers.status(BUYER) == "cancelled"
    report = harness.run()
    assert report.sent == 0
    assert harness.billed() == {}
    (item,) = harness.items()
    assert (item["meteringStatus"], item["failureReason"]) == ("failed", "SubscriptionEnded")


def test_a_purchase_whose_events_were_lost_becomes_a_buyer_who_has_not_registered(buyers: Buyers) -> None:
    buyers.buy(BUYER, deliver=False)
    assert buyers.item(BUYER) is None

    assert kinds(buyers) == [("missing-subscriber", BUYER, "repaired")]

    item = buyers.item(BUYER)
    assert item is not None
    assert item["status"] == "active" and "registrationDate" not in item
    assert item["agreementId"] == buyers.world.agreements[BUYER]
    (event,) = buyers.world.seller_events()
    assert (event["detail-type"], event["detail"]["foundBy"]) == ("subscriber.activated", "reconciliation")
    # The buyer registers later, as usual, and keeps the status.
    registered(buyers, BUYER)
    assert buyers.status(BUYER) == "active"


def test_a_dry_run_changes_nothing_and_the_next_run_still_finds_the_difference(buyers: Buyers) -> None:
    buyers.buy(BUYER)
    registered(buyers, BUYER)
    buyers.world.seller_events()
    buyers.change(BUYER, "unsubscribe-pending", deliver=False)

    assert kinds(buyers, dry_run=True) == [("ended-there", BUYER, "would repair")]
    assert buyers.status(BUYER) == "active"
    assert buyers.world.seller_events() == []
    assert kinds(buyers, dry_run=True) == [("ended-there", BUYER, "would repair")]

    assert kinds(buyers) == [("ended-there", BUYER, "repaired")]
    assert kinds(buyers) == []


def test_a_renewal_whose_events_were_lost_moves_the_subscriber_on_to_the_new_agreement(
    buyers: Buyers,
) -> None:
    buyers.buy(BUYER)
    registered(buyers, BUYER)
    first = buyers.item(BUYER)
    assert first is not None
    renewed = buyers.change(BUYER, "renew", deliver=False)
    assert renewed["agreementId"] != first["agreementId"]

    assert kinds(buyers) == [("agreement-not-linked", BUYER, "repaired")]

    item = buyers.item(BUYER)
    assert item is not None
    assert (item["agreementId"], item["status"]) == (renewed["agreementId"], "active")
    assert kinds(buyers, full=True) == []


def test_a_renewal_whose_events_came_needs_no_repair(buyers: Buyers) -> None:
    buyers.buy(BUYER)
    registered(buyers, BUYER)
    buyers.change(BUYER, "renew")
    assert kinds(buyers, full=True) == []


def test_events_that_all_came_leave_nothing_to_repair(buyers: Buyers) -> None:
    buyers.buy(BUYER)
    buyers.buy(BUYER, another=True)
    buyers.buy(OTHER)
    registered(buyers, BUYER)
    buyers.change(OTHER, "unsubscribe-pending")
    report = buyers.reconcile(full=True)
    assert (report.agreements, report.licenses, report.differences) == (3, 3, [])


def test_a_license_aws_does_not_know_is_reported_on_a_full_pass_and_kept(buyers: Buyers) -> None:
    table = buyers.world.harness.subscribers_table
    stray = {
        "customerAWSAccountId": OTHER,
        "subscriptionKey": "l-0123456789abcdef",
        "licenseArn": "arn:aws:license-manager::111111111111:license:l-0123456789abcdef",
        "productCode": "PROD_ONBOARD",
        "status": "active",
        "activatedAt": 1,
    }
    table.put_item(Item=stray)
    buyers.buy(BUYER)

    assert kinds(buyers, full=True) == [("unknown-license", OTHER, "not repaired")]
    assert (
        table.get_item(Key={k: stray[k] for k in ("customerAWSAccountId", "subscriptionKey")})["Item"]
        == stray
    )
    assert kinds(buyers) == []  # an incremental pass reads only agreements, and finds none changed


def test_each_run_reads_from_where_the_last_one_began(buyers: Buyers) -> None:
    buyers.buy(BUYER)
    buyers.world.harness.advance(86400)  # a day later, past the safety margin
    first = buyers.reconcile()
    assert first.full and first.since is None and first.agreements == 1
    buyers.world.harness.advance(86400)
    buyers.buy(OTHER, deliver=False)
    second = buyers.reconcile()
    assert not second.full and second.since is not None and second.since < second.started_at
    assert second.agreements == 1  # only the new one
    assert [(d.kind, d.account) for d in second.differences] == [("missing-subscriber", OTHER)]
    state = buyers.reconciler()._state.read()
    assert state["lastRun"]["differences"] == 1 and state["lastRun"]["repaired"] == 1


def test_the_product_is_found_by_its_code_or_named_by_its_entity_id(buyers: Buyers) -> None:
    buyers.buy(BUYER, deliver=False)
    found = buyers.reconciler()._product_id({})
    assert found.startswith("prod-")
    buyers.product_id = found
    assert kinds(buyers) == [("missing-subscriber", BUYER, "repaired")]
    buyers.product_id = "prod-doesnotexist1"
    assert buyers.reconcile(full=True).agreements == 0  # another product's agreements: none


def test_a_product_code_the_catalog_does_not_have_is_a_clear_error(buyers: Buyers) -> None:
    from dataclasses import replace

    reconciler = buyers.reconciler()
    reconciler._settings = replace(reconciler._settings, product_code="NOT_IN_THE_CATALOG")
    with pytest.raises(AgreementsUnavailable, match=r"NOT_IN_THE_CATALOG.*entityId"):
        reconciler.run()
