"""`deploymentSettings.snapStart`: the buyer-facing functions resume from a snapshot of a published version,
which API Gateway reaches through each function's alias `live`; off (the default), no version or alias exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.constructs.listing_function import SNAP_START_ALIAS
from tests.infrastructure.conftest import PROJECT_ROOT, Synthesized, config_with, listing, synth

STACK = "codio-marketplace-quick"
BUYER_FACING = ("Fulfillment", "Registration", "Usage")  # construct ids in the listing stack
BACKGROUND = ("MeteringJob", "Lifecycle")


def _config(**settings: Any) -> Any:
    return config_with(listing("quick", "PROD_QUICK"), **settings)


@pytest.fixture(scope="module")
def snap_start_on() -> Synthesized:
    return Synthesized(synth(_config(snapStart=True)))


@pytest.fixture(scope="module")
def snap_start_off() -> Synthesized:
    return Synthesized(synth(_config()))


def _resources(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = synthesized[STACK].to_json()["Resources"]
    return resources


def _function_id(resources: dict[str, dict[str, Any]], construct_id: str) -> str:
    (found,) = [
        key
        for key, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function" and key.startswith(f"{construct_id}Function")
    ]
    return found


def _of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {key: resource for key, resource in resources.items() if resource["Type"] == resource_type}


def _alias_of(resources: dict[str, dict[str, Any]], function_id: str) -> str:
    (alias,) = [
        key
        for key, resource in _of_type(resources, "AWS::Lambda::Alias").items()
        if resource["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return alias


def test_snap_start_is_off_unless_the_config_turns_it_on(snap_start_off: Synthesized) -> None:
    explicit = Synthesized(synth(_config(snapStart=False)))
    assert explicit[STACK].to_json() == snap_start_off[STACK].to_json()
    resources = _resources(snap_start_off)
    assert _of_type(resources, "AWS::Lambda::Version") == {}
    assert _of_type(resources, "AWS::Lambda::Alias") == {}
    for function in _of_type(resources, "AWS::Lambda::Function").values():
        assert "SnapStart" not in function["Properties"]


def test_turning_it_on_adds_a_version_and_an_alias_per_buyer_facing_function_and_removes_nothing(
    snap_start_on: Synthesized, snap_start_off: Synthesized
) -> None:
    on, off = _resources(snap_start_on), _resources(snap_start_off)
    added = sorted(on[key]["Type"] for key in set(on) - set(off))
    removed = sorted(off[key]["Type"] for key in set(off) - set(on))
    # The API's integrations change, so API Gateway gets a new deployment of the stage (as for any change to
    # its methods); every other resource keeps its logical id.
    assert (
        added == ["AWS::ApiGateway::Deployment"] + ["AWS::Lambda::Alias"] * 3 + ["AWS::Lambda::Version"] * 3
    )
    assert removed == ["AWS::ApiGateway::Deployment"]


def test_the_buyer_facing_functions_snapshot_their_published_versions(snap_start_on: Synthesized) -> None:
    resources = _resources(snap_start_on)
    for construct_id in BUYER_FACING:
        properties = resources[_function_id(resources, construct_id)]["Properties"]
        assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}, construct_id
    # The metering job and the lifecycle function are invoked by a schedule and a queue, not by a buyer.
    for construct_id in BACKGROUND:
        assert "SnapStart" not in resources[_function_id(resources, construct_id)]["Properties"]


def test_each_alias_points_at_its_functions_current_version_which_a_deploy_replaces(
    snap_start_on: Synthesized,
) -> None:
    resources = _resources(snap_start_on)
    versions = _of_type(resources, "AWS::Lambda::Version")
    for construct_id in BUYER_FACING:
        function_id = _function_id(resources, construct_id)
        (version_id,) = [
            key
            for key, version in versions.items()
            if version["Properties"]["FunctionName"] == {"Ref": function_id}
        ]
        alias = resources[_alias_of(resources, function_id)]["Properties"]
        assert alias["Name"] == SNAP_START_ALIAS
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
        # The version a deploy replaces is deleted, so its snapshot stops being cached (and charged).
        assert versions[version_id]["DeletionPolicy"] == "Delete"
        assert versions[version_id]["UpdateReplacePolicy"] == "Delete"


def test_a_changed_function_gets_a_new_version_and_an_unchanged_one_keeps_its_own() -> None:
    def version_ids(product_code: str) -> set[str]:
        template = synth(config_with(listing("quick", product_code), snapStart=True))[STACK].to_json()
        return set(_of_type(template["Resources"], "AWS::Lambda::Version"))

    first = version_ids("PROD_QUICK")
    assert len(first) == len(BUYER_FACING)
    assert version_ids("PROD_QUICK") == first  # a deploy with nothing changed publishes nothing
    # PRODUCT_CODE is in every function's environment: each one is published again.
    assert version_ids("PROD_QUICK_V2").isdisjoint(first)


def test_the_api_invokes_each_alias_and_only_the_alias_may_be_invoked(snap_start_on: Synthesized) -> None:
    resources = _resources(snap_start_on)
    aliases = {
        construct_id: _alias_of(resources, _function_id(resources, construct_id))
        for construct_id in BUYER_FACING
    }
    expected = {
        "POST": {aliases["Fulfillment"], aliases["Registration"], aliases["Usage"]},
        "GET": {aliases["Fulfillment"], aliases["Registration"]},  # GET of the fulfillment URL: a page
    }
    invoked: dict[str, set[str]] = {"POST": set(), "GET": set()}
    for method in _of_type(resources, "AWS::ApiGateway::Method").values():
        uri = method["Properties"]["Integration"]["Uri"]
        references = [part["Ref"] for part in uri["Fn::Join"][1] if isinstance(part, dict) and "Ref" in part]
        (target,) = [name for name in references if not name.startswith("AWS::")]
        invoked[method["Properties"]["HttpMethod"]].add(target)
    assert invoked == expected

    permissions = [
        permission["Properties"]
        for permission in _of_type(resources, "AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    # Each route's permission (and its console test's) names the alias: API Gateway may not invoke the
    # unqualified functions ($LATEST, which has no snapshot).
    assert len(permissions) == 2 * 5
    for permission in permissions:
        assert permission["FunctionName"] in [{"Ref": alias} for alias in aliases.values()], permission


def test_alarms_still_watch_the_functions(snap_start_on: Synthesized, snap_start_off: Synthesized) -> None:
    """Lambda reports a function's metrics under its name for every version and alias, so the alarms stay."""

    def alarms(synthesized: Synthesized) -> dict[str, Any]:
        return _of_type(_resources(synthesized), "AWS::CloudWatch::Alarm")

    assert alarms(snap_start_on) == alarms(snap_start_off)


def test_cfn_lint_finds_nothing_in_a_snap_start_template(snap_start_on: Synthesized, tmp_path: Path) -> None:
    # The synth of the fixture already ran cdk-nag (an unacknowledged finding raises).
    file = tmp_path / f"{STACK}.template.json"
    file.write_text(json.dumps(snap_start_on[STACK].to_json()))
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run(  # noqa: S603
        [cfn_lint, "--config-file", str(PROJECT_ROOT / ".cfnlintrc.yaml"), str(file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
