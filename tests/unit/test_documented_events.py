"""The runtime's parser reads every event AWS documents into the fact it should record.

The events are AWS's own examples, copied into tests/fixtures/marketplace_events/ (its README names the
page each comes from and every value that had to be filled in).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from marketplace_saas.lifecycle import parse
from marketplace_saas.models import license_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "marketplace_events"
DOCUMENTED_TIME_MS = int(datetime(2024, 8, 30, 21, 36, 3, tzinfo=UTC).timestamp() * 1000)
BUYER = "845735284135"
AGREEMENT = "agmt-4mwg1nevbokzw95eca5797ixs"
DOCUMENTED_LICENSE = "aws:license-manager:us-east-1:123456789012:l-e52ca6f38bf84d0fafb8802ca15ac11x"
SNS_CUSTOMER = ("X01EXAMPLEX", "n0123EXAMPLEXXXXXXXXXXXX")  # customer-identifier, product-code


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


def sns_envelope(message: dict[str, Any], timestamp: str = "2024-08-30T21:36:03.000Z") -> str:
    """The message as SNS delivers it to a subscribed queue (raw delivery off)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:aws-mp-subscription-notification-"
            + message["product-code"],
            "Message": json.dumps(message),
            "Timestamp": timestamp,
            "SignatureVersion": "1",
        }
    )


@pytest.mark.parametrize(
    ("name", "fact", "refresh"),
    [
        ("purchase-agreement-created-proposer.json", "activatedAt", False),
        ("purchase-agreement-created-proposer-renew.json", "activatedAt", False),
        ("purchase-agreement-created-manufacturer.json", "activatedAt", False),
        # Changed terms: the entitlements are fetched again; whether the license is active does not change.
        ("purchase-agreement-amended-proposer.json", None, True),
        ("purchase-agreement-amended-manufacturer.json", None, True),
        # Recorded, and ends nothing by itself (License Deprovisioned does).
        ("purchase-agreement-ended-proposer.json", "agreementEndedAt", False),
        ("purchase-agreement-ended-manufacturer.json", "agreementEndedAt", False),
    ],
)
def test_agreement_events_as_documented(name: str, fact: str | None, refresh: bool) -> None:
    event = fixture(f"eventbridge/{name}")
    notice = parse(json.dumps(event))
    assert notice is not None
    assert (notice.fact, notice.refresh_entitlements, notice.channel) == (fact, refresh, "eventbridge")
    assert notice.name == event["detail-type"]
    assert notice.at_ms == DOCUMENTED_TIME_MS  # the event's own time
    assert notice.account == BUYER  # detail.acceptor.accountId: the buyer
    assert notice.agreement_id == event["detail"]["agreement"]["id"]
    # Agreement events name no license; the product of the renewal example is not read as a product code.
    assert notice.license_arn is None and notice.product_code is None


def test_a_renewal_names_the_new_agreement() -> None:
    notice = parse(json.dumps(fixture("eventbridge/purchase-agreement-created-proposer-renew.json")))
    assert notice is not None and notice.agreement_id == "agmt-newrenewalagreementid"


@pytest.mark.parametrize(
    ("name", "fact"),
    [
        ("license-updated-manufacturer.json", "provisionedAt"),
        ("license-deprovisioned-manufacturer.json", "cancelRequestedAt"),  # opens the final hour
    ],
)
def test_license_events_as_documented(name: str, fact: str) -> None:
    event = fixture(f"eventbridge/{name}")
    notice = parse(json.dumps(event))
    assert notice is not None
    assert notice.fact == fact
    assert notice.refresh_entitlements == (fact == "provisionedAt")
    assert notice.at_ms == DOCUMENTED_TIME_MS
    assert (notice.account, notice.agreement_id) == (BUYER, AGREEMENT)
    assert notice.product_code == "aw4fgf5tyo5w2ap6fEXAMPLE"
    # The page prints the license ARN without `arn:`; the subscriber is found by the license id alone.
    assert notice.license_arn == DOCUMENTED_LICENSE
    assert license_id(notice.license_arn) == "l-e52ca6f38bf84d0fafb8802ca15ac11x"


def test_an_agreement_about_to_end_is_not_acted_on() -> None:
    assert parse(json.dumps(fixture("eventbridge/purchase-agreement-ending-proposer.json"))) is None


@pytest.mark.parametrize(
    ("name", "fact", "refresh", "free_trial"),
    [
        ("subscribe-success.json", "activatedAt", False, True),
        ("subscribe-fail.json", "failedAt", False, True),
        ("unsubscribe-pending.json", "cancelRequestedAt", False, True),
        ("unsubscribe-success.json", "cancelledAt", False, True),
        ("entitlement-updated.json", None, True, None),  # the entitlement topic carries no free-trial flag
    ],
)
def test_sns_messages_as_documented(
    name: str, fact: str | None, refresh: bool, free_trial: bool | None
) -> None:
    message = fixture(f"sns/{name}")
    for notice in (
        parse(sns_envelope(message)),  # in SNS's envelope: the envelope's time
        parse(json.dumps(message), sent_at_ms=DOCUMENTED_TIME_MS),  # raw delivery: the queue's sent time
    ):
        assert notice is not None
        assert (notice.fact, notice.refresh_entitlements, notice.channel) == (fact, refresh, "sns")
        assert notice.name == message["action"]
        assert notice.at_ms == DOCUMENTED_TIME_MS
        assert (notice.customer_identifier, notice.product_code) == SNS_CUSTOMER
        assert notice.account is None and notice.license_arn is None
        assert notice.free_trial is free_trial


def test_every_fixture_is_tested_and_named_in_the_readme() -> None:
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    files = sorted(path.relative_to(FIXTURES).as_posix() for path in FIXTURES.rglob("*.json"))
    assert len(files) == 15
    for name in files:
        assert Path(name).name in readme, f"{name} is not described in {FIXTURES / 'README.md'}"
        json.loads((FIXTURES / name).read_text(encoding="utf-8"))
