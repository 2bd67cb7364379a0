"""The Agreement API: the emulator's purchase agreements as the seller finds them with boto3, over both
protocols (AWS JSON 1.0, which boto3 picks, and smithy-rpc-v2-cbor, which other SDKs pick).

Every call is checked against botocore's model when the test ends (conftest.py); the session test below
also checks that the answers use every modeled member the emulator can know.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import cbor2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.marketplace_emulator.server import RecordedCall
from local.marketplace_emulator.state import CHANNEL_PARTNER_ACCOUNT, SELLER_ACCOUNT
from tests.integration.emulator import model_check
from tests.integration.emulator.conftest import Emulator, cbor_client
from tests.integration.emulator.test_botocore_model import answered_members, modeled_members

START = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
BUYER = "123456789012"
OTHER_BUYER = "210987654321"
AGREEMENT_TARGET = "AWSMPCommerceService_v20200301"


@pytest.fixture(params=["json", "cbor"])
def client(request: pytest.FixtureRequest, emulator: Emulator) -> Any:
    """The Agreement API client, once per protocol."""
    return request.getfixturevalue("agreement" if request.param == "json" else "cbor_agreement")


def proposer_filters(**extra: str) -> list[dict[str, Any]]:
    filters = [
        {"name": "PartyType", "values": ["Proposer"]},
        {"name": "AgreementType", "values": ["PurchaseAgreement"]},
    ]
    return filters + [{"name": name, "values": [value]} for name, value in extra.items()]


def search(client: Any, sort: dict[str, str] | None = None, page_size: int = 50, **extra: str) -> list[Any]:
    """Every agreement found, through boto3's own paginator."""
    params: dict[str, Any] = {"catalog": "AWSMarketplace", "filters": proposer_filters(**extra)}
    if sort is not None:
        params["sort"] = sort
    pages = client.get_paginator("search_agreements").paginate(
        **params, PaginationConfig={"PageSize": page_size}
    )
    return [summary for page in pages for summary in page["agreementViewSummaries"]]


def ids(summaries: list[dict[str, Any]]) -> list[str]:
    return [summary["agreementId"] for summary in summaries]


