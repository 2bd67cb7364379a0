"""`deploymentSettings.snapStart`: off unless set, and refused where Lambda does not offer SnapStart."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from stacks.config import ConfigError, json_schema, parse_config


def _config(**settings: Any) -> dict[str, Any]:
    return {
        "marketplaceListings": {
            "quick": {
                "name": "Quick",
                "description": "Starts fast",
                "productCode": "PROD_QUICK",
                "path": "quick",
            }
        },
        "deploymentSettings": settings,
    }


def test_snap_start_is_off_by_default() -> None:
    assert parse_config(_config()).deployment_settings.snap_start is False
    assert parse_config(_config(snapStart=True)).deployment_settings.snap_start is True


@pytest.mark.parametrize(("region", "name"), [("ap-east-2", "Taipei"), ("ap-southeast-6", "New Zealand")])
def test_snap_start_is_refused_in_a_region_without_it(region: str, name: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_config(region=region, snapStart=True))
    (problem,) = error.value.problems
    assert problem.startswith(f"deploymentSettings.snapStart: Lambda SnapStart is not available in {region}")
    assert name in problem
    # Without SnapStart the region is fine.
    assert parse_config(_config(region=region)).deployment_settings.region == region


def test_the_schema_knows_the_setting_and_its_type() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.validate(_config(snapStart=True))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(_config(snapStart="sometimes"))
