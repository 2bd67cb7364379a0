"""Local mode's stand-in stacks: the seed's CloudFormation commands, run with boto3 and the AWS CLI's query
semantics (JMESPath over the whole, merged response) against moto's server, find each listing's stack."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jmespath
import pytest
from moto.server import ThreadedMotoServer

from local.cloudformation import STAND_IN_MARKER, StandInError, publish, retire_others
from local.run import LocalModeError, free_port, local_aws_environment, publish_stacks
from local.stack_template import ListingTemplate, TemplateError, load
from stacks.naming import ListingNames

REGION = "us-east-1"  # the deployment region of the `templates` fixture
# The seed's "Check Deployment Status" and "Get Website URLs", as the AWS CLI runs them.
LIST_STACKS_FILTER = ["CREATE_COMPLETE", "UPDATE_COMPLETE"]
LIST_STACKS_QUERY = (
    "StackSummaries[?contains(StackName, `codio-marketplace`)].{Name:StackName,Status:StackStatus}"
)
WEBSITE_URL_QUERY = "Stacks[0].Outputs[?OutputKey==`WebsiteUrl`].OutputValue"
# The seed writes strings as JSON literals in backticks, which the AWS CLI accepts and jmespath deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated string literal syntax:PendingDeprecationWarning")


@pytest.fixture
def aws() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        # moto's backends are shared by every server in this process: start from an empty account
        reset = urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - our own loopback URL
        yield local_aws_environment(REGION, f"http://{host}:{port}", "http://127.0.0.1:9")
    finally:
        server.stop()


def cloudformation(aws: dict[str, str]) -> Any:
    return boto3.client(
        "cloudformation",
        endpoint_url=aws["AWS_ENDPOINT_URL_CLOUDFORMATION"],
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def endpoints(*ports: int) -> dict[str, Any]:
    listings = {}
    for path, port in zip(["onboard", "contract"], ports, strict=False):
        site = f"http://127.0.0.1:{port}/"
        listings[path] = {
            "siteUrl": site,
            "fulfillmentUrl": f"{site}marketplace/fulfillment",
            "apiUrl": f"{site}api/",
        }
    return {"listings": listings}


def seed_list_stacks(client: Any) -> Any:
    pages = client.get_paginator("list_stacks").paginate(StackStatusFilter=LIST_STACKS_FILTER)
    return jmespath.search(LIST_STACKS_QUERY, pages.build_full_result())


def seed_website_url(client: Any, stack: str) -> Any:
    return jmespath.search(WEBSITE_URL_QUERY, client.describe_stacks(StackName=stack))


def test_the_seed_commands_find_each_listing_with_its_local_urls_tags_and_outputs(
    templates: dict[str, ListingTemplate], aws: dict[str, str]
) -> None:
    publish_stacks(templates, endpoints(8300, 8301), aws)
    client = cloudformation(aws)

    assert sorted(seed_list_stacks(client), key=lambda row: row["Name"]) == [
        {"Name": "codio-marketplace-contract", "Status": "CREATE_COMPLETE"},
        {"Name": "codio-marketplace-onboard", "Status": "CREATE_COMPLETE"},
    ]
    assert seed_website_url(client, "codio-marketplace-onboard") == ["http://127.0.0.1:8300/"]
    assert seed_website_url(client, "codio-marketplace-contract") == ["http://127.0.0.1:8301/"]

    (stack,) = client.describe_stacks(StackName="codio-marketplace-onboard")["Stacks"]
    names = ListingNames("codio-marketplace", "onboard")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}
    assert outputs == {
        "WebsiteUrl": "http://127.0.0.1:8300/",
        "FulfillmentUrl": "http://127.0.0.1:8300/marketplace/fulfillment",
        "ApiUrl": "http://127.0.0.1:8300/api/",
        "SubscribersTableName": names.subscribers_table,
        "MeteringTableName": names.metering_table,
        "RegistrationsTableName": names.registrations_table,
        "HeldEventsTableName": names.held_events_table,
    }
    described = {output["OutputKey"]: output["Description"] for output in stack["Outputs"]}
    assert "fulfillment URL" in described["FulfillmentUrl"]
    # the same tags as the deployed stack: the built-in three, the deployment's and the listing's own
    assert {tag["Key"]: tag["Value"] for tag in stack["Tags"]} == {
        "Stack": "codio-marketplace-onboard",
        "Listing": "onboard",
        "Environment": "test",
        "CostCenter": "1234",
        "Team": "onboarding",
    }
    (other,) = client.describe_stacks(StackName="codio-marketplace-contract")["Stacks"]
    assert {tag["Key"]: tag["Value"] for tag in other["Tags"]} == {
        "Stack": "codio-marketplace-contract",
        "Listing": "contract",
        "Environment": "test",
        "CostCenter": "1234",
    }
    assert (
        stack["Description"] == f"{STAND_IN_MARKER}AWS Marketplace listing 'Listing onboard' (PROD_ONBOARD)"
    )
    # nothing besides what local mode already made from the template
    assert client.list_stack_resources(StackName=names.stack)["StackResourceSummaries"] == []


def test_publishing_again_updates_the_stack_in_place(
    templates: dict[str, ListingTemplate], aws: dict[str, str]
) -> None:
    publish_stacks(templates, endpoints(8300, 8301), aws)
    client = cloudformation(aws)
    first_id = client.describe_stacks(StackName="codio-marketplace-onboard")["Stacks"][0]["StackId"]

    # local state kept across a restart on other ports
    publish_stacks(templates, endpoints(9400, 9401), aws)

    assert sorted(seed_list_stacks(client), key=lambda row: row["Name"]) == [
        {"Name": "codio-marketplace-contract", "Status": "UPDATE_COMPLETE"},
        {"Name": "codio-marketplace-onboard", "Status": "UPDATE_COMPLETE"},
    ]
    (stack,) = client.describe_stacks(StackName="codio-marketplace-onboard")["Stacks"]
    assert stack["StackId"] == first_id
    assert seed_website_url(client, "codio-marketplace-onboard") == ["http://127.0.0.1:9400/"]


def test_only_running_listings_keep_a_stand_in(
    templates: dict[str, ListingTemplate], aws: dict[str, str]
) -> None:
    publish_stacks(templates, endpoints(8300, 8301), aws)
    client = cloudformation(aws)
    # a stack of the seller's own in the local CloudFormation, not a stand-in
    own = {"Description": "mine", "Resources": {}}
    client.create_stack(StackName="codio-marketplace-tools", TemplateBody=json.dumps(own))

    publish_stacks({"onboard": templates["onboard"]}, endpoints(8300), aws)

    assert sorted(row["Name"] for row in seed_list_stacks(client)) == [
        "codio-marketplace-onboard",
        "codio-marketplace-tools",
    ]
    assert retire_others(client, ["codio-marketplace-onboard"]) == []


def test_an_output_the_templates_stack_lacks_is_refused(
    templates: dict[str, ListingTemplate], aws: dict[str, str]
) -> None:
    client = cloudformation(aws)
    with pytest.raises(
        StandInError, match="codio-marketplace-onboard: the synthesized stack has no output Nope"
    ):
        publish(client, templates["onboard"], {"WebsiteUrl": "http://127.0.0.1:1/", "Nope": "x"})
    assert seed_list_stacks(client) == []


def test_an_unreachable_cloudformation_stops_local_mode_with_the_stack_named(
    templates: dict[str, ListingTemplate],
) -> None:
    gone = local_aws_environment(REGION, f"http://127.0.0.1:{free_port()}", "http://127.0.0.1:9")
    with pytest.raises(LocalModeError, match=r"the local CloudFormation: stack codio-marketplace-onboard: "):
        publish_stacks({"onboard": templates["onboard"]}, endpoints(8300), gone)


def test_a_template_without_its_cloud_assembly_manifest_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "codio-marketplace-onboard.template.json"
    template.write_text(json.dumps({"Resources": {}}))
    with pytest.raises(TemplateError, match=r"codio-marketplace-onboard\.template\.json: no manifest\.json"):
        load(template)
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": {}}))
    with pytest.raises(TemplateError, match="no stack artifact has the template codio-marketplace-onboard"):
        load(template)
