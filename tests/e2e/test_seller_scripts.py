"""The seed's management commands, as a seller's own scripts run them, against a running local mode.

They go through boto3 with the AWS CLI's query semantics (JMESPath over the whole, merged response), the
same as `aws ... --endpoint-url <aws url from .local/endpoints.json> --query ...`.
"""

from __future__ import annotations

from typing import Any

import boto3
import jmespath
import pytest

from tests.e2e.conftest import request

# The seed writes strings as JSON literals in backticks, which the AWS CLI accepts and jmespath deprecates.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:deprecated string literal syntax:PendingDeprecationWarning"),
]

# aws cloudformation list-stacks --stack-status-filter CREATE_COMPLETE UPDATE_COMPLETE --query '...'
DEPLOYMENT_STATUS = (
    "StackSummaries[?contains(StackName, `codio-marketplace`)].{Name:StackName,Status:StackStatus}"
)
# aws cloudformation describe-stacks --stack-name codio-marketplace-ai-skills --query '...' --output text
WEBSITE_URLS = "Stacks[0].Outputs[?OutputKey==`WebsiteUrl`].OutputValue"


def cloudformation(local_mode: dict[str, Any]) -> Any:
    return boto3.client(
        "cloudformation",
        endpoint_url=local_mode["aws"]["url"],
        region_name="us-east-1",  # deploymentSettings.region of marketplace-config.json
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_check_deployment_status_lists_every_listing_stack(local_mode: dict[str, Any]) -> None:
    client = cloudformation(local_mode)
    pages = client.get_paginator("list_stacks").paginate(
        StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"]
    )
    rows = jmespath.search(DEPLOYMENT_STATUS, pages.build_full_result())
    assert sorted(rows, key=lambda row: row["Name"]) == [
        {"Name": "codio-marketplace-ai-skills", "Status": "CREATE_COMPLETE"},
        {"Name": "codio-marketplace-data-analytics", "Status": "CREATE_COMPLETE"},
    ]


def test_get_website_urls_gives_the_page_local_mode_serves(local_mode: dict[str, Any]) -> None:
    client = cloudformation(local_mode)
    listing = local_mode["listings"]["ai-skills"]

    urls = jmespath.search(WEBSITE_URLS, client.describe_stacks(StackName="codio-marketplace-ai-skills"))

    assert urls == [listing["siteUrl"]]
    status, _, body = request(urls[0])
    assert status == 200 and b"<html" in body.lower()
    (stack,) = client.describe_stacks(StackName="codio-marketplace-ai-skills")["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}
    assert outputs["FulfillmentUrl"] == listing["fulfillmentUrl"]
    assert outputs["ApiUrl"] == listing["apiUrl"]
    assert outputs["SubscribersTableName"] == listing["tables"]["subscribers"]
    assert {tag["Key"]: tag["Value"] for tag in stack["Tags"]} == {
        "Stack": "codio-marketplace-ai-skills",
        "Listing": "ai-skills",
        "Environment": "production",
    }
    assert stack["Description"].startswith("Local stand-in")
    assert "Codio AI Skills Training" in stack["Description"]
