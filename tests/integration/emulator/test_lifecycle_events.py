"""The emulator's lifecycle notifications are AWS's: the documented events, in AWS's order.

Every event the emulator sends is compared with the documented example of its kind
(tests/fixtures/marketplace_events/, whose README names the pages): the same keys at every level, the same
value types, the documented constants. The runtime's parser must read each into the fact AWS's event means.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from moto.server import ThreadedMotoServer

from local.marketplace_emulator import EmulatorServer
from local.marketplace_emulator.notifications import Notifier
from marketplace_saas.lifecycle import parse
from marketplace_saas.models import license_id
from tests.integration.emulator.conftest import Emulator

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "marketplace_events"
SELLER = "111111111111"
CHANNEL_PARTNER = "222222222222"
MID_MONTH = datetime(2026, 11, 16, 10, 20, tzinfo=UTC)
AGREEMENT_STATUSES = set(
    botocore.session.get_session()
    .get_service_model("marketplace-agreement")
    .shape_for("AgreementStatus")
    .enum
)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
# The fact the runtime records for each notification (marketplace_saas.lifecycle).
FACT = {
    "Purchase Agreement Created": "activatedAt",
    "Purchase Agreement Ended": "agreementEndedAt",
    "License Updated": "provisionedAt",
    "License Deprovisioned": "cancelRequestedAt",
    "subscribe-success": "activatedAt",
    "subscribe-fail": "failedAt",
    "unsubscribe-pending": "cancelRequestedAt",
    "unsubscribe-success": "cancelledAt",
    "entitlement-updated": None,
}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def documented_event(event: dict[str, Any]) -> dict[str, Any]:
    """The documented example of the event's kind (the renewal has its own)."""
    name = event["detail-type"].lower().replace(" - ", "-").replace(" ", "-")
    if (
        name == "purchase-agreement-created-proposer"
        and event["detail"]["agreement"].get("intent") == "RENEW"
    ):
        name += "-renew"
    document: dict[str, Any] = fixture(f"eventbridge/{name}.json")
    return document


def shape_problems(
    sent: Any, documented: Any, path: str = "", nullable: frozenset[str] = frozenset()
) -> list[str]:
    """Where `sent` differs in shape from `documented`: keys at every level, and the type of every value."""
    where = path or "."
    if isinstance(documented, dict):
        if not isinstance(sent, dict):
            return [f"{where}: {type(sent).__name__}, documented an object"]
        problems = []
        if missing := sorted(documented.keys() - sent.keys()):
            problems.append(f"{where}: documented {missing} are missing")
        if extra := sorted(sent.keys() - documented.keys()):
            problems.append(f"{where}: {extra} are not documented")
        for key in sorted(documented.keys() & sent.keys()):
            problems += shape_problems(sent[key], documented[key], f"{path}.{key}", nullable)
        return problems
    if isinstance(documented, list):
        if not isinstance(sent, list) or len(sent) != len(documented):
            return [f"{where}: {sent!r}, documented a list of {len(documented)}"]
        return [p for item in sent for p in shape_problems(item, documented[0], f"{path}[]", nullable)]
    if documented is None:
        return [] if sent is None else [f"{where}: {sent!r}, documented null"]
    if sent is None and path in nullable:
        return []
    if type(sent) is not type(documented):
        return [f"{where}: {type(sent).__name__} {sent!r}, documented {type(documented).__name__}"]
    return []


