"""The lifecycle function: Marketplace's events move subscribers, tell the seller's product, flush usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers import lifecycle as lifecycle_handler
from marketplace_saas.lifecycle import parse
from marketplace_saas.usage import UsageRejected
from tests.integration.conftest import PRODUCT
from tests.integration.lifecycle.conftest import World
from tests.integration.metering.conftest import DIMENSIONS

HOUR_MS = 3600 * 1000


class Context:
    function_name = "CodioMarketplace-test-Lifecycle"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:CodioMarketplace-test-Lifecycle"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def test_events_move_a_registered_subscriber_through_every_state(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    world.register(account, company="Acme Learning")
    assert world.subscriber(account)["status"] == "pending"
    lifecycle, t = world.lifecycle(), world.now_ms - 10_000

    lifecycle.handle(parse(world.license_event(account, "Updated", t)))  # type: ignore[arg-type]
    assert world.subscriber(account)["status"] == "active"
    (activated,) = world.seller_events()
    assert activated["detail-type"] == "subscriber.activated"
    assert activated["source"] == world.harness.settings.seller_event_source
    detail = activated["detail"]
    assert (detail["customerAWSAccountId"], detail["licenseArn"]) == (account, world.licenses[account])
    assert (detail["companyName"], detail["contactEmail"]) == ("Acme Learning", "jane@example.com")
    assert (detail["status"], detail["previousStatus"], detail["registered"]) == ("active", "pending", True)

    outcome = lifecycle.handle(parse(world.license_event(account, "Deprovisioned", t + 1000)))  # type: ignore[arg-type]
    assert outcome.flushed
    assert world.subscriber(account)["status"] == "cancel-pending"
    assert [e["detail-type"] for e in world.seller_events()] == ["subscriber.cancel-pending"]

    # Purchase Agreement Ended is recorded, and ends nothing by itself: the final hour is still open.
    lifecycle.handle(parse(world.agreement_event(account, "Ended", t + 2000)))  # type: ignore[arg-type]
    item = world.subscriber(account)
    assert (item["status"], item["agreementEndedAt"]) == ("cancel-pending", t + 2000)
    assert world.seller_events() == []
    # When the final hour is over, the metering job closes the license.
    world.harness.advance(3600)
    assert lifecycle.close_ended() == [account]
    assert world.subscriber(account)["status"] == "cancelled"
    (deactivated,) = world.seller_events()
    assert deactivated["detail-type"] == "subscriber.deactivated"
    assert deactivated["detail"]["previousStatus"] == "cancel-pending"

    failing = "444455556666"
    world.subscribe(failing)
    world.register(failing)
    lifecycle.handle(parse(world.license_event(failing, "Deprovisioned", t)))  # type: ignore[arg-type]
    assert world.subscriber(failing)["status"] == "failed"  # ended before it was ever active
    assert [e["detail-type"] for e in world.seller_events()] == ["subscriber.failed"]


def test_the_same_event_twice_changes_and_announces_once(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    world.register(account)
    lifecycle, body = world.lifecycle(), world.license_event("111122223333", "Updated", world.now_ms)
    first, second = lifecycle.handle(parse(body)), lifecycle.handle(parse(body))  # type: ignore[arg-type]
    assert first.published == ["subscriber.activated"] and second.published == []
    assert len(world.seller_events()) == 1


def test_an_event_before_registration_keeps_its_status_when_the_buyer_registers(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    world.lifecycle().handle(parse(world.license_event(account, "Updated", world.now_ms)))  # type: ignore[arg-type]
    assert world.register(account) is not None
    item = world.subscriber(account)
    assert (item["status"], item["companyName"]) == ("active", "Acme")


def test_an_agreement_event_before_its_license_event_waits_for_it(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    lifecycle = world.lifecycle()
    created = world.agreement_event(account, "Created", world.now_ms - 5000)
    early = lifecycle.handle(parse(created))  # type: ignore[arg-type]
    assert early.action == "ignored"  # nobody has this agreement yet
    # The license event names the agreement: the held activation counts, so the license was active.
    lifecycle.handle(parse(world.license_event(account, "Deprovisioned", world.now_ms)))  # type: ignore[arg-type]
    assert world.subscriber(account)["status"] == "cancel-pending"  # not "failed": it had been active


def test_an_agreement_event_finds_a_registered_buyer_by_the_agreement_resolve_customer_gave(
    world: World,
) -> None:
    account = "111122223333"
    world.subscribe(account)
    world.register(account)  # with Metadata.AgreementId from ResolveCustomer
    outcome = world.lifecycle().handle(parse(world.agreement_event(account, "Created", world.now_ms)))  # type: ignore[arg-type]
    assert outcome.action == "applied" and world.subscriber(account)["status"] == "active"
    assert world.held() == []  # nothing waited
    assert world.others_than(account) == []


def test_an_entitlement_change_never_reactivates_an_ending_license(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    world.register(account)
    lifecycle, t = world.lifecycle(), world.now_ms - 10_000
    lifecycle.handle(parse(world.license_event(account, "Updated", t)))  # type: ignore[arg-type]
    lifecycle.handle(parse(world.license_event(account, "Deprovisioned", t + 1000)))  # type: ignore[arg-type]
    world.seller_events()
    lifecycle.handle(parse(world.license_event(account, "Updated", t + 2000)))  # type: ignore[arg-type]
    assert world.subscriber(account)["status"] == "cancel-pending"
    world.harness.advance(3600)
    lifecycle.close_ended()
    lifecycle.handle(parse(world.license_event(account, "Updated", t + 3 * HOUR_MS)))  # type: ignore[arg-type]
    assert world.subscriber(account)["status"] == "cancelled"
    assert "subscriber.activated" not in [e["detail-type"] for e in world.seller_events()]


def test_a_renewal_keeps_the_buyer_billed(world: World) -> None:
    """The old agreement ends (RENEWED) and a new one starts for the same license: nothing stops."""
    account = "111122223333"
    world.subscribe(account)
    world.register(account)
    lifecycle, t = world.lifecycle(), world.now_ms - 10_000
    lifecycle.handle(parse(world.license_event(account, "Updated", t)))  # type: ignore[arg-type]
    world.seller_events()
    lifecycle.handle(parse(world.agreement_event(account, "Ended", t + 1000)))  # type: ignore[arg-type]
    assert world.subscriber(account)["status"] == "active"
    assert world.seller_events() == []
    world.harness.record(account, 4, hours_ago=0)  # usage between the two events is taken


def test_an_agreement_no_license_event_claims_is_forgotten_in_time(world: World) -> None:
    world.subscribe("111122223333")
    world.lifecycle().handle(parse(world.agreement_event("111122223333", "Created", world.now_ms)))  # type: ignore[arg-type]
    (held,) = world.held()
    assert held["heldFor"] == f"agreement#{world.agreements['111122223333']}"
    assert held["expiresAt"] > world.harness.now[0] + 7 * 24 * 3600  # removed by the table's TTL
    assert world.harness.subscribers_table.scan()["Items"] == []  # the subscribers table holds subscribers


def test_another_products_license_event_is_ignored(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    event = json.loads(world.license_event(account, "Updated", world.now_ms))
    event["detail"]["product"]["code"] = "SOMEONE_ELSES"
    outcome = world.lifecycle().handle(parse(json.dumps(event)))  # type: ignore[arg-type]
    assert outcome.action == "ignored" and "another listing" in outcome.reason


def test_a_poison_message_is_reported_and_the_rest_of_the_batch_is_processed(world: World) -> None:
    first, second = "111122223333", "444455556666"
    for account in (first, second):
        world.subscribe(account)
        world.register(account)
    event = world.sqs_event(
        world.license_event(first, "Updated", world.now_ms),
        '{"detail-type": "License Updated - Manufacturer", "source": "aws.agreement-marketplace"',
        world.license_event(second, "Updated", world.now_ms),
    )
    response = lifecycle_handler.handler(event, Context())
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert world.subscriber(first)["status"] == world.subscriber(second)["status"] == "active"


def test_a_cancellation_bills_the_pending_usage_at_once_and_nothing_after(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    world.register(account)
    harness, lifecycle = world.harness, world.lifecycle()
    world.marketplace_says(account, "subscribe-success")
    lifecycle.handle(parse(world.license_event(account, "Updated", world.now_ms - 2 * HOUR_MS)))  # type: ignore[arg-type]
    harness.record(account, 5, hours_ago=1)
    harness.record(account, 7, hours_ago=0)  # the current hour: normally sent after it ends
    assert harness.billed() == {}

    world.marketplace_says(account, "unsubscribe-pending")
    outcome = lifecycle.handle(parse(world.license_event(account, "Deprovisioned", world.now_ms)))  # type: ignore[arg-type]
    assert outcome.flushed
    billed = harness.billed()
    assert sorted(billed.values()) == [5, 7]  # both hours, inside the final hour Marketplace allows
    assert {customer for customer, _, _ in billed} == {account}

    # Usage the product reports in the final hour is still taken; Ended changes nothing, and the next
    # metering run sends the leaving license's current hour.
    harness.record(account, 2, hours_ago=0, dimension=DIMENSIONS[2])
    ended = lifecycle.handle(parse(world.agreement_event(account, "Ended", world.now_ms + 1000)))  # type: ignore[arg-type]
    assert not ended.flushed and ended.status == "cancel-pending"
    harness.run()
    billed = harness.billed()
    assert sorted(billed.values()) == [2, 5, 7]
    # Once that hour was sent, more usage for it cannot be billed, and the answer says why.
    with pytest.raises(UsageRejected) as refused:
        harness.record(account, 3, hours_ago=0, dimension=DIMENSIONS[2])
    assert refused.value.code == "subscription_ending"
    harness.advance(3600)
    assert lifecycle.close_ended() == [account]
    with pytest.raises(UsageRejected, match="cancelled"):  # no more usage is taken
        harness.record(account, 3, hours_ago=0, dimension=DIMENSIONS[1])
    harness.advance(3 * 3600)
    report = harness.run()
    assert report.sent == 0 and harness.billed() == billed


def test_the_final_hour_closes_a_cancel_pending_subscription(world: World) -> None:
    account = "111122223333"
    world.subscribe(account)
    world.register(account)
    lifecycle = world.lifecycle()
    lifecycle.handle(parse(world.license_event(account, "Updated", world.now_ms - HOUR_MS)))  # type: ignore[arg-type]
    lifecycle.handle(parse(world.license_event(account, "Deprovisioned", world.now_ms)))  # type: ignore[arg-type]
    world.seller_events()
    assert lifecycle.close_ended() == []  # the final hour is not over yet
    world.harness.advance(3601)
    assert lifecycle.close_ended() == [account]
    assert world.subscriber(account)["status"] == "cancelled"
    assert [e["detail-type"] for e in world.seller_events()] == ["subscriber.deactivated"]


def test_legacy_sns_notifications_before_and_after_registration(legacy_world: World) -> None:
    world, account, t = legacy_world, "111122223333", legacy_world.now_ms - 60_000
    world.subscribe(account)
    lifecycle = world.lifecycle()
    early = lifecycle.handle(parse(world.sns_notification(account, "subscribe-success", t)))  # type: ignore[arg-type]
    assert early.published == []  # nobody to tell yet: the buyer has not registered
    assert world.register(account) is not None
    item = world.subscriber(account)
    assert (item["status"], item["activatedAt"]) == ("active", t)  # the early fact, folded in
    assert world.held() == []  # claimed, so gone
    assert world.others_than(account) == []

    lifecycle.handle(parse(world.sns_notification(account, "unsubscribe-pending", t + 1000)))  # type: ignore[arg-type]
    assert world.subscriber(account)["status"] == "cancel-pending"
    lifecycle.handle(parse(world.sns_notification(account, "unsubscribe-success", t + 2000)))  # type: ignore[arg-type]
    assert world.subscriber(account)["status"] == "cancelled"
    assert [e["detail-type"] for e in world.seller_events()] == [
        "subscriber.cancel-pending",
        "subscriber.deactivated",
    ]

    failing = "444455556666"
    world.subscribe(failing)
    world.register(failing)
    lifecycle.handle(parse(world.sns_notification(failing, "subscribe-fail", t)))  # type: ignore[arg-type]
    assert world.subscriber(failing)["status"] == "failed"


def test_a_legacy_notification_landing_while_the_buyer_registers_is_not_lost(legacy_world: World) -> None:
    """The race: registration reads the buyer's early facts, a notification lands, registration goes on."""
    world, account, t = legacy_world, "111122223333", legacy_world.now_ms - 60_000
    world.subscribe(account)
    lifecycle = world.lifecycle()
    lifecycle.handle(parse(world.sns_notification(account, "subscribe-success", t)))  # type: ignore[arg-type]
    table = world.harness.held_events_table

    class Racing:
        """The held-events table, with unsubscribe-pending arriving right after the first read."""

        landed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(table, name)

        def get_item(self, **request: Any) -> Any:
            answer = table.get_item(**request)
            if not Racing.landed:
                Racing.landed = True
                lifecycle.handle(parse(world.sns_notification(account, "unsubscribe-pending", t + 1000)))  # type: ignore[arg-type]
            return answer

    assert world.register(account, held=Racing()) is not None
    assert Racing.landed
    item = world.subscriber(account)
    assert (item["status"], item["activatedAt"], item["cancelRequestedAt"]) == ("cancel-pending", t, t + 1000)
    assert world.held() == []  # gone, and only once nothing new was in it
    assert world.others_than(account) == []


