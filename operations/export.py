"""`--export-subscribers`: one listing's subscribers as CSV or JSON, read page by page, never changed."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from marketplace_saas.models import is_placeholder
from marketplace_saas.store import pages
from operations.target import OperationError, Target, UsageError, aws_error, say
from stacks.config import MarketplaceConfig
from stacks.naming import ListingNames

EXPORT_FIELDS = (
    "customerAWSAccountId",
    "licenseArn",
    "customerIdentifier",
    "productCode",
    "status",
    "registered",
    "companyName",
    "contactPerson",
    "contactEmail",
    "contactPhone",
    "registrationDate",
    "offerType",
    "freeTrial",
)


def subscribers(target: Target, table: str) -> Iterator[dict[str, Any]]:
    """Every registered or announced subscriber of the table, page by page (placeholders left out)."""
    try:
        for page in pages(target.resource("dynamodb").Table(table).scan, {}):
            for item in page["Items"]:
                if not is_placeholder(str(item["customerAWSAccountId"])):
                    yield item
    except (ClientError, BotoCoreError) as error:
        raise aws_error(error) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# Yes/no columns: true or false in every row and both formats, never an empty cell (a subscriber that AWS
# Marketplace announced and who never registered has no `freeTrial` until an event says so: not a trial).
BOOLEAN_FIELDS = ("registered", "freeTrial")


def _row(item: dict[str, Any]) -> dict[str, Any]:
    """One subscriber as exported: `registered` is whether the buyer filled in the form (it wrote
    `registrationDate`); the other fields as stored, with "" for what the subscriber does not have."""
    row = {field: _plain(item.get(field, "")) for field in EXPORT_FIELDS}
    row["registered"] = "registrationDate" in item
    row["freeTrial"] = item.get("freeTrial") is True or str(item.get("freeTrial", "")).lower() == "true"
    return row


def _csv_value(field: str, value: Any) -> Any:
    if field in BOOLEAN_FIELDS:
        return "true" if value else "false"  # as in the JSON, not Python's True/False
    return _csv_cell(value)


# A spreadsheet runs a cell that starts with one of these as a formula (`=HYPERLINK(...)`, `@SUM(...)`):
# the buyer typed the company name, so a CSV cell must never start with one (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """The value as a spreadsheet shows it, never run: text starting like a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def export_subscribers(
    config: MarketplaceConfig, path: str, *, local: bool, fmt: str, output: str | None
) -> int:
    """Write the listing's subscribers as CSV or JSON to `output` (or stdout); returns how many.

    JSON carries every value exactly as stored; CSV neutralises text a spreadsheet would run as a formula.
    Both say for each subscriber whether they registered, and write `registered` and `freeTrial` as
    true/false.
    """
    if fmt not in ("csv", "json"):
        raise UsageError(f"--format {fmt}: csv or json")
    target = Target.of(config, local)
    names = ListingNames(config.deployment_settings.name_prefix, path)
    rows = [_row(item) for item in subscribers(target, names.subscribers_table)]
    rows.sort(key=lambda row: (str(row["registrationDate"]), str(row["customerAWSAccountId"])))
    if fmt == "json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        buffer = io.StringIO()
        # RFC 4180 line ends: the writer then quotes a cell holding a bare CR, which would split a row.
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({field: _csv_value(field, value) for field, value in row.items()} for row in rows)
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(Path(output), text)
        say(f"Wrote {len(rows)} subscriber{'s' if len(rows) != 1 else ''} of {path} to {output}")
    return len(rows)


def _write_atomically(path: Path, text: str) -> None:
    """All or nothing: a failed export never leaves a half-written file in place of a good one."""
    if not path.parent.exists():
        raise OperationError(f"--output {path}: the folder {path.parent} does not exist")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
