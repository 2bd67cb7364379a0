"""`--export-subscribers`: registered buyers told apart from those AWS Marketplace announced who never
registered, and yes/no columns of one type (true/false) in CSV and JSON alike."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.stack_template import ListingTemplate
from operations import export
from tests.cli.test_operations import aws  # noqa: F401 - moto and test credentials, as a fixture
from tests.infrastructure.conftest import config_with, listing
from tests.integration.conftest import templates  # noqa: F401 - the synthesized tables, as a fixture

REGISTERED = {
    "companyName": "Acme",
    "contactEmail": "a@example.com",
    "registrationDate": "2026-11-23T00:00:00Z",
}
# account: (item, registered, free trial)
SUBSCRIBERS: dict[str, tuple[dict[str, Any], bool, bool]] = {
    "111122223301": (
        {**REGISTERED, "status": "active", "freeTrial": True, "offerType": "free-trial"},
        True,
        True,
    ),
    "111122223302": ({**REGISTERED, "status": "active", "freeTrial": False}, True, False),
    # Announced by a subscription event, never registered: no registrationDate, no freeTrial yet.
    "111122223303": ({"status": "active"}, False, False),
    # Announced by an event that said it is a free trial.
    "111122223304": ({"status": "pending", "freeTrial": True}, False, True),
}


@pytest.fixture
def exported(
    aws: None,  # noqa: F811 - the fixture imported above
    templates: dict[str, ListingTemplate],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> dict[str, str]:
    dynamodb = boto3.client("dynamodb")
    for table in templates["onboard"].tables:
        dynamodb.create_table(**table.create_request)
    subscribers = boto3.resource("dynamodb").Table("codio-marketplace-subscribers-onboard")
    for account, (item, _, _) in SUBSCRIBERS.items():
        subscribers.put_item(Item={"customerAWSAccountId": account, "subscriptionKey": "l-1", **item})
    config = config_with(listing("onboard", "PROD_ONBOARD"))
    files = {}
    for fmt in ("csv", "json"):
        target = tmp_path / f"subscribers.{fmt}"
        export.export_subscribers(config, "onboard", local=False, fmt=fmt, output=str(target))
        files[fmt] = target.read_text(encoding="utf-8")
    return files


def test_the_csv_says_who_registered_and_writes_booleans_as_true_or_false(exported: dict[str, str]) -> None:
    table = list(csv.DictReader(io.StringIO(exported["csv"])))
    assert list(table[0])[4:6] == ["status", "registered"]
    rows = {row["customerAWSAccountId"]: row for row in table}
    assert set(rows) == set(SUBSCRIBERS)
    for account, (_, registered, free_trial) in SUBSCRIBERS.items():
        assert rows[account]["registered"] == str(registered).lower()
        assert rows[account]["freeTrial"] == str(free_trial).lower()


def test_the_json_has_the_same_values_as_booleans(exported: dict[str, str]) -> None:
    rows = {row["customerAWSAccountId"]: row for row in json.loads(exported["json"])}
    for account, (_, registered, free_trial) in SUBSCRIBERS.items():
        assert rows[account]["registered"] is registered
        assert rows[account]["freeTrial"] is free_trial
    assert rows["111122223303"]["companyName"] == ""  # not registered: no contact details