def test_a_legacy_notification_after_registration_read_finds_the_subscriber(legacy_world: World) -> None:
    world, account, t = legacy_world, "111122223333", legacy_world.now_ms - 60_000
    world.subscribe(account)
    world.register(account)
    outcome = world.lifecycle().handle(parse(world.sns_notification(account, "subscribe-success", t)))  # type: ignore[arg-type]
    assert outcome.action == "applied" and world.subscriber(account)["status"] == "active"
    assert world.held() == []
    assert world.others_than(account) == []


def test_an_unsubscribe_success_with_no_pending_first_still_bills_the_usage_taken(
    legacy_world: World,
) -> None:
    world, account = legacy_world, "111122223333"
    world.subscribe(account)
    world.register(account)
    harness, lifecycle = world.harness, world.lifecycle()
    world.marketplace_says(account, "subscribe-success")
    lifecycle.handle(parse(world.sns_notification(account, "subscribe-success", world.now_ms - HOUR_MS)))  # type: ignore[arg-type]
    harness.record(account, 5, hours_ago=0)  # usage earlier in this hour
    world.marketplace_says(account, "unsubscribe-success")  # no unsubscribe-pending came first
    outcome = lifecycle.handle(parse(world.sns_notification(account, "unsubscribe-success", world.now_ms)))  # type: ignore[arg-type]
    assert outcome.flushed and outcome.status == "cancelled"
    assert sorted(harness.billed().values()) == [5]  # sent before the status closed metering, and billed
    assert [r["status"] for r in harness.emulator.billed(PRODUCT)] == ["Success"]


