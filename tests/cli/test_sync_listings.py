"""`--sync-listings --local` against the Marketplace emulator on 127.0.0.1, end to end through the CLI.

The emulator is seeded as local mode seeds it (one SaaSProduct per listing, no URL, no dimensions), and the
fulfillment URL is a page served here on 127.0.0.1 whose answer to GET the test chooses, so the emulator's
real GET check decides the change set. Every StartChangeSet the command sent is read back from the wire and
checked against botocore's model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto.server import ThreadedMotoServer

from local.marketplace_emulator import EmulatorServer
from local.run import seed_emulator
from operations import cli, sync_listings, target
from stacks.config import load_config
from tests.integration.emulator import model_check
from tests.integration.emulator.test_catalog import UNCHECKED_PATTERNS, Pages

PATH = "ai-skills"


def listing_config(**changes: Any) -> dict[str, Any]:
    listing: dict[str, Any] = {
        "name": "Codio AI Skills Training",
        "description": "Build job-ready AI skills.",
        "productCode": "CODIO_AI",
        "path": PATH,
        "pricingModel": "subscription",
        "dimensions": [
            {"name": "learners", "description": "Active learners in the hour", "unit": "Users"},
            {"name": "lab_hours", "description": "Hours of hosted labs", "unit": "HostHrs"},
        ],
        **changes,
    }
    return {"marketplaceListings": {PATH: listing}}


@pytest.fixture
def pages() -> Iterator[Pages]:
    served = Pages()
    yield served
    served.server.shutdown()
    served.server.server_close()


class Local:
    """A stand-in for a running `--local`: the emulator, the fulfillment page and .local/endpoints.json."""

    def __init__(self, emulator: EmulatorServer, pages: Pages, folder: Path) -> None:
        self.emulator = emulator
        self.pages = pages
        self.config_file = folder / "marketplace-config.json"
        self.write(listing_config())
        seed_emulator(emulator.url, load_config(self.config_file), [PATH])
        endpoints = {
            "pid": os.getpid(),
            "emulator": {"url": emulator.url},
            "aws": {"url": "http://127.0.0.1:9"},
            "listings": {PATH: {"siteUrl": pages.url("/"), "fulfillmentUrl": pages.url()}},
        }
        self.endpoints_file = folder / "endpoints.json"
        self.endpoints_file.write_text(json.dumps(endpoints))

    def write(self, config: dict[str, Any]) -> None:
        self.config_file.write_text(json.dumps(config))

    def sync(self, *extra: str) -> int:
        return cli.main(["--config", str(self.config_file), "--sync-listings", "--local", *extra])

    def started(self) -> list[dict[str, Any]]:
        """Every StartChangeSet request the emulator received, as sent."""
        return [
            json.loads(call.request_body)
            for call in self.emulator.catalog_calls
            if call.target.endswith(".StartChangeSet")
        ]

    def live(self) -> dict[str, Any]:
        (entity,) = self.emulator.catalog.entity_views()
        return entity


@pytest.fixture
def local(pages: Pages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    with EmulatorServer(record_calls=True, catalog_delay_seconds=0.05) as emulator:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_MARKETPLACE_CATALOG"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        stand_in = Local(emulator, pages, tmp_path)
        monkeypatch.setattr(target, "ENDPOINTS", stand_in.endpoints_file)
        monkeypatch.setattr(sync_listings, "FIRST_POLL_SECONDS", 0.05)
        yield stand_in


def change_types(request: dict[str, Any]) -> list[str]:
    return [change["ChangeType"] for change in request["ChangeSet"]]


def model_problems(request: dict[str, Any]) -> list[str]:
    """Where a StartChangeSet request does not fit botocore's model (its own validator and ours)."""
    shape = (
        botocore.session.get_session()
        .get_service_model("marketplace-catalog")
        .operation_model("StartChangeSet")
        .input_shape
    )
    report = ParamValidator().validate(request, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    plain = {
        **request,
        "ChangeSet": [{k: v for k, v in c.items() if k != "DetailsDocument"} for c in request["ChangeSet"]],
    }
    problems += [
        problem
        for problem in model_check.value_problems(shape, plain, "", "json")
        if not any(unchecked in problem for unchecked in UNCHECKED_PATTERNS)
    ]
    return problems


def test_first_sync_sets_the_url_and_adds_the_dimensions_then_a_second_sends_nothing(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.sync("--yes") == 0
    out = capsys.readouterr().out
    assert f"+ fulfillment URL: {local.pages.url()}  [AddDeliveryOptions]" in out
    assert (
        "+ dimension learners: 'Active learners in the hour' in Users, ExternallyMetered  [AddDimensions]"
        in out
    )
    assert "~ title: 'CODIO_AI' → 'Codio AI Skills Training'  [UpdateInformation]" in out
    (request,) = local.started()
    assert change_types(request) == ["UpdateInformation", "AddDimensions", "AddDeliveryOptions"]
    assert request["Catalog"] == "AWSMarketplace" and request["ClientRequestToken"].startswith("sync-")
    assert model_problems(request) == []
    live = local.live()
    assert live["DeliveryOptions"][0]["FulfillmentUrl"] == local.pages.url()
    assert [(d["Key"], d["Unit"], d["Types"]) for d in live["Dimensions"]] == [
        ("learners", "Users", ["ExternallyMetered"]),
        ("lab_hours", "HostHrs", ["ExternallyMetered"]),
    ]
    assert live["Description"]["ProductTitle"] == "Codio AI Skills Training"
    assert live["Description"]["ShortDescription"] == "Build job-ready AI skills."

    assert local.sync("--yes") == 0
    assert "the live listing matches the config: nothing to send" in capsys.readouterr().out
    assert len(local.started()) == 1  # the second sync sent no change set


def test_a_changed_description_sends_one_update_dimensions_and_a_moved_url_one_update_delivery_options(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.sync("--yes") == 0
    config = listing_config()
    config["marketplaceListings"][PATH]["dimensions"][0]["description"] = "Learners active in the hour"
    local.write(config)
    assert local.sync("--yes") == 0
    assert (
        "~ dimension learners: description 'Active learners in the hour' → 'Learners active in the hour'"
        in (capsys.readouterr().out)
    )
    request = local.started()[-1]
    assert request["ChangeSet"] == [
        {
            "ChangeType": "UpdateDimensions",
            "Entity": {"Type": "SaaSProduct@1.0", "Identifier": local.live()["entityId"]},
            "DetailsDocument": [
                {
                    "Key": "learners",
                    "Types": ["ExternallyMetered"],
                    "Description": "Learners active in the hour",
                }
            ],
        }
    ]
    assert model_problems(request) == []
    assert local.live()["Dimensions"][0]["Description"] == "Learners active in the hour"

    endpoints = json.loads(local.endpoints_file.read_text())
    endpoints["listings"][PATH]["fulfillmentUrl"] = local.pages.url("/marketplace/fulfillment/v2")
    local.endpoints_file.write_text(json.dumps(endpoints))
    assert local.sync("--yes") == 0
    request = local.started()[-1]
    assert change_types(request) == ["UpdateDeliveryOptions"]
    (option,) = request["ChangeSet"][0]["DetailsDocument"]["DeliveryOptions"]
    assert option["Id"].startswith("do-") and model_problems(request) == []
    assert local.live()["DeliveryOptions"][0]["FulfillmentUrl"].endswith("/v2")


def test_a_changed_key_is_refused_before_any_change_set_naming_the_field(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.sync("--yes") == 0
    config = listing_config()
    config["marketplaceListings"][PATH]["dimensions"][0]["name"] = "students"
    local.write(config)
    capsys.readouterr()
    assert local.sync("--yes") == sync_listings.EXIT_REFUSED
    err = capsys.readouterr().err
    assert (
        "marketplaceListings.ai-skills.dimensions[0].name: 'students' would replace the live dimension "
        "'learners'" in err
    )
    assert "nothing was sent" in err
    assert len(local.started()) == 1


def test_a_pricing_model_that_would_change_the_types_is_refused(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.sync("--yes") == 0
    local.write(listing_config(pricingModel="contract"))
    assert local.sync("--yes") == sync_listings.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "marketplaceListings.ai-skills.pricingModel: dimension 'learners' is ExternallyMetered" in err
    assert len(local.started()) == 1


def test_two_syncs_at_once_the_second_reports_the_lock(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    local.emulator.catalog.delay_seconds = 1.0
    assert local.sync("--yes", "--no-wait") == 0
    assert local.sync("--yes") == sync_listings.EXIT_LOCKED
    err = capsys.readouterr().err
    assert "is locked by another change set that is still running (ResourceInUseException: " in err
    assert "Traceback" not in err
    assert len(local.started()) == 2  # the second was sent and refused by the Catalog


def test_a_url_that_does_not_answer_get_with_200_fails_the_change_set_and_the_command(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    local.pages.status = 404
    assert local.sync("--yes") == sync_listings.EXIT_FAILED
    err = capsys.readouterr().err
    assert "FAILED: CLIENT_ERROR" in err
    assert "AddDeliveryOptions: INVALID_FULFILLMENT_URL: The fulfillment URL must render with a 200" in err
    assert "answered 404" in err
    assert local.live()["DeliveryOptions"] == [] and local.live()["Dimensions"] == []


def test_without_a_terminal_or_yes_nothing_is_sent(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    assert local.sync() == sync_listings.EXIT_NOT_CONFIRMED
    assert "pass --yes" in capsys.readouterr().err
    assert local.started() == []


def test_the_prompt_sends_only_on_yes(local: Local) -> None:
    config = load_config(local.config_file)
    assert sync_listings.sync_listings(config, [PATH], local=True, yes=False, ask=lambda _: "n") == 0
    assert local.started() == []
    assert sync_listings.sync_listings(config, [PATH], local=True, yes=False, ask=lambda _: "yes") == 0
    assert len(local.started()) == 1


def test_an_entity_id_in_the_config_is_used_and_a_wrong_one_is_named(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    entity_id = local.live()["entityId"]
    local.write(listing_config(entityId=entity_id))
    assert local.sync("--yes") == 0
    assert local.started()[0]["ChangeSet"][0]["Entity"]["Identifier"] == entity_id
    other = local.emulator.marketplace.put_product({"productCode": "SOMEONE_ELSE"})
    local.emulator.catalog.ensure_entity(other)
    local.write(listing_config(entityId=other.product_id))
    assert local.sync("--yes") == 1
    assert (
        f"entityId: {other.product_id} is the product SOMEONE_ELSE, not CODIO_AI" in capsys.readouterr().err
    )
    assert len(local.started()) == 1
    local.write(listing_config(entityId="prod-doesnotexist"))
    assert local.sync("--yes") == 1
    assert "marketplaceListings.ai-skills.entityId: no product prod-doesnotexist" in capsys.readouterr().err


def test_local_mode_must_be_running(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    local.endpoints_file.unlink()
    assert local.sync("--yes") == 1
    assert "local mode is not running" in capsys.readouterr().err


def test_pull_listing_prints_the_live_listing_in_the_configs_form(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    config = listing_config()
    config["marketplaceListings"][PATH]["dimensions"][1]["displayName"] = "Lab hours"
    local.write(config)
    assert local.sync("--yes") == 0
    capsys.readouterr()
    assert cli.main(["--config", str(local.config_file), "--pull-listing", PATH, "--local"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        PATH: {
            "name": "Codio AI Skills Training",
            "description": "Build job-ready AI skills.",
            "productCode": "CODIO_AI",
            "entityId": local.live()["entityId"],
            "dimensions": [
                {"name": "learners", "description": "Active learners in the hour", "unit": "Users"},
                {
                    "name": "lab_hours",
                    "description": "Hours of hosted labs",
                    "unit": "HostHrs",
                    "displayName": "Lab hours",
                },
            ],
        }
    }
    assert f"fulfillment URL on AWS Marketplace: {local.pages.url()}" in captured.err
    assert len(local.started()) == 1  # reading changed nothing


def test_status_says_whether_the_live_listing_matches_and_the_last_change_set(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(local.config_file)
    ((path, matches, last),) = sync_listings.listing_states(config, [PATH], local=True)
    assert (path, matches, last) == (PATH, "5 differences", "none")
    assert local.sync("--yes") == 0
    ((_, matches, last),) = sync_listings.listing_states(config, [PATH], local=True)
    assert matches == "matches the config" and last.startswith("SUCCEEDED (")
    local.pages.status = 500
    endpoints = json.loads(local.endpoints_file.read_text())
    endpoints["listings"][PATH]["fulfillmentUrl"] = local.pages.url("/moved")
    local.endpoints_file.write_text(json.dumps(endpoints))
    assert local.sync("--yes") == sync_listings.EXIT_FAILED
    capsys.readouterr()
    sync_listings.show_listing_states(config, [PATH], local=True)
    captured = capsys.readouterr()
    assert captured.out == ""  # --status's table stays the only thing on standard output
    assert f"==> AWS Marketplace: {PATH} 1 difference; last change set: FAILED (" in captured.err


def test_in_aws_the_url_is_the_deployed_stacks_output_and_the_catalog_is_found_by_its_endpoint(
    pages: Pages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --local: CloudFormation (a moto server) holds the stack, the Catalog API is reached through
    AWS_ENDPOINT_URL_MARKETPLACE_CATALOG alone, as a seller's CI could point it at a test double."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setattr(sync_listings, "FIRST_POLL_SECONDS", 0.05)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", f"http://{host}:{port}")
        with EmulatorServer(record_calls=True, catalog_delay_seconds=0.05) as emulator:
            monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_CATALOG", emulator.url)
            config_file = tmp_path / "marketplace-config.json"
            config_file.write_text(json.dumps(listing_config()))
            seed_emulator(emulator.url, load_config(config_file), [PATH])
            arguments = ["--config", str(config_file), "--sync-listings", "--yes"]

            assert cli.main(arguments) == 0  # not deployed: dimensions and text only
            assert "fulfillment URL: the listing's stack is not deployed" in capsys.readouterr().out
            (entity,) = emulator.catalog.entity_views()
            assert entity["DeliveryOptions"] == [] and len(entity["Dimensions"]) == 2

            template = {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"FulfillmentUrl": {"Value": pages.url()}},
            }
            boto3.client("cloudformation", region_name="us-east-1").create_stack(
                StackName="codio-marketplace-ai-skills", TemplateBody=json.dumps(template)
            )
            assert cli.main(arguments) == 0
            assert f"+ fulfillment URL: {pages.url()}  [AddDeliveryOptions]" in capsys.readouterr().out
            (entity,) = emulator.catalog.entity_views()
            assert entity["DeliveryOptions"][0]["FulfillmentUrl"] == pages.url()
    finally:
        moto.stop()


def seller_file(listing: dict[str, Any]) -> str:
    """A config as a seller keeps it: 4-space indent, their own key order, a second listing, settings."""
    config = {
        "deploymentSettings": {"region": "us-east-1", "namePrefix": "codio-marketplace"},
        "marketplaceListings": {
            PATH: listing,
            "other": {
                "path": "other",
                "enabled": False,
                "productCode": "OTHER_CODE",
                "name": "Other product",
                "description": "Left exactly as it is.",
                "dimensions": [{"unit": "Users", "description": "Seats", "name": "seats"}],
            },
        },
    }
    return json.dumps(config, indent=4) + "\n"


def test_pull_listing_write_merges_the_live_listing_keeping_the_rest_of_the_file_and_its_order(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.sync("--yes") == 0
    entity = local.emulator.catalog.entities[local.live()["entityId"]]
    entity.title = "Codio AI Skills (2026)"
    entity.dimensions[0]["Description"] = "Learners active in the hour"
    entity.dimensions.append(
        {"Key": "seats", "Name": "Seats", "Description": "Named seats", "Unit": "Users",
         "Types": ["ExternallyMetered"]}
    )  # fmt: skip
    ours: dict[str, Any] = {
        "path": PATH,
        "productCode": "CODIO_AI",
        "name": "Codio AI Skills Training",
        "pricingModel": "subscription",
        "dimensions": [
            {"unit": "Users", "name": "learners", "description": "Active learners in the hour"},
            {"name": "lab_hours", "description": "Hours of hosted labs", "unit": "HostHrs"},
            {"name": "not_yet_live", "description": "Added in the config, not synced yet"},
        ],
        "description": "Build job-ready AI skills.",
        "branding": {"accentColor": "#123456"},
    }
    local.config_file.write_text(seller_file(ours))
    capsys.readouterr()

    assert cli.main(["--config", str(local.config_file), "--pull-listing", PATH, "--write", "--local"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"into marketplaceListings.{PATH} of {local.config_file}" in captured.err
    expected = json.loads(json.dumps(ours))
    expected["name"] = "Codio AI Skills (2026)"
    expected["dimensions"][0]["description"] = "Learners active in the hour"
    expected["dimensions"].append(
        {"name": "seats", "description": "Named seats", "unit": "Users", "displayName": "Seats"}
    )
    # Byte for byte: the same indentation, key order (the listing's, its dimensions', the file's), the other
    # listing and the settings untouched, the trailing newline kept.
    assert local.config_file.read_text() == seller_file(expected)
    assert [p.name for p in local.config_file.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert len(local.started()) == 1  # reading changed nothing on the listing


def test_pull_listing_write_through_a_symlink_writes_the_file_it_points_at(
    local: Local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.sync("--yes") == 0
    local.emulator.catalog.entities[local.live()["entityId"]].title = "Codio AI Skills (2026)"
    link = tmp_path / "linked-config.json"
    link.symlink_to(local.config_file)
    assert cli.main(["--config", str(link), "--pull-listing", PATH, "--write", "--local"]) == 0
    assert link.is_symlink()
    assert json.loads(local.config_file.read_text())["marketplaceListings"][PATH]["name"] == (
        "Codio AI Skills (2026)"
    )


def test_pull_listing_write_refuses_a_merge_that_is_not_a_valid_config_and_leaves_the_file_as_it_was(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    # As seeded, the live listing has no short description yet, which the config requires.
    local.config_file.write_text(seller_file(listing_config()["marketplaceListings"][PATH]))
    before = local.config_file.read_bytes()
    assert cli.main(["--config", str(local.config_file), "--pull-listing", PATH, "--write", "--local"]) == 2
    err = capsys.readouterr().err
    assert "would not be a valid config; the file was not changed" in err
    assert f"marketplaceListings.{PATH}.description:" in err
    assert local.config_file.read_bytes() == before
    assert [p.name for p in local.config_file.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_write_goes_with_pull_listing_only(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        local.sync("--write")
    assert raised.value.code == 64
    assert "--write goes with --pull-listing PATH" in capsys.readouterr().err