def check_documented(event: dict[str, Any], resold: bool = False) -> None:
    """The event has its documented example's shape and constants (raises with every difference)."""
    documented = documented_event(event)
    # "Resale Authorization Id ... in case of Marketplace direct offer (MPPO), this value would be null."
    nullable = frozenset() if resold else frozenset({".detail.resaleAuthorization.id"})
    problems = shape_problems(event, documented, nullable=nullable)
    assert not problems, f"{event['detail-type']} is not shaped as documented:\n" + "\n".join(problems)
    for key in ("version", "source", "region", "detail-type"):
        assert event[key] == documented[key], key
    detail = event["detail"]
    assert detail["catalog"] == documented["detail"]["catalog"] == "AWSMarketplace"
    agreement_id = detail["agreement"]["id"]
    assert re.fullmatch(r"agmt-[a-z0-9]+", agreement_id)
    # The documented resource is the agreement's ARN; so is the emulator's.
    assert documented["resources"] == [
        f"arn:aws:aws-marketplace::aws:agreement:{documented['detail']['agreement']['id']}"
    ]
    assert event["resources"] == [f"arn:aws:aws-marketplace::aws:agreement:{agreement_id}"]
    assert event["account"] == SELLER and ISO_UTC.match(event["time"])
    assert detail["proposer"]["accountId"] == (CHANNEL_PARTNER if resold else SELLER)
    if "resaleAuthorization" in detail:  # populated for a channel partner's offer only
        assert (detail["resaleAuthorization"]["id"] is not None) == resold
    if "status" in detail["agreement"]:
        assert detail["agreement"]["status"] in AGREEMENT_STATUSES
    for key in ("acceptanceTime", "startTime", "endTime"):
        if key in detail["agreement"]:
            assert ISO_UTC.match(detail["agreement"][key]), key


def check_documented_sns(message: dict[str, Any]) -> None:
    documented = fixture(f"sns/{message['action']}.json")
    problems = shape_problems(message, documented)
    assert not problems, f"SNS {message['action']} is not shaped as documented:\n" + "\n".join(problems)
    if "isFreeTrialTermPresent" in message:
        assert message["isFreeTrialTermPresent"] in ("true", "false")  # a string, as documented


def summary(notification: dict[str, Any]) -> tuple[str, ...]:
    """(detail-type, agreement status or intent) of an EventBridge notification, (action,) of an SNS one."""
    if notification["channel"] == "sns":
        return ("sns", notification["message"]["action"])
    agreement = notification["event"]["detail"]["agreement"]
    return (notification["name"], agreement.get("intent") or "", agreement.get("status") or "")