def test_agreement_facts_an_earlier_version_held_among_subscribers_are_claimed_and_removed(
    world: World,
) -> None:
    """An upgrade loses nothing: what was held in the subscribers table is found there, applied, removed."""
    account = "111122223333"
    world.subscribe(account)
    created = world.now_ms - 60_000
    former = {"customerAWSAccountId": f"agreement#{world.agreements[account]}", "subscriptionKey": PRODUCT}
    world.harness.subscribers_table.put_item(
        Item={**former, "activatedAt": created, "agreementId": world.agreements[account], "expiresAt": 1}
    )
    world.register(account)
    world.lifecycle().handle(parse(world.license_event(account, "Updated", created - 1000)))  # type: ignore[arg-type]
    item = world.subscriber(account)
    assert (item["status"], item["activatedAt"]) == ("active", created)  # the held fact, not the older one
    assert world.others_than(account) == [] and world.held() == []


def test_legacy_facts_an_earlier_version_held_among_subscribers_are_folded_in_at_registration(
    legacy_world: World,
) -> None:
    world, account, t = legacy_world, "111122223333", legacy_world.now_ms - 60_000
    world.subscribe(account)
    world.harness.subscribers_table.put_item(
        Item={
            "customerAWSAccountId": f"customer-identifier#{world.customer_identifiers[account]}",
            "subscriptionKey": PRODUCT,
            "customerIdentifier": world.customer_identifiers[account],
            "activatedAt": t,
        }
    )
    # A notification after the upgrade, before registration, is held in the new place.
    world.lifecycle().handle(parse(world.sns_notification(account, "unsubscribe-pending", t + 1000)))  # type: ignore[arg-type]
    assert [i["heldFor"] for i in world.held()] == [
        f"customer-identifier#{world.customer_identifiers[account]}"
    ]
    assert world.register(account) is not None
    item = world.subscriber(account)
    assert (item["status"], item["activatedAt"], item["cancelRequestedAt"]) == ("cancel-pending", t, t + 1000)
    assert world.others_than(account) == [] and world.held() == []
