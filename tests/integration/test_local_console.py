"""The local console's dashboard: registered subscribers and those AWS Marketplace announced who never
registered are listed, and counted, apart."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.console import Console
from local.marketplace_emulator import EmulatorServer
from local.run import local_aws_environment
from local.stack_template import ListingTemplate
from tests.integration.conftest import PRODUCT, templates  # noqa: F401 - the synthesized tables, as a fixture
from tests.integration.emulator.test_catalog import Pages

SUBSCRIBERS = "codio-marketplace-subscribers-onboard"


@pytest.fixture
def console(templates: dict[str, ListingTemplate]) -> Iterator[Console]:  # noqa: F811 - the fixture
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        aws_url = f"http://{host}:{port}"
        # moto's servers in one process share their state: start from empty tables.
        urllib.request.urlopen(urllib.request.Request(f"{aws_url}/moto-api/reset", method="POST"))  # noqa: S310
        with EmulatorServer() as emulator:
            environment = local_aws_environment("us-east-1", aws_url, emulator.url)
            dynamodb: Any = boto3.client(  # type: ignore[call-overload]
                "dynamodb",
                endpoint_url=aws_url,
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            for table in templates["onboard"].tables:
                dynamodb.create_table(**table.create_request)
            endpoints = {
                "emulator": {"url": emulator.url},
                "aws": {"url": aws_url},
                "listings": {
                    "onboard": {
                        "productCode": PRODUCT,
                        "siteUrl": "http://127.0.0.1:1/",
                        "tables": {
                            "subscribers": SUBSCRIBERS,
                            "metering": "codio-marketplace-metering-onboard",
                        },
                    }
                },
            }
            yield Console(endpoints, environment)
    finally:
        moto.stop()


def put(console: Console, account: str, status: str, **attributes: str) -> None:
    console.dynamodb.Table(SUBSCRIBERS).put_item(
        Item={
            "customerAWSAccountId": account,
            "subscriptionKey": f"l-{account}",
            "licenseArn": f"arn:aws:license-manager::{account}:license:l-{account}",
            "status": status,
            **attributes,
        }
    )


def section(html: str, heading: str) -> str:
    """The HTML from the <h3> `heading` to the next <h3> (or the end of the listing's section)."""
    match = re.search(rf"<h3>{re.escape(heading)}</h3>(.*?)(?=<h3>|</section>)", html, re.S)
    assert match, f"no {heading!r} in the dashboard"
    return match.group(1)


def test_announced_buyers_who_never_registered_are_shown_apart(console: Console) -> None:
    registered = {"registrationDate": "2026-11-30T10:00:00Z", "contactEmail": "a@example.com"}
    put(console, "111111111101", "active", companyName="Acme Ltd", **registered)
    put(console, "111111111102", "pending", companyName="Beta Ltd", **registered)
    put(console, "999999999901", "active")  # a subscription event; the buyer never filled in the form
    put(console, "999999999902", "cancelled")

    html = console.dashboard()

    assert "2 registered (1 active, 1 pending) · 2 announced by AWS Marketplace, not registered" in html
    assert "(1 active, 1 cancelled)" in html
    mine = section(html, "Registered subscribers")
    assert "Acme Ltd" in mine and "Beta Ltd" in mine
    assert "999999999901" not in mine and "999999999902" not in mine
    announced = section(html, "Announced by AWS Marketplace, not registered")
    assert "999999999901" in announced and "999999999902" in announced
    assert "111111111101" not in announced and "111111111102" not in announced


def test_with_everyone_registered_the_announced_table_says_so(console: Console) -> None:
    put(console, "111111111101", "active", registrationDate="2026-11-30T10:00:00Z", companyName="Acme Ltd")
    html = console.dashboard()
    assert "1 registered (1 active) · 0 announced by AWS Marketplace, not registered" in html
    assert "every subscriber AWS Marketplace announced has registered" in html


def _admin(console: Console, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the emulator on 127.0.0.1
        f"{console.emulator}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def test_the_dashboard_shows_each_listings_live_catalog_state(console: Console) -> None:
    html = console.dashboard()
    assert f"No product {PRODUCT} in the emulator catalog." in section(
        html, "Listing on AWS Marketplace (Catalog API)"
    )

    _admin(console, "/_emulator/products", {"productCode": PRODUCT})  # as local mode seeds it
    _admin(console, "/_emulator/catalog", {"delaySeconds": 0.05})
    state = section(console.dashboard(), "Listing on AWS Marketplace (Catalog API)")
    assert "<td>0 dimensions</td>" in state
    assert "not set (./deploy-marketplace.sh --sync-listings --local sets it)" in state
    assert "<td>none yet</td>" in state

    pages = Pages()
    try:
        catalog: Any = boto3.client(  # type: ignore[call-overload]
            "marketplace-catalog",
            endpoint_url=console.emulator,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        (summary,) = catalog.list_entities(Catalog="AWSMarketplace", EntityType="SaaSProduct")[
            "EntitySummaryList"
        ]
        entity = {"Type": "SaaSProduct@1.0", "Identifier": summary["EntityId"]}
        dimension = {"Key": "users", "Name": "Users", "Description": "Active users", "Unit": "Users"}
        started = catalog.start_change_set(
            Catalog="AWSMarketplace",
            ChangeSet=[
                {
                    "ChangeType": "UpdateInformation",
                    "Entity": entity,
                    "DetailsDocument": {"ProductTitle": "Onboard <Pro>"},
                },
                {
                    "ChangeType": "AddDimensions",
                    "Entity": entity,
                    "DetailsDocument": [{**dimension, "Types": ["ExternallyMetered"]}],
                },
                {
                    "ChangeType": "AddDeliveryOptions",
                    "Entity": entity,
                    "DetailsDocument": {
                        "DeliveryOptions": [
                            {"Details": {"SaaSUrlDeliveryOptionDetails": {"FulfillmentUrl": pages.url()}}}
                        ]
                    },
                },
            ],
        )
        status = "PREPARING"
        for _ in range(400):  # each step takes 0.05 s; bounded, not timed
            status = catalog.describe_change_set(
                Catalog="AWSMarketplace", ChangeSetId=started["ChangeSetId"]
            )["Status"]
            if status in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.05)
        assert status == "SUCCEEDED"
    finally:
        pages.server.shutdown()
        pages.server.server_close()

    state = section(console.dashboard(), "Listing on AWS Marketplace (Catalog API)")
    assert "<td>Onboard &lt;Pro&gt;</td>" in state  # escaped
    assert "<td>1 dimension</td>" in state
    assert f"set: {pages.url()}" in state
    assert f"<td>{started['ChangeSetId']}: SUCCEEDED</td>" in state