def post(emulator: Emulator, kind: str, code: str, buyer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    status, body = emulator.event(kind, code, licenseArn=buyer["licenseArn"], **extra)
    assert status == 200, body
    return body


@pytest.fixture
def clock(emulator: Emulator) -> datetime:
    emulator.set_clock(MID_MONTH)
    return MID_MONTH


def test_a_direct_sellers_license_from_purchase_to_cancellation(emulator: Emulator, clock: datetime) -> None:
    emulator.product("PROD")
    buyer = emulator.subscribe("PROD", customerAWSAccountId="123456789012")
    first_agreement = buyer["agreementId"]
    post(emulator, "entitlement-updated", "PROD", buyer)
    renewed = post(emulator, "renew", "PROD", buyer)
    assert renewed["status"] == "active" and renewed["agreementId"] != first_agreement
    cancelled = post(emulator, "unsubscribe-pending", "PROD", buyer, endedToDeprovisionedSeconds=0)
    assert cancelled["status"] == "cancel-pending"

    sent = emulator.notifications()
    assert [summary(n) for n in sent] == [
        ("Purchase Agreement Created - Proposer", "NEW", "ACTIVE"),
        ("License Updated - Manufacturer", "", ""),
        ("License Updated - Manufacturer", "", ""),
        ("Purchase Agreement Created - Proposer", "RENEW", "ACTIVE"),
        ("Purchase Agreement Ended - Proposer", "", "RENEWED"),
        # Ended comes first and ends nothing by itself; License Deprovisioned opens the final hour.
        ("Purchase Agreement Ended - Proposer", "", "CANCELLED"),
        ("License Deprovisioned - Manufacturer", "", ""),
    ]
    events = [n["event"] for n in sent]
    for event in events:
        check_documented(event)
        assert event["detail"]["acceptor"] == {"accountId": "123456789012"}
    agreements = [e["detail"]["agreement"]["id"] for e in events]
    new_agreement = renewed["agreementId"]
    assert agreements == [first_agreement] * 3 + [new_agreement, first_agreement] + [new_agreement] * 2
    assert events[3]["detail"]["agreement"]["previousAgreementId"] == first_agreement
    for license_event in (events[1], events[2], events[6]):
        assert license_event["detail"]["license"]["arn"] == buyer["licenseArn"]
        assert license_event["detail"]["product"]["code"] == "PROD"
        assert license_event["detail"]["product"]["id"].startswith("prod-")
    # No invented members: no license status, no SNS for a product that does not use it.
    assert all("status" not in e["detail"].get("license", {}) for e in events)
    assert emulator.notifications("sns") == []


def test_a_resold_product_gets_manufacturer_agreement_events(emulator: Emulator, clock: datetime) -> None:
    assert emulator.product("RESOLD", resold=True)["resold"] is True
    buyer = emulator.subscribe("RESOLD")
    post(emulator, "renew", "RESOLD", buyer)
    post(emulator, "unsubscribe-success", "RESOLD", buyer, endedToDeprovisionedSeconds=0)
    sent = emulator.notifications()
    assert [summary(n) for n in sent] == [
        ("Purchase Agreement Created - Manufacturer", "NEW", "ACTIVE"),
        ("License Updated - Manufacturer", "", ""),
        ("Purchase Agreement Created - Manufacturer", "RENEW", "ACTIVE"),
        ("Purchase Agreement Ended - Manufacturer", "", "RENEWED"),
        ("Purchase Agreement Ended - Manufacturer", "", "CANCELLED"),
        ("License Deprovisioned - Manufacturer", "", ""),
    ]
    for notification in sent:
        check_documented(notification["event"], resold=True)


def test_a_failed_subscription_withdraws_the_license_and_announces_no_agreement(
    emulator: Emulator, clock: datetime
) -> None:
    emulator.product("PROD")
    buyer = emulator.subscribe("PROD", status="pending")
    assert emulator.notifications() == []  # nothing until Marketplace confirms or refuses
    assert post(emulator, "subscribe-fail", "PROD", buyer)["status"] == "failed"
    (deprovisioned,) = emulator.notifications()
    assert summary(deprovisioned) == ("License Deprovisioned - Manufacturer", "", "")
    check_documented(deprovisioned["event"])
    # The runtime reads a license that ends before it was ever active as a failed subscription.
    notice = parse(json.dumps(deprovisioned["event"]))
    assert notice is not None and notice.fact == "cancelRequestedAt"


def test_legacy_products_also_get_the_documented_sns_messages(emulator: Emulator, clock: datetime) -> None:
    emulator.product("LEGACY", legacy=True, pricingModel="contract-with-consumption")
    emulator.product("LEGSUB", legacy=True)
    buyer = emulator.subscribe("LEGACY", offerType="free-trial")
    post(emulator, "entitlement-updated", "LEGACY", buyer)
    post(emulator, "renew", "LEGACY", buyer)
    post(emulator, "unsubscribe-pending", "LEGACY", buyer, endedToDeprovisionedSeconds=0)
    post(emulator, "unsubscribe-success", "LEGACY", buyer)
    failing = emulator.subscribe("LEGACY", status="pending")
    post(emulator, "subscribe-fail", "LEGACY", failing)
    subscription_only = emulator.subscribe("LEGSUB")
    post(emulator, "entitlement-updated", "LEGSUB", subscription_only)

    sns = emulator.notifications("sns")
    assert [(n["message"]["action"], n["topicArn"].rsplit(":", 1)[1]) for n in sns] == [
        ("subscribe-success", "aws-mp-subscription-notification-LEGACY"),
        ("entitlement-updated", "aws-mp-entitlement-notification-LEGACY"),
        ("entitlement-updated", "aws-mp-entitlement-notification-LEGACY"),  # the renewal
        ("unsubscribe-pending", "aws-mp-subscription-notification-LEGACY"),
        ("unsubscribe-success", "aws-mp-subscription-notification-LEGACY"),
        ("subscribe-fail", "aws-mp-subscription-notification-LEGACY"),
        # LEGSUB's subscribe-success; its entitlement change has no topic (only contracts have one).
        ("subscribe-success", "aws-mp-subscription-notification-LEGSUB"),
    ]
    for notification in sns:
        check_documented_sns(notification["message"])
        assert notification["message"]["customer-identifier"] in (
            buyer["customerIdentifier"],
            failing["customerIdentifier"],
            subscription_only["customerIdentifier"],
        )
    assert sns[0]["message"]["isFreeTrialTermPresent"] == "true"
    assert sns[-1]["message"]["isFreeTrialTermPresent"] == "false"
    # The offer a subscription was bought with, only where documented (subscribe-success/-fail).
    offers = {s["licenseArn"]: s["offerId"] for s in emulator.subscriptions("LEGACY")}
    assert sns[0]["message"]["offer-identifier"] == offers[buyer["licenseArn"]]
    assert sns[5]["message"]["offer-identifier"] == offers[failing["licenseArn"]]
    # EventBridge gets its documented events as well; unsubscribe-success after pending adds none there.
    for notification in emulator.notifications("eventbridge"):
        check_documented(notification["event"])
    after_pending = [e for e in emulator.events() if e["type"] == "unsubscribe-success"]
    assert [summary(n) for n in after_pending[0]["notifications"]] == [("sns", "unsubscribe-success")]


def test_every_notification_reads_as_its_fact_and_times_keep_the_order(
    emulator: Emulator, clock: datetime
) -> None:
    emulator.product("LEGACY", legacy=True, pricingModel="contract")
    buyer = emulator.subscribe("LEGACY")
    post(emulator, "entitlement-updated", "LEGACY", buyer)
    post(emulator, "renew", "LEGACY", buyer)
    post(emulator, "unsubscribe-success", "LEGACY", buyer, endedToDeprovisionedSeconds=0)
    sent = emulator.notifications()
    times = [datetime.fromisoformat(n["time"].replace("Z", "+00:00")) for n in sent]
    # Milliseconds, strictly increasing: events of one second keep their order.
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(MID_MONTH <= moment < MID_MONTH.replace(minute=21) for moment in times)
    for notification, moment in zip(sent, times, strict=True):
        if notification["channel"] == "eventbridge":
            event = notification["event"]
            assert event["time"] == notification["time"]
            notice = parse(json.dumps(event))
            assert notice is not None
            assert notice.fact == FACT[event["detail-type"].rsplit(" - ", 1)[0]]
            assert notice.at_ms == int(moment.timestamp() * 1000)
            if notice.license_arn:
                assert license_id(notice.license_arn) == license_id(buyer["licenseArn"])
        else:
            message = notification["message"]
            notice = parse(json.dumps(message), sent_at_ms=int(moment.timestamp() * 1000))
            assert notice is not None and notice.fact == FACT[message["action"]]
            assert notice.customer_identifier == buyer["customerIdentifier"]


def test_license_deprovisioned_follows_purchase_agreement_ended_after_the_gap(
    emulator: Emulator, clock: datetime
) -> None:
    emulator.product("PROD")
    buyer = emulator.subscribe("PROD")
    started = time.monotonic()
    answer = post(emulator, "unsubscribe-pending", "PROD", buyer, endedToDeprovisionedSeconds=0.5)
    assert time.monotonic() - started < 0.5  # the answer does not wait for the gap
    assert answer["status"] == "cancel-pending"
    ended, deprovisioned = answer["notifications"]
    assert (ended["name"], ended["state"]) == ("Purchase Agreement Ended - Proposer", "delivered")
    assert (deprovisioned["name"], deprovisioned["state"]) == (
        "License Deprovisioned - Manufacturer",
        "scheduled",
    )
    gap = datetime.fromisoformat(deprovisioned["time"].replace("Z", "+00:00")) - datetime.fromisoformat(
        ended["time"].replace("Z", "+00:00")
    )
    assert gap.total_seconds() == 0.5
    deadline = time.monotonic() + 5
    while emulator.notifications()[-1]["state"] == "scheduled":
        assert time.monotonic() < deadline, "License Deprovisioned was never delivered"
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.5
    assert emulator.notifications()[-1]["event"] == deprovisioned["event"]


def test_a_clock_set_past_the_gap_delivers_at_once_and_a_reset_forgets_what_is_to_come(
    emulator: Emulator, clock: datetime
) -> None:
    emulator.product("PROD")
    first = emulator.subscribe("PROD")
    second = emulator.subscribe("PROD")
    post(emulator, "unsubscribe-pending", "PROD", first, endedToDeprovisionedSeconds=600)
    assert emulator.notifications()[-1]["state"] == "scheduled"
    emulator.shift_clock(601)
    assert emulator.notifications()[-1]["state"] == "delivered"

    post(emulator, "unsubscribe-pending", "PROD", second, endedToDeprovisionedSeconds=0.2)
    assert emulator.admin("POST", "/_emulator/reset", {})[0] == 200
    time.sleep(0.4)
    assert emulator.events() == []


def test_the_default_gap_is_a_few_seconds(emulator: Emulator, clock: datetime) -> None:
    emulator.product("PROD")
    buyer = emulator.subscribe("PROD")
    ended, deprovisioned = post(emulator, "unsubscribe-pending", "PROD", buyer)["notifications"]
    seconds = (
        datetime.fromisoformat(deprovisioned["time"].replace("Z", "+00:00"))
        - datetime.fromisoformat(ended["time"].replace("Z", "+00:00"))
    ).total_seconds()
    assert 1 <= seconds <= 60 and deprovisioned["state"] == "scheduled"


@pytest.mark.parametrize(
    ("setup", "kind", "says"),
    [
        ("pending", "unsubscribe-pending", "is pending; only an active license can be cancelled"),
        ("pending", "unsubscribe-success", "is pending; only an active or cancel-pending"),
        ("pending", "renew", "is pending; only an active license renews"),
        ("pending", "entitlement-updated", "is pending"),
        ("active", "subscribe-fail", "is active; subscribe-fail is for a subscription that never started"),
        ("cancelled", "unsubscribe-pending", "is cancelled; only an active license can be cancelled"),
        ("cancelled", "renew", "is cancelled; only an active license renews"),
    ],
)
def test_events_a_license_in_its_state_cannot_have_are_refused(
    emulator: Emulator, clock: datetime, setup: str, kind: str, says: str
) -> None:
    emulator.product("PROD")
    buyer = emulator.subscribe("PROD", status="active" if setup != "pending" else "pending")
    if setup == "cancelled":
        post(emulator, "unsubscribe-success", "PROD", buyer, endedToDeprovisionedSeconds=0)
    before = emulator.events()
    status, body = emulator.event(kind, "PROD", licenseArn=buyer["licenseArn"])
    assert status == 409, body
    assert says in body["message"] and buyer["licenseArn"] in body["message"]
    assert emulator.events() == before  # nothing happened, nothing was sent
    assert emulator.subscriptions("PROD")[0]["status"] == setup


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"endedToDeprovisionedSeconds": -1}, "between 0 and 3600"),
        ({"endedToDeprovisionedSeconds": 3601}, "between 0 and 3600"),
        ({"endedToDeprovisionedSeconds": "5"}, "a number of seconds"),
        ({"endedToDeprovisionedSeconds": True}, "a number of seconds"),
        ({"endedToDeprovisionedSecond": 5}, "unknown field 'endedToDeprovisionedSecond'"),
        ({"type": "cancel"}, "type: one of subscribe-success, subscribe-fail"),
    ],
)
def test_bad_event_requests_are_refused_with_what_is_wrong(
    emulator: Emulator, extra: dict[str, Any], says: str
) -> None:
    emulator.product("PROD")
    buyer = emulator.subscribe("PROD")
    body = {"productCode": "PROD", "licenseArn": buyer["licenseArn"], "type": "unsubscribe-pending", **extra}
    status, answer = emulator.admin("POST", "/_emulator/events", body)
    assert status == 400 and says in answer["message"], answer
    assert emulator.subscriptions("PROD")[0]["status"] == "active"