def refusal(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    response: dict[str, Any] = error.value.response
    return response


def entitlement_of(client: Any, agreement_id: str) -> dict[str, Any]:
    pages = client.get_paginator("get_agreement_entitlements").paginate(agreementId=agreement_id)
    found = [item for page in pages for item in page["agreementEntitlements"]]
    assert len(found) == 1, found
    return found[0]


def catalog_product_id(emulator: Emulator, code: str) -> str:
    catalog = boto3.client("marketplace-catalog", endpoint_url=emulator.url)
    entities = catalog.list_entities(Catalog="AWSMarketplace", EntityType="SaaSProduct")["EntitySummaryList"]
    return next(entity["EntityId"] for entity in entities if entity["Name"] == code)


# --- what an agreement shows -----------------------------------------------------------------------------


def test_a_purchase_is_an_agreement_of_the_catalogs_product(emulator: Emulator, client: Any) -> None:
    emulator.set_clock(START)
    emulator.product("PROD")
    bought = emulator.subscribe("PROD", customerAWSAccountId=BUYER)
    license_view = emulator.subscriptions("PROD")[0]
    product_id = catalog_product_id(emulator, "PROD")
    assert product_id.startswith("prod-")

    [summary] = search(client, ResourceIdentifier=product_id)
    assert summary["agreementId"] == bought["agreementId"]
    assert summary["agreementType"] == "PurchaseAgreement"
    assert summary["status"] == "ACTIVE"
    assert summary["acceptor"] == {"accountId": BUYER}
    assert summary["proposer"] == {"accountId": SELLER_ACCOUNT}
    assert summary["proposalSummary"] == {
        "resources": [{"id": product_id, "type": "SaaSProduct"}],
        "offerId": license_view["offerId"],
    }
    assert summary["entitlements"] == [{"licenseArn": bought["licenseArn"]}]
    assert summary["initialAgreementId"] == bought["agreementId"]
    assert summary["acceptanceTime"] == summary["startTime"] == summary["lastUpdateTime"]
    assert abs(summary["startTime"] - START) < timedelta(seconds=5)
    # Pay-as-you-go: no end date, so no end-time behaviour either.
    assert "endTime" not in summary and "endTimeBehaviorType" not in summary

    described = client.describe_agreement(agreementId=bought["agreementId"])
    assert described["status"] == "ACTIVE" and described["initialAgreementId"] == bought["agreementId"]
    assert described["proposalSummary"] == summary["proposalSummary"]
    assert "endTime" not in described and "endTimeBehavior" not in described
    assert "estimatedCharges" not in described  # the emulator knows no prices: none invented

    assert entitlement_of(client, bought["agreementId"]) == {
        "resource": {"id": product_id, "type": "SaaSProduct"},
        "status": "PROVISIONED",
        "statusReasonCode": "AGREEMENT_ACTIVE",
        "licenseArn": bought["licenseArn"],
    }


def test_a_contract_ends_a_year_later_and_renews(emulator: Emulator, client: Any) -> None:
    emulator.set_clock(START)
    emulator.product("CONTRACT", ("seats",), pricingModel="contract")
    bought = emulator.subscribe("CONTRACT", customerAWSAccountId=BUYER)
    [summary] = search(client)
    assert summary["endTime"] - summary["startTime"] == timedelta(days=365)
    assert summary["endTimeBehaviorType"] == "RENEW"
    described = client.describe_agreement(agreementId=bought["agreementId"])
    assert described["endTime"] == summary["endTime"]
    offer_id = summary["proposalSummary"]["offerId"]
    assert described["endTimeBehavior"] == {"type": "RENEW", "renewalSummary": {"offerId": offer_id}}


# --- the lifecycle moves the agreements -------------------------------------------------------------------


def test_a_renewal_chain_old_renewed_new_active_same_license_same_initial(
    emulator: Emulator, client: Any
) -> None:
    emulator.set_clock(START)
    emulator.product("CONTRACT", ("seats",), pricingModel="contract")
    bought = emulator.subscribe("CONTRACT", customerAWSAccountId=BUYER)
    [before] = search(client)
    emulator.shift_clock(3600)
    assert emulator.event("renew", "CONTRACT", licenseArn=bought["licenseArn"])[0] == 200
    emulator.shift_clock(3600)
    status, renewed = emulator.event("renew", "CONTRACT", licenseArn=bought["licenseArn"])
    assert status == 200

    chain = search(client, InitialAgreementId=bought["agreementId"], sort={"sortBy": "StartTime"})
    assert [summary["status"] for summary in chain] == ["RENEWED", "RENEWED", "ACTIVE"]
    assert chain[0]["agreementId"] == bought["agreementId"]
    assert chain[-1]["agreementId"] == renewed["agreementId"]
    assert {summary["initialAgreementId"] for summary in chain} == {bought["agreementId"]}
    assert all(summary["entitlements"] == [{"licenseArn": bought["licenseArn"]}] for summary in chain)
    assert chain[0]["lastUpdateTime"] > before["lastUpdateTime"]  # the renewal moved the old one
    assert [entitlement_of(client, summary["agreementId"])["status"] for summary in chain] == [
        "DEPROVISIONED",
        "DEPROVISIONED",
        "PROVISIONED",
    ]
    assert "endTimeBehavior" not in client.describe_agreement(agreementId=bought["agreementId"])
    assert search(client, LicenseArn=bought["licenseArn"], Status="ACTIVE") == [chain[-1]]


def test_a_cancellation_ends_the_agreement_and_the_final_hour_its_license(
    emulator: Emulator, client: Any
) -> None:
    emulator.set_clock(START)
    emulator.product()
    bought = emulator.subscribe(customerAWSAccountId=BUYER)
    [before] = search(client)
    emulator.shift_clock(600)
    assert (
        emulator.event("unsubscribe-pending", licenseArn=bought["licenseArn"], endedToDeprovisionedSeconds=0)[
            0
        ]
        == 200
    )

    [after] = search(client)
    assert after["status"] == "CANCELLED"
    assert after["lastUpdateTime"] > before["lastUpdateTime"]
    assert after["lastUpdateTime"] - before["lastUpdateTime"] >= timedelta(seconds=600)
    assert client.describe_agreement(agreementId=bought["agreementId"])["status"] == "CANCELLED"
    # Its usage is taken for one more hour: provisioned until then, although the agreement has ended.
    assert entitlement_of(client, bought["agreementId"])["status"] == "PROVISIONED"
    assert entitlement_of(client, bought["agreementId"])["statusReasonCode"] == "AGREEMENT_INACTIVE"
    emulator.shift_clock(3601)
    assert entitlement_of(client, bought["agreementId"])["status"] == "DEPROVISIONED"
    # unsubscribe-success changes the license, not the agreement (it had already ended).
    assert emulator.event("unsubscribe-success", licenseArn=bought["licenseArn"])[0] == 200
    assert search(client) == [after]


def test_unsubscribe_success_closes_the_final_hour_at_once(emulator: Emulator, client: Any) -> None:
    emulator.product()
    bought = emulator.subscribe(customerAWSAccountId=BUYER)
    for kind in ("unsubscribe-pending", "unsubscribe-success"):
        assert emulator.event(kind, licenseArn=bought["licenseArn"], endedToDeprovisionedSeconds=0)[0] == 200
    assert entitlement_of(client, bought["agreementId"])["status"] == "DEPROVISIONED"


def test_a_purchase_after_the_end_is_a_new_agreement_of_the_same_license(
    emulator: Emulator, client: Any
) -> None:
    emulator.product()
    bought = emulator.subscribe(customerAWSAccountId=BUYER)
    emulator.event("unsubscribe-success", licenseArn=bought["licenseArn"], endedToDeprovisionedSeconds=0)
    again = emulator.subscribe(customerAWSAccountId=BUYER)
    assert again["licenseArn"] == bought["licenseArn"] and again["agreementId"] != bought["agreementId"]
    found = {summary["agreementId"]: summary for summary in search(client, LicenseArn=bought["licenseArn"])}
    assert {key: found[key]["status"] for key in found} == {
        bought["agreementId"]: "CANCELLED",
        again["agreementId"]: "ACTIVE",
    }
    # A new chain, not a renewal.
    assert found[again["agreementId"]]["initialAgreementId"] == again["agreementId"]
    assert entitlement_of(client, bought["agreementId"])["status"] == "DEPROVISIONED"
    assert entitlement_of(client, again["agreementId"])["status"] == "PROVISIONED"


def test_a_pending_purchase_is_pending_and_a_failed_one_terminated(emulator: Emulator, client: Any) -> None:
    emulator.product()
    pending = emulator.subscribe(customerAWSAccountId=BUYER, status="pending")
    [summary] = search(client)
    assert summary["status"] == "ACTIVE"
    assert entitlement_of(client, pending["agreementId"])["status"] == "PENDING"
    assert entitlement_of(client, pending["agreementId"])["statusReasonCode"] == "PROVISIONING_IN_PROGRESS"
    assert emulator.event("subscribe-fail", licenseArn=pending["licenseArn"])[0] == 200
    [failed] = search(client)
    assert failed["status"] == "TERMINATED" and failed["lastUpdateTime"] > summary["lastUpdateTime"]
    assert entitlement_of(client, pending["agreementId"])["status"] == "FAILED"
    assert entitlement_of(client, pending["agreementId"])["statusReasonCode"] == "INVALID_PAYMENT_INSTRUMENT"


# --- losing an event on purpose ----------------------------------------------------------------------------


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def deliver(self, notification: dict[str, Any]) -> list[dict[str, Any]]:
        self.sent.append(notification)
        return [{"target": "recorder", "ok": True}]


def test_a_lost_cancellation_still_cancels_the_agreement_and_sends_nothing(
    emulator: Emulator, client: Any
) -> None:
    recorder = RecordingNotifier()
    emulator.server.notifier = recorder  # type: ignore[assignment]
    emulator.product("LEGACY", ("users",), legacy=True)
    bought = emulator.subscribe("LEGACY", customerAWSAccountId=BUYER)
    assert len(recorder.sent) == 3  # Created, License Updated, SNS subscribe-success: delivered as usual
    [before] = search(client)

    status, answer = emulator.event(
        "unsubscribe-pending",
        "LEGACY",
        licenseArn=bought["licenseArn"],
        deliver=False,
        endedToDeprovisionedSeconds=60,
    )
    assert status == 200, answer
    assert answer["status"] == "cancel-pending" and answer["deliveries"] == []
    assert [(item["channel"], item["name"]) for item in answer["withheld"]] == [
        ("eventbridge", "Purchase Agreement Ended - Proposer"),
        ("sns", "unsubscribe-pending"),
        ("eventbridge", "License Deprovisioned - Manufacturer"),
    ]
    assert {item["state"] for item in answer["notifications"]} == {"withheld"}
    emulator.shift_clock(120)  # past License Deprovisioned's time: it was never scheduled
    assert len(recorder.sent) == 3
    assert {n["state"] for n in emulator.events()[-1]["notifications"]} == {"withheld"}

    [after] = search(client)
    assert after["status"] == "CANCELLED" and after["lastUpdateTime"] > before["lastUpdateTime"]
    assert emulator.subscriptions("LEGACY")[0]["status"] == "cancel-pending"


def test_a_purchase_can_be_made_without_its_events(emulator: Emulator, client: Any) -> None:
    recorder = RecordingNotifier()
    emulator.server.notifier = recorder  # type: ignore[assignment]
    emulator.product()
    bought = emulator.subscribe(customerAWSAccountId=BUYER, deliver=False)
    assert bought["status"] == "active" and bought["deliveries"] == []
    assert [item["name"] for item in bought["withheld"]] == [
        "Purchase Agreement Created - Proposer",
        "License Updated - Manufacturer",
    ]
    assert recorder.sent == []
    [summary] = search(client)
    assert summary["agreementId"] == bought["agreementId"] and summary["status"] == "ACTIVE"
    assert entitlement_of(client, bought["agreementId"])["status"] == "PROVISIONED"
    # Delivered (the default) again from here on.
    assert emulator.event("entitlement-updated", licenseArn=bought["licenseArn"])[0] == 200
    assert [n["event"]["detail-type"] for n in recorder.sent] == ["License Updated - Manufacturer"]


@pytest.mark.parametrize("deliver", ["no", 0, None])
def test_deliver_is_true_or_false(emulator: Emulator, deliver: Any) -> None:
    emulator.product()
    bought = emulator.subscribe(customerAWSAccountId=BUYER)
    status, answer = emulator.event("renew", licenseArn=bought["licenseArn"], deliver=deliver)
    assert status == 400 and "deliver" in answer["message"]
    status, answer = emulator.admin(
        "POST", "/_emulator/subscriptions", {"productCode": "PROD", "deliver": deliver}
    )
    assert status == 400 and "deliver" in answer["message"]
    assert len(emulator.subscriptions()) == 1  # nothing half-done


# --- searching: filters, sorts, pages ----------------------------------------------------------------------


@pytest.fixture
def marketplace(emulator: Emulator) -> dict[str, Any]:
    """Agreements one hour apart: three buyers of PROD (one cancelled), a contract renewed once."""
    emulator.set_clock(START)
    emulator.product("PROD")
    emulator.product("CONTRACT", ("seats",), pricingModel="contract")
    first = emulator.subscribe("PROD", customerAWSAccountId=BUYER)
    emulator.shift_clock(3600)
    second = emulator.subscribe("PROD", customerAWSAccountId=BUYER, newAgreement=True)
    emulator.shift_clock(3600)
    other = emulator.subscribe("PROD", customerAWSAccountId=OTHER_BUYER)
    emulator.shift_clock(3600)
    contract = emulator.subscribe("CONTRACT", customerAWSAccountId=OTHER_BUYER)
    emulator.shift_clock(3600)
    emulator.event(
        "unsubscribe-pending", "PROD", licenseArn=first["licenseArn"], endedToDeprovisionedSeconds=0
    )
    emulator.shift_clock(3600)
    _, renewed = emulator.event("renew", "CONTRACT", licenseArn=contract["licenseArn"])
    offers = {
        s["licenseArn"]: s["offerId"] for code in ("PROD", "CONTRACT") for s in emulator.subscriptions(code)
    }
    return {
        "first": first,
        "second": second,
        "other": other,
        "contract": contract,
        "renewal": renewed["agreementId"],
        "offers": offers,
        "PROD": catalog_product_id(emulator, "PROD"),
        "CONTRACT": catalog_product_id(emulator, "CONTRACT"),
    }


def at(hours: float) -> str:
    return (START + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


FILTER_CASES: list[tuple[str, Any, list[str]]] = [
    # (filter, value (or a key of the marketplace fixture), the agreements found, in creation order)
    ("ResourceIdentifier", "PROD", ["first", "second", "other"]),
    ("ResourceIdentifier", "CONTRACT", ["contract", "renewal"]),
    ("ResourceType", "SaaSProduct", ["first", "second", "other", "contract", "renewal"]),
    ("ResourceType", "AmiProduct", []),
    ("AcceptorAccountId", BUYER, ["first", "second"]),
    ("Status", "CANCELLED", ["first"]),
    ("Status", "RENEWED", ["contract"]),
    ("Status", "ACTIVE", ["second", "other", "renewal"]),
    ("Status", "EXPIRED", []),
    ("OfferId", "offer:second", ["second"]),
    ("LicenseArn", "license:contract", ["contract", "renewal"]),
    ("InitialAgreementId", "agreement:contract", ["contract", "renewal"]),
    ("InitialAgreementId", "agreement:second", ["second"]),
    ("EndTimeBehaviorType", "RENEW", ["contract", "renewal"]),
    ("EndTimeBehaviorType", "EXPIRE", []),
    ("EndTimeBehaviorReasonCode", "NO_RENEWAL_TERM", []),
    ("OfferSetId", "offerset-1", []),
    ("IncludesContactOfType", "ACCEPTOR", []),
    # Created at +0h, +1h, +2h, +3h; cancelled at +4h (first), renewed at +5h (contract; renewal created).
    ("AfterLastUpdateTime", at(3.5), ["first", "contract", "renewal"]),
    ("BeforeLastUpdateTime", at(3.5), ["second", "other"]),
    ("AfterStartTime", at(1.5), ["other", "contract", "renewal"]),
    ("BeforeStartTime", at(1.5), ["first", "second"]),
    # Only contracts have an end: a year after their start.
    ("AfterEndTime", (START + timedelta(days=365, hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ"), ["renewal"]),
    ("BeforeEndTime", (START + timedelta(days=365, hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ"), ["contract"]),
]


@pytest.mark.parametrize(("name", "value", "expected"), FILTER_CASES)
def test_each_filter(
    client: Any, marketplace: dict[str, Any], name: str, value: Any, expected: list[str]
) -> None:
    def agreement_id(key: str) -> str:
        return str(marketplace[key] if key == "renewal" else marketplace[key]["agreementId"])

    if value in ("PROD", "CONTRACT"):
        value = marketplace[value]
    elif isinstance(value, str) and value.startswith("offer:"):
        value = marketplace["offers"][marketplace[value.split(":")[1]]["licenseArn"]]
    elif isinstance(value, str) and value.startswith("license:"):
        value = marketplace[value.split(":")[1]]["licenseArn"]
    elif isinstance(value, str) and value.startswith("agreement:"):
        value = marketplace[value.split(":")[1]]["agreementId"]
    found = search(client, sort={"sortBy": "StartTime"}, **{name: value})
    assert ids(found) == [agreement_id(key) for key in expected]


def test_filters_combine(client: Any, marketplace: dict[str, Any]) -> None:
    found = search(client, ResourceIdentifier=marketplace["PROD"], AcceptorAccountId=BUYER, Status="ACTIVE")
    assert ids(found) == [marketplace["second"]["agreementId"]]
    assert search(client, ResourceIdentifier=marketplace["CONTRACT"], AcceptorAccountId=BUYER) == []
    window = search(
        client, AfterLastUpdateTime=at(1), BeforeLastUpdateTime=at(2), sort={"sortBy": "StartTime"}
    )
    assert ids(window) == [marketplace["second"]["agreementId"]]  # [After, Before): at +1h, not at +2h


@pytest.mark.parametrize("order", ["ASCENDING", "DESCENDING"])
@pytest.mark.parametrize("sort_by", ["LastUpdateTime", "StartTime", "EndTime"])
def test_sorts_both_ways(client: Any, marketplace: dict[str, Any], sort_by: str, order: str) -> None:
    found = search(client, sort={"sortBy": sort_by, "sortOrder": order})
    assert len(found) == 5
    field = {"LastUpdateTime": "lastUpdateTime", "StartTime": "startTime", "EndTime": "endTime"}[sort_by]
    far = datetime.max.replace(tzinfo=UTC)  # no end date: after every dated one
    values = [summary.get(field, far) for summary in found]
    assert values == sorted(values, reverse=order == "DESCENDING")
    if sort_by == "LastUpdateTime":
        # The renewal is made first, then the old agreement ends (Created, then Ended): it moves last.
        by_update = ["second", "other", "first", "renewal", "contract"]
        expected = [marketplace[k] if k == "renewal" else marketplace[k]["agreementId"] for k in by_update]
        assert ids(found) == (expected if order == "ASCENDING" else expected[::-1])


def test_the_default_sort_is_by_end_time_ascending(client: Any, marketplace: dict[str, Any]) -> None:
    found = search(client)
    assert ids(found)[:2] == [marketplace["contract"]["agreementId"], marketplace["renewal"]]


def test_pages_cover_every_agreement_once(
    emulator: Emulator, client: Any, marketplace: dict[str, Any]
) -> None:
    whole = search(client, sort={"sortBy": "LastUpdateTime"})
    first = client.search_agreements(
        catalog="AWSMarketplace", filters=proposer_filters(), sort={"sortBy": "LastUpdateTime"}, maxResults=2
    )
    assert len(first["agreementViewSummaries"]) == 2 and "nextToken" in first
    paged = search(client, sort={"sortBy": "LastUpdateTime"}, page_size=2)
    assert ids(paged) == ids(whole) and len(set(ids(paged))) == 5
    single = search(client, sort={"sortBy": "StartTime", "sortOrder": "DESCENDING"}, page_size=1)
    assert ids(single) == ids(search(client, sort={"sortBy": "StartTime", "sortOrder": "DESCENDING"}))
    last = client.search_agreements(catalog="AWSMarketplace", filters=proposer_filters(), maxResults=5)
    assert "nextToken" not in last


def test_an_agreement_updated_between_pages_is_seen_again_not_another_skipped(
    emulator: Emulator, client: Any, marketplace: dict[str, Any]
) -> None:
    request = {
        "catalog": "AWSMarketplace",
        "filters": proposer_filters(),
        "sort": {"sortBy": "LastUpdateTime"},
    }
    page = client.search_agreements(**request, maxResults=2)
    seen = ids(page["agreementViewSummaries"])
    assert seen == [marketplace["second"]["agreementId"], marketplace["other"]["agreementId"]]
    emulator.shift_clock(3600)
    emulator.event(
        "unsubscribe-pending",
        "PROD",
        licenseArn=marketplace["second"]["licenseArn"],
        endedToDeprovisionedSeconds=0,
    )
    rest = search_from(client, request, page["nextToken"])
    assert ids(rest) == [
        marketplace["first"]["agreementId"],
        marketplace["renewal"],
        marketplace["contract"]["agreementId"],
        marketplace["second"]["agreementId"],  # updated after the first page: found again, now CANCELLED
    ]
    assert rest[-1]["status"] == "CANCELLED"


def search_from(client: Any, request: dict[str, Any], token: str) -> list[Any]:
    found: list[Any] = []
    while token:
        page = client.search_agreements(**request, maxResults=2, nextToken=token)
        found += page["agreementViewSummaries"]
        token = page.get("nextToken", "")
    return found


def test_the_seller_sees_only_the_agreements_it_proposed(emulator: Emulator, client: Any) -> None:
    emulator.product("RESOLD", ("users",), resold=True)
    emulator.product("PROD")
    resold = emulator.subscribe("RESOLD", customerAWSAccountId=BUYER)
    direct = emulator.subscribe("PROD", customerAWSAccountId=BUYER)
    assert ids(search(client)) == [direct["agreementId"]]
    # As acceptor the seller bought nothing.
    acceptor = [
        {"name": "PartyType", "values": ["Acceptor"]},
        {"name": "AgreementType", "values": ["PurchaseAgreement"]},
    ]
    assert (
        client.search_agreements(catalog="AWSMarketplace", filters=acceptor)["agreementViewSummaries"] == []
    )
    # A channel partner's agreement is not the seller's to read.
    for call in (client.describe_agreement, client.get_agreement_entitlements):
        response = refusal(call, agreementId=resold["agreementId"])
        assert response["Error"]["Code"] == "AccessDeniedException"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert CHANNEL_PARTNER_ACCOUNT not in response["Error"]["Message"]


# --- what is refused ---------------------------------------------------------------------------------------


def test_an_unknown_agreement_is_not_found(emulator: Emulator, client: Any) -> None:
    for call in (client.describe_agreement, client.get_agreement_entitlements):
        response = refusal(call, agreementId="agmt-nosuchagreement")
        assert response["Error"]["Code"] == "ResourceNotFoundException"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert "agmt-nosuchagreement" in response["Error"]["Message"]
        assert response["resourceId"] == "agmt-nosuchagreement" and response["resourceType"] == "Agreement"


TIME_FORMS = [
    "2026-11-18T00:00:00.000Z",
    "2026-11-18T00:00:00+00:00",
    "2026-11-18",
    "1795000000",
    "2026-13-01T00:00:00Z",
]


@pytest.mark.parametrize("value", TIME_FORMS)
def test_a_time_filter_takes_only_the_documented_form(emulator: Emulator, client: Any, value: str) -> None:
    response = refusal(
        client.search_agreements,
        catalog="AWSMarketplace",
        filters=proposer_filters(AfterLastUpdateTime=value),
    )
    assert response["Error"]["Code"] == "ValidationException"
    assert response["reason"] == "INVALID_FILTER_VALUES"
    assert response["fields"][0]["name"] == "filters[2].values[0]"
    assert "AfterLastUpdateTime" in response["Error"]["Message"]
    assert "YYYY-MM-DDThh:mm:ssZ" in response["Error"]["Message"]


BAD_SEARCHES: list[tuple[dict[str, Any], str, str]] = [
    # (the request, its reason, a word the message must say)
    ({"filters": proposer_filters()}, "INVALID_CATALOG", "catalog"),
    ({"catalog": "AWSMarketplaceX", "filters": proposer_filters()}, "INVALID_CATALOG", "catalog"),
    ({"catalog": "AWSMarketplace"}, "MISSING_PARTY_TYPE", "PartyType"),
    (
        {"catalog": "AWSMarketplace", "filters": [{"name": "PartyType", "values": ["Proposer"]}]},
        "INVALID_FILTERS",
        "AgreementType",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": [{"name": "PartyType", "values": ["Seller"]}]},
        "INVALID_PARTY_TYPE",
        "PartyType",
    ),
    (
        {
            "catalog": "AWSMarketplace",
            "filters": [
                {"name": "PartyType", "values": ["Proposer"]},
                {"name": "AgreementType", "values": ["Lease"]},
            ],
        },
        "INVALID_AGREEMENT_TYPE",
        "agreement type",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": proposer_filters(Colour="red")},
        "INVALID_FILTER_NAME",
        "Colour",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": [*proposer_filters(), {"values": ["ACTIVE"]}]},
        "MISSING_FILTER_NAME",
        "filters[2].name",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": [*proposer_filters(), {"name": "Status"}]},
        "MISSING_FILTER_VALUES",
        "Status",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": proposer_filters(Status="GONE")},
        "INVALID_FILTER_VALUES",
        "Status",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": proposer_filters(AcceptorAccountId="1234")},
        "INVALID_FILTER_VALUES",
        "AcceptorAccountId",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": proposer_filters(LicenseArn="arn:aws:s3:::bucket")},
        "INVALID_FILTER_VALUES",
        "LicenseArn",
    ),
    (
        {
            "catalog": "AWSMarketplace",
            "filters": [*proposer_filters(), {"name": "PartyType", "values": ["Proposer"]}],
        },
        "INVALID_FILTERS",
        "twice",
    ),
    (
        {
            "catalog": "AWSMarketplace",
            "filters": proposer_filters(
                AfterLastUpdateTime="2026-11-18T00:00:00Z", BeforeLastUpdateTime="2026-11-17T00:00:00Z"
            ),
        },
        "INVALID_FILTER_VALUES",
        "AfterLastUpdateTime",
    ),
    (
        {
            "catalog": "AWSMarketplace",
            "filters": [
                {"name": "PartyType", "values": ["Acceptor"]},
                {"name": "AgreementType", "values": ["PurchaseAgreement"]},
                {"name": "AfterLastUpdateTime", "values": ["2026-11-18T00:00:00Z"]},
            ],
        },
        "UNSUPPORTED_FILTERS",
        "Proposer",
    ),
    (
        {
            "catalog": "AWSMarketplace",
            "filters": [
                {"name": "PartyType", "values": ["Acceptor"]},
                {"name": "AgreementType", "values": ["PurchaseAgreement"]},
            ],
            "sort": {"sortBy": "LastUpdateTime"},
        },
        "INVALID_SORT_BY",
        "Proposer",
    ),
    (
        {"catalog": "AWSMarketplace", "filters": proposer_filters(), "sort": {"sortBy": "Price"}},
        "INVALID_SORT_BY",
        "Price",
    ),
]


@pytest.mark.parametrize(("request_", "reason", "says"), BAD_SEARCHES)
def test_bad_searches_are_refused_naming_what_is_wrong(
    emulator: Emulator, client: Any, request_: dict[str, Any], reason: str, says: str
) -> None:
    response = refusal(client.search_agreements, **request_)
    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["reason"] == reason
    assert says in response["Error"]["Message"]
    assert response["fields"] and response["fields"][0]["message"] == response["Error"]["Message"]


def test_a_page_token_is_checked(emulator: Emulator, client: Any, marketplace: dict[str, Any]) -> None:
    request = {"catalog": "AWSMarketplace", "filters": proposer_filters(), "maxResults": 2}
    token = client.search_agreements(**request)["nextToken"]
    assert client.search_agreements(**request, nextToken=token)["agreementViewSummaries"]
    altered = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    for bad in ("garbage", altered, token[:10]):
        response = refusal(client.search_agreements, **request, nextToken=bad)
        assert (response["Error"]["Code"], response["reason"]) == (
            "ValidationException",
            "INVALID_NEXT_TOKEN",
        )
        assert response["fields"][0]["name"] == "nextToken"
    # A token belongs to its search: another filter (or sort) is another search.
    other = {**request, "filters": proposer_filters(Status="ACTIVE")}
    response = refusal(client.search_agreements, **other, nextToken=token)
    assert response["reason"] == "INVALID_NEXT_TOKEN" and "another request" in response["Error"]["Message"]
    # GetAgreementEntitlements checks its tokens the same way.
    response = refusal(
        client.get_agreement_entitlements, agreementId=marketplace["second"]["agreementId"], nextToken=token
    )
    assert response["reason"] == "INVALID_NEXT_TOKEN"


def test_entitlements_page_too(emulator: Emulator, client: Any) -> None:
    emulator.product()
    bought = emulator.subscribe(customerAWSAccountId=BUYER)
    page = client.get_agreement_entitlements(agreementId=bought["agreementId"], maxResults=1)
    assert [item["licenseArn"] for item in page["agreementEntitlements"]] == [bought["licenseArn"]]
    assert "nextToken" not in page


def test_what_the_model_refuses_is_refused_over_both_protocols(
    emulator: Emulator, cbor_only_models: Path
) -> None:
    no_checks = Config(parameter_validation=False)
    for raw in (
        boto3.client("marketplace-agreement", config=no_checks),
        cbor_client(cbor_only_models, "marketplace-agreement", no_checks),
    ):
        for kwargs in (
            {"catalog": "AWSMarketplace", "filters": proposer_filters(), "maxResults": 0},
            {"catalog": "AWSMarketplace", "filters": proposer_filters(), "maxResults": 51},
            {
                "catalog": "AWSMarketplace",
                "filters": [{"name": "PartyType", "values": ["Proposer", "Acceptor"]}],
            },
            {"catalog": "AWSMarketplace", "filters": proposer_filters(), "sort": {"sortOrder": "UP"}},
            {"catalog": "AWSMarketplace", "filters": proposer_filters(), "nextToken": "not a token!"},
        ):
            response = refusal(raw.search_agreements, **kwargs)
            assert response["Error"]["Code"] == "ValidationException", kwargs
        for call in (raw.describe_agreement, raw.get_agreement_entitlements):
            assert refusal(call, agreementId="!!!")["Error"]["Code"] == "ValidationException"
            assert "agreementId" in refusal(call)["Error"]["Message"]


# --- checked against the model -----------------------------------------------------------------------------

# Members the emulator never answers, and why: it knows no prices, offer sets, free-trial ends, contacts,
# entitlement types or reasons not to renew (its contracts renew), and a registration token is for acceptors.
NEVER_ANSWERED = {
    "AgreementViewSummary.endTimeBehaviorReasonCode",
    "AgreementViewSummary.freeTrialEndTime",
    "AgreementViewSummary.includesContactOfType",
    "ProposalSummary.offerSetId",
    "DescribeAgreementOutput.estimatedCharges",
    "EstimatedCharges.agreementValue",
    "EstimatedCharges.currencyCode",
    "DescribeAgreementOutput.freeTrialSummary",
    "FreeTrialSummary.trialEndTime",
    "EndTimeBehavior.reasonCode",
    "AgreementEntitlement.type",
    "AgreementEntitlement.registrationToken",
    "GetAgreementEntitlementsOutput.nextToken",  # one license per agreement: never a second page
}


def test_a_session_over_both_protocols_fits_the_model(
    emulator: Emulator, agreement: Any, cbor_agreement: Any, marketplace: dict[str, Any]
) -> None:
    emulator.subscribe("PROD", customerAWSAccountId="333344445555", status="pending")
    failed = emulator.subscribe("PROD", customerAWSAccountId="444455556666", status="pending")
    emulator.event("subscribe-fail", licenseArn=failed["licenseArn"])
    for client in (agreement, cbor_agreement):
        views = search(client, page_size=2)
        for summary in views:
            client.describe_agreement(agreementId=summary["agreementId"])
            client.get_agreement_entitlements(agreementId=summary["agreementId"])
        refusal(client.describe_agreement, agreementId="agmt-unknown")
        refusal(client.search_agreements, catalog="AWSMarketplace", filters=proposer_filters(Status="GONE"))
    emulator.admin("POST", "/_emulator/faults", {"throttleEvery": 1, "operations": ["SearchAgreements"]})
    for client in (agreement, cbor_agreement):
        response = refusal(client.search_agreements, catalog="AWSMarketplace", filters=proposer_filters())
        assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "ThrottlingException",
            429,
        )
    emulator.admin("POST", "/_emulator/faults", {})

    calls = [call for call in emulator.server.calls if call.target.startswith(AGREEMENT_TARGET)]
    assert not model_check.all_problems(calls)
    answered = {(call.operation, call.protocol) for call in calls if call.status == 200}
    assert answered == {
        (operation, protocol)
        for operation in ("SearchAgreements", "DescribeAgreement", "GetAgreementEntitlements")
        for protocol in ("json", "smithy-rpc-v2-cbor")
    }
    every_seen: set[str] = set()
    for operation in ("SearchAgreements", "DescribeAgreement", "GetAgreementEntitlements"):
        output = model_check.operation_model(f"{AGREEMENT_TARGET}.{operation}").output_shape  # type: ignore[union-attr]
        seen: set[str] = set()
        for call in calls:
            if call.operation == operation and call.status == 200:
                seen |= answered_members(output, model_check.decode(call.protocol, call.body))
        unused = {
            member
            for member in modeled_members(output) - seen - NEVER_ANSWERED
            # Enum values the emulator's agreements never reach (they are never archived, replaced, ...).
            if "=" not in member
        }
        assert not unused, f"{operation}: the session never answered with {sorted(unused)}"
        every_seen.update(member for member in seen if "=" in member)
    # The states the emulator's lifecycle reaches, each answered.
    assert {
        "AgreementStatus=ACTIVE",
        "AgreementStatus=CANCELLED",
        "AgreementStatus=RENEWED",
        "AgreementStatus=TERMINATED",
        "AgreementEntitlementStatus=PROVISIONED",
        "AgreementEntitlementStatus=PENDING",
        "AgreementEntitlementStatus=FAILED",
        "AgreementEntitlementStatus=DEPROVISIONED",
        "EndTimeBehaviorType=RENEW",
    } <= every_seen


def agreement_call(
    protocol: str, operation: str, status: int, answer: dict[str, Any], content_type: str
) -> RecordedCall:
    encode = (lambda value: json.dumps(value).encode()) if protocol == "json" else cbor2.dumps
    headers = {"Content-Type": content_type}
    if protocol != "json":
        headers["Smithy-Protocol"] = "rpc-v2-cbor"
    return RecordedCall(
        protocol,
        f"{AGREEMENT_TARGET}.{operation}",
        encode({"agreementId": "agmt-1"}),
        status,
        headers,
        encode(answer),
    )


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (agreement_call("json", "DescribeAgreement", 200, {}, "application/x-amz-json-1.1"), "Content-Type"),
        (
            agreement_call(
                "json", "DescribeAgreement", 200, {"status": "PAUSED"}, "application/x-amz-json-1.0"
            ),
            "is not one of",
        ),
        (
            agreement_call(
                "json",
                "DescribeAgreement",
                404,
                {"__type": "ResourceNotFoundException", "message": "x", "colour": "red"},
                "application/x-amz-json-1.0",
            ),
            "modeled members",
        ),
        (
            agreement_call(
                "json",
                "DescribeAgreement",
                400,
                {"__type": "ValidationException", "message": "x", "reason": "BECAUSE"},
                "application/x-amz-json-1.0",
            ),
            "is not one of",
        ),
        (
            agreement_call(
                "smithy-rpc-v2-cbor", "DescribeAgreement", 200, {"startTime": 1795000000}, "application/cbor"
            ),
            "a timestamp over smithy-rpc-v2-cbor",
        ),
    ],
)
def test_the_checker_finds_agreement_answers_that_do_not_fit(call: RecordedCall, says: str) -> None:
    problems = model_check.call_problems(call)
    assert any(says in problem for problem in problems), problems
