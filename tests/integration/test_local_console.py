"""The local console's dashboard: registered subscribers and those AWS Marketplace announced who never
registered are listed, and counted, apart."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.console import Console, make_handler
from local.http_server import LocalHTTPServer
from local.marketplace_emulator import EmulatorServer
from local.run import local_aws_environment
from local.stack_template import ListingTemplate
from tests.integration.conftest import PRODUCT, templates  # noqa: F401 - the synthesized tables, as a fixture
from tests.integration.emulator.test_catalog import Pages

SUBSCRIBERS = "codio-marketplace-subscribers-onboard"
METERING = "codio-marketplace-metering-onboard"
# The charts' "now": 10:30 UTC, so their 24 hours run from 11:00 the day before to 10:00.
NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC).timestamp()


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
                            "metering": METERING,
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


def record(console: Console, hour: str, dimension: str, quantity: str, status: str = "pending") -> None:
    """A metering-table item as the usage API writes it (and the metering job settles it)."""
    item: dict[str, Any] = {
        "customerAWSAccountId": "111111111101",
        "usageKey": f"{hour}#{dimension}#l-111111111101",
        "usageHour": hour,
        "dimension": dimension,
        "quantity": Decimal(quantity),
        "licenseArn": "arn:aws:license-manager::111111111101:license:l-111111111101",
        "productCode": PRODUCT,
        "meteringStatus": status,
    }
    if status == "metered":
        item |= {"sealedQuantity": Decimal(quantity), "meteringRecordId": f"rec-{hour}-{dimension}"}
    console.dynamodb.Table(METERING).put_item(Item=item)


def served(console: Console, path: str) -> tuple[int, dict[str, str], str]:
    """GET `path` from the console's own HTTP server, on a port chosen now."""
    server = LocalHTTPServer(("127.0.0.1", 0), make_handler(console))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status, dict(response.headers.items()), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers.items()), error.read().decode()
    finally:
        server.shutdown()
        server.server_close()


def figure(html: str, dimension: str) -> str:
    match = re.search(
        rf'<figure class="chart"><figcaption>{dimension}</figcaption>(.*?)</figure>', html, re.S
    )
    assert match, f"no chart for {dimension}"
    return match.group(1)


def test_the_dashboard_charts_usage_and_billing_per_hour(console: Console) -> None:
    console.clock = lambda: NOW
    record(console, "2026-12-01T10:00:00Z", "users", "4")  # the current hour: recorded, not billed yet
    record(console, "2026-12-01T09:00:00Z", "users", "7.5", "metered")
    record(console, "2026-12-01T08:00:00Z", "users", "2", "failed")  # refused: recorded, never billed
    record(console, "2026-11-30T11:00:00Z", "users", "1", "metered")  # the oldest hour of the 24
    record(console, "2026-11-30T10:00:00Z", "users", "99", "metered")  # 25 hours ago: not drawn
    record(console, "2026-12-01T09:00:00Z", "storage", "0", "metered")  # a zero record: no bar
    record(console, "2026-12-01T07:00:00Z", "storage", "3", "metered")

    status, headers, html = served(console, "/")

    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none': no script at all
    assert "<script" not in html.lower() and 'href="http' not in html.split("<svg", 1)[1]
    users = figure(html, "users")
    assert users.count('<rect class="bar recorded"') == 4
    assert users.count('<rect class="bar billed"') == 2
    assert "2026-11-30T10:00:00Z" not in users and ">99<" not in users
    assert 'role="img"' in users and "<title id=" in users
    assert (
        "onboard, users: usage recorded and billed per hour, 2026-11-30T11:00Z to 2026-12-01T10:00Z" in users
    )
    # The same numbers, as text: hour, recorded, billed.
    assert "<tr><td>2026-12-01T09:00:00Z</td><td>7.5</td><td>7.5</td></tr>" in users
    assert "<tr><td>2026-12-01T08:00:00Z</td><td>2</td><td>0</td></tr>" in users
    assert "<tr><td>2026-12-01T10:00:00Z</td><td>4</td><td>0</td></tr>" in users
    storage = figure(html, "storage")
    assert storage.count('<rect class="bar recorded"') == 1 and storage.count('<rect class="bar billed"') == 1
    # The tallest bar is the largest quantity of its chart; the others are in proportion.
    heights = [float(h) for h in re.findall(r'class="bar recorded"[^>]*height="([0-9.]+)"', users)]
    assert max(heights) == pytest.approx(100.0) and min(heights) == pytest.approx(100.0 / 7.5, abs=0.1)


def test_without_usage_the_dashboard_says_so_instead_of_a_chart(console: Console) -> None:
    console.clock = lambda: NOW
    record(console, "2026-11-29T10:00:00Z", "users", "5", "metered")  # older than 24 hours
    html = console.dashboard()
    assert "No usage recorded in the last 24 hours." in html and "<svg" not in html


def test_every_console_page_has_a_heading(console: Console) -> None:
    assert "<h1>Local console</h1>" in console.dashboard()
    status, _, html = served(console, "/nowhere")
    assert status == 404 and "<h1>Not found</h1>" in html


def test_a_free_trial_subscription_posts_marketplaces_offer_type(console: Console) -> None:
    console.endpoints["listings"]["onboard"]["fulfillmentUrl"] = "http://127.0.0.1:1/marketplace/fulfillment"
    _admin(console, "/_emulator/products", {"productCode": PRODUCT})
    assert '<a href="/buy/onboard?free-trial">Subscribe with a free trial</a>' in console.dashboard()
    offer = '<input type="hidden" name="x-amzn-marketplace-offer-type" value="free-trial">'
    for query, free_trial in (("", False), ("?free-trial", True), ("?free-trial=1", True)):
        status, _, html = served(console, "/buy/onboard" + query)
        assert status == 200
        assert (offer in html) is free_trial, query