@pytest.mark.parametrize("resold", ["yes", 1, None])
def test_resold_is_true_or_false(emulator: Emulator, resold: Any) -> None:
    status, answer = emulator.admin("POST", "/_emulator/products", {"productCode": "X", "resold": resold})
    assert status == 400 and "resold: true" in answer["message"]


# --- delivered for real: EventBridge and SNS (moto's servers) into queues --------------------------------


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, Any, str, str]]:
    """An emulator delivering to moto's EventBridge and SNS, whose rule and topics feed two queues."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    try:
        sqs = boto3.client("sqs", endpoint_url=moto_url)
        events = boto3.client("events", endpoint_url=moto_url)
        sns = boto3.client("sns", endpoint_url=moto_url)
        queues = {}
        for name in ("eventbridge", "sns"):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            queues[name] = (url, arn)
        events.put_rule(
            Name="marketplace", EventPattern=json.dumps({"source": ["aws.agreement-marketplace"]})
        )
        events.put_targets(Rule="marketplace", Targets=[{"Id": "q", "Arn": queues["eventbridge"][1]}])
        for topic in ("subscription", "entitlement"):
            topic_arn = sns.create_topic(Name=f"aws-mp-{topic}-notification-LEGACY")["TopicArn"]
            sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queues["sns"][1])
        with EmulatorServer(notifier=Notifier(moto_url, moto_url)) as server:
            yield Emulator(server), sqs, queues["eventbridge"][0], queues["sns"][0]
    finally:
        moto.stop()


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    received = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return received


def test_delivered_events_are_the_documented_ones_and_the_runtime_reads_them(
    delivered: tuple[Emulator, Any, str, str],
) -> None:
    emulator, sqs, eventbridge_queue, sns_queue = delivered
    emulator.set_clock(MID_MONTH)
    emulator.product("LEGACY", legacy=True, pricingModel="contract")
    buyer = emulator.subscribe("LEGACY")
    post(emulator, "entitlement-updated", "LEGACY", buyer)
    post(emulator, "unsubscribe-pending", "LEGACY", buyer, endedToDeprovisionedSeconds=0)
    assert all(d["ok"] for d in emulator.events()[-1]["deliveries"]), emulator.events()[-1]["deliveries"]

    events = drain(sqs, eventbridge_queue)
    assert sorted(e["detail-type"] for e in events) == sorted(
        [
            "Purchase Agreement Created - Proposer",
            "License Updated - Manufacturer",
            "License Updated - Manufacturer",
            "Purchase Agreement Ended - Proposer",
            "License Deprovisioned - Manufacturer",
        ]
    )
    facts = []
    for event in events:
        # EventBridge adds version, id, account and region itself. (moto's leaves `account` out of what it
        # delivers to a queue, unlike EventBridge: its default input template has none.)
        documented = {key: value for key, value in documented_event(event).items() if key != "account"}
        direct = frozenset({".detail.resaleAuthorization.id"})
        problems = shape_problems(event, documented, nullable=direct)
        assert not problems, f"{event['detail-type']} delivered:\n" + "\n".join(problems)
        notice = parse(json.dumps(event))
        assert notice is not None
        facts.append(notice.fact)
    assert sorted(facts) == sorted(
        ["activatedAt", "provisionedAt", "provisionedAt", "agreementEndedAt", "cancelRequestedAt"]
    )

    envelopes = drain(sqs, sns_queue)
    messages = [json.loads(envelope["Message"]) for envelope in envelopes]
    assert sorted(m["action"] for m in messages) == [
        "entitlement-updated",
        "subscribe-success",
        "unsubscribe-pending",
    ]
    for envelope, message in zip(envelopes, messages, strict=True):
        check_documented_sns(message)
        notice = parse(json.dumps(envelope))
        assert notice is not None and notice.fact == FACT[message["action"]]
        assert notice.customer_identifier == buyer["customerIdentifier"]
