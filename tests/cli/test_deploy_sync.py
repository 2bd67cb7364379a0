"""The sync step at the end of a deploy, through `operations.cli.main` with a stand-in for the CDK CLI.

The stand-in `cdk` writes the templates `synth` would and the outputs file `deploy` would (with the
Fulfillment URL of a page served here on 127.0.0.1), so everything after it is the real command: STS and
SSM on a moto server, the Catalog API on the Marketplace emulator (reached by its endpoint variable, as in
AWS), whose change sets check the URL with a real GET.
"""

from __future__ import annotations

import io
import json
import stat
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.marketplace_emulator import EmulatorServer
from local.run import seed_emulator
from operations import cli, sync_listings
from stacks.config import load_config
from tests.cli.test_sync_listings import PATH, listing_config
from tests.integration.emulator.test_catalog import Pages

STACK = f"codio-marketplace-{PATH}"


def fake_tool(file: Path, body: str) -> Path:
    file.write_text(f"#!{sys.executable}\n{body}")
    file.chmod(file.stat().st_mode | stat.S_IXUSR)
    return file


class Deploy:
    """A deploy of one listing: the stand-in cdk, moto (STS, SSM), the emulator and the config file."""

    def __init__(self, folder: Path, emulator: EmulatorServer, pages: Pages) -> None:
        self.emulator = emulator
        self.pages = pages
        self.folder = folder
        self.log = folder / "cdk-calls.txt"
        self.deploy_exit = 0
        self.config_file = folder / "marketplace-config.json"
        self.config_file.write_text(json.dumps(listing_config()))
        seed_emulator(emulator.url, load_config(self.config_file), [PATH])
        self.settings = folder / "cdk-settings.json"
        self.write_settings()
        self.cdk = fake_tool(
            folder / "cdk",
            f"""import json, sys
from pathlib import Path
settings = json.loads(Path({str(self.settings)!r}).read_text())
with open({str(self.log)!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[0] == "synth":
    out = Path(args[args.index("--output") + 1])
    out.mkdir(parents=True, exist_ok=True)
    template = json.dumps({{"Resources": {{"T": {{"Type": "AWS::SNS::Topic"}}}}}})
    (out / "{STACK}.template.json").write_text(template)
    # the cloud assembly --plan reads, as cdk writes it for a stack synthesized without an account
    env = "${{AWS::AccountId}}-${{AWS::Region}}"
    bucket = "cdk-hnb659fds-assets-" + env
    key = "template-" + str(len(template)) + ".json"
    role = "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/cdk-hnb659fds-"
    publisher = role + "file-publishing-role-" + env
    destination = {{"bucketName": bucket, "objectKey": key, "assumeRoleArn": publisher}}
    source = {{"path": "{STACK}.template.json", "packaging": "file"}}
    asset = {{"source": source, "destinations": {{"d": destination}}}}
    assets = {{"version": "55.0.0", "files": {{"t": asset}}}}
    (out / "{STACK}.assets.json").write_text(json.dumps(assets))
    stack = {{
        "type": "aws:cloudformation:stack",
        "environment": "aws://unknown-account/us-east-1",
        "properties": {{
            "templateFile": "{STACK}.template.json",
            "tags": {{"Listing": "ai-skills"}},
            "assumeRoleArn": role + "deploy-role-" + env,
            "cloudFormationExecutionRoleArn": role + "cfn-exec-role-" + env,
            "stackTemplateAssetObjectUrl": "s3://" + bucket + "/" + key,
        }},
        "dependencies": ["{STACK}.assets"],
    }}
    artifacts = {{
        "{STACK}.assets": {{"type": "cdk:asset-manifest", "properties": {{"file": "{STACK}.assets.json"}}}},
        "{STACK}": stack,
    }}
    (out / "manifest.json").write_text(json.dumps({{"version": "55.0.0", "artifacts": artifacts}}))
elif args[0] == "deploy":
    Path(args[args.index("--outputs-file") + 1]).write_text(json.dumps(settings["outputs"]))
    sys.exit(settings["exit"])
""",
        )

    def write_settings(self) -> None:
        outputs = {STACK: {"WebsiteUrl": self.pages.url("/"), "FulfillmentUrl": self.pages.url()}}
        self.settings.write_text(json.dumps({"outputs": outputs, "exit": self.deploy_exit}))

    def run(self, *extra: str) -> int:
        return cli.main(["--config", str(self.config_file), *extra])

    def cdk_calls(self) -> list[str]:
        return [line.split()[0] for line in self.log.read_text().splitlines()]

    def catalog_calls(self) -> list[str]:
        return [call.target.rsplit(".", 1)[-1] for call in self.emulator.catalog_calls]

    def started(self) -> list[dict[str, Any]]:
        return [
            json.loads(call.request_body)
            for call in self.emulator.catalog_calls
            if call.target.endswith(".StartChangeSet")
        ]


@pytest.fixture
def deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deploy]:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "")  # the deploy sets it; restored after the test
    monkeypatch.setattr(sync_listings, "FIRST_POLL_SECONDS", 0.05)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: nobody to ask
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    pages = Pages()
    try:
        host, port = moto.get_host_and_port()
        # moto's servers in one process share their state: start with no stacks another test left.
        reset = urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - 127.0.0.1
        for service in ("STS", "SSM", "CLOUDFORMATION", "S3"):
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", f"http://{host}:{port}")
        boto3.client("s3", region_name="us-east-1").create_bucket(
            Bucket="cdk-hnb659fds-assets-123456789012-us-east-1"
        )
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/cdk-bootstrap/hnb659fds/version", Value="27", Type="String", Overwrite=True
        )
        with EmulatorServer(record_calls=True, catalog_delay_seconds=0.05) as emulator:
            monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_CATALOG", emulator.url)
            stand_in = Deploy(tmp_path, emulator, pages)
            monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
            monkeypatch.setattr(cli, "CDK", stand_in.cdk)
            cfn_lint = fake_tool(tmp_path / "cfn-lint", "import sys\nsys.exit(0)\n")
            monkeypatch.setattr(cli, "CFN_LINT", cfn_lint)
            monkeypatch.setattr(cli, "OUTDIR", tmp_path / "cdk.out")
            monkeypatch.setattr(cli, "OUTPUTS_FILE", tmp_path / "deploy-outputs.json")
            monkeypatch.setattr(cli, "PLAN_FILE", tmp_path / "deploy-plan.json")
            yield stand_in
    finally:
        pages.server.shutdown()
        pages.server.server_close()
        moto.stop()


def test_a_deploy_with_yes_puts_the_stacks_fulfillment_url_and_the_dimensions_on_the_listing(
    deploy: Deploy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy.run("--yes") == 0
    assert deploy.cdk_calls() == ["synth", "deploy"]
    captured = capsys.readouterr()
    assert f"+ fulfillment URL: {deploy.pages.url()}  [AddDeliveryOptions]" in captured.out
    # the plan comes after the URL table
    assert captured.out.index("Fulfillment URL") < captured.out.index("[AddDeliveryOptions]")
    assert "the listing now matches the config" in captured.err
    (request,) = deploy.started()
    assert [change["ChangeType"] for change in request["ChangeSet"]] == [
        "UpdateInformation",
        "AddDimensions",
        "AddDeliveryOptions",
    ]
    (entity,) = deploy.emulator.catalog.entity_views()
    assert entity["DeliveryOptions"][0]["FulfillmentUrl"] == deploy.pages.url()

    assert deploy.run("--yes") == 0  # a second deploy: the listing matches, nothing is sent
    assert "nothing was sent" in capsys.readouterr().err
    assert len(deploy.started()) == 1


def test_without_a_terminal_or_yes_the_deploy_succeeds_shows_the_plan_and_says_how_to_send_it(
    deploy: Deploy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy.run() == 0
    captured = capsys.readouterr()
    assert f"+ fulfillment URL: {deploy.pages.url()}  [AddDeliveryOptions]" in captured.out
    assert "send it with ./deploy-marketplace.sh --sync-listings --yes" in captured.err
    assert deploy.started() == []


def test_at_a_terminal_the_deploy_asks_and_sends_only_on_yes(
    deploy: Deploy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    questions: list[str] = []

    def answer(word: str) -> None:
        def ask(question: str) -> str:
            questions.append(question)
            return word

        monkeypatch.setattr(sync_listings, "terminal_prompt", lambda: ask)

    answer("n")
    assert deploy.run() == 0
    assert questions == ["Send these changes to AWS Marketplace? [y/N] "]
    assert deploy.started() == []
    answer("y")
    assert deploy.run() == 0
    assert len(deploy.started()) == 1


def test_no_sync_deploys_without_reading_the_catalog(deploy: Deploy) -> None:
    assert deploy.run("--no-sync", "--yes") == 0
    assert deploy.cdk_calls() == ["synth", "deploy"]
    assert deploy.catalog_calls() == []


def test_a_failed_deploy_syncs_nothing(deploy: Deploy, capsys: pytest.CaptureFixture[str]) -> None:
    deploy.deploy_exit = 1
    deploy.write_settings()
    assert deploy.run("--yes") == cli.EXIT_DEPLOY_FAILED
    assert deploy.catalog_calls() == []
    assert "Syncing" not in capsys.readouterr().err


def test_a_catalog_that_cannot_be_reached_is_a_warning_and_the_deploy_exits_0(
    deploy: Deploy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_CATALOG", "http://127.0.0.1:9")
    assert deploy.run("--yes") == 0
    err = capsys.readouterr().err
    assert "warning: the deploy succeeded, but the listings on AWS Marketplace were not synced: " in err
    assert "AWS could not be reached" in err and "./deploy-marketplace.sh --sync-listings" in err
    assert "Traceback" not in err


class Refusing:
    """A Catalog API that refuses every call as AWS does without the permission."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.dumps({"Message": "User is not authorized to perform: ListEntities"}).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-ErrorType", "AccessDeniedException")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_a_catalog_that_refuses_is_a_warning_and_the_deploy_exits_0(
    deploy: Deploy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refusing = Refusing()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_CATALOG", refusing.url)
        assert deploy.run("--yes") == 0
    finally:
        refusing.server.shutdown()
        refusing.server.server_close()
    err = capsys.readouterr().err
    assert "were not synced: AWS refused: AccessDeniedException: User is not authorized" in err
    assert "Traceback" not in err


def test_a_change_aws_marketplace_does_not_allow_is_a_warning_after_the_deploy(
    deploy: Deploy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy.run("--yes") == 0
    config = listing_config()
    config["marketplaceListings"][PATH]["dimensions"][0]["name"] = "students"
    deploy.config_file.write_text(json.dumps(config))
    capsys.readouterr()
    assert deploy.run("--yes") == 0
    err = capsys.readouterr().err
    assert "warning: the config asks for changes AWS Marketplace does not allow; nothing was sent" in err
    assert "dimensions[0].name: 'students' would replace the live dimension 'learners'" in err
    assert len(deploy.started()) == 1


def test_a_confirmed_change_set_that_fails_makes_the_deploy_exit_1(
    deploy: Deploy, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy.pages.status = 404
    assert deploy.run("--yes") == sync_listings.EXIT_FAILED
    assert "AddDeliveryOptions: INVALID_FULFILLMENT_URL" in capsys.readouterr().err


def test_no_sync_goes_with_a_deploy_only(deploy: Deploy, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        deploy.run("--synth", "--no-sync")
    assert raised.value.code == 64
    assert "--no-sync goes with a deploy" in capsys.readouterr().err


def test_plan_shows_each_listings_sync_plan_after_the_stacks_change_sets_and_never_sends_or_asks(
    deploy: Deploy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_question() -> None:
        raise AssertionError("--plan asked a question")

    monkeypatch.setattr(sync_listings, "terminal_prompt", no_question)
    assert deploy.run("--plan") == 0
    assert deploy.cdk_calls() == ["synth"]
    captured = capsys.readouterr()
    assert "Comparing the stacks with AWS account" in captured.err and "Deploying" not in captured.err
    assert f"{STACK} (us-east-1, CREATE): 1 change(s)" in captured.out
    assert "  + Add     T  AWS::SNS::Topic" in captured.out
    assert captured.out.index("AWS::SNS::Topic") < captured.out.index("[UpdateInformation]")
    (written,) = deploy.folder.glob("deploy-plan-*.json")
    assert json.loads(written.read_text())["stacks"][0]["stack"] == STACK
    assert "Changes a sync would make to the listings on AWS Marketplace" in captured.err
    assert "~ title: 'CODIO_AI' → 'Codio AI Skills Training'  [UpdateInformation]" in captured.out
    assert "+ dimension learners: 'Active learners in the hour' in Users" in captured.out
    assert "note: fulfillment URL: the listing's stack is not deployed" in captured.out
    assert set(deploy.catalog_calls()) == {"ListEntities", "DescribeEntity"}

    assert deploy.run("--discard-plan") == 0  # its empty stack gone, the stack can be made
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"FulfillmentUrl": {"Value": deploy.pages.url()}},
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=STACK, TemplateBody=json.dumps(template)
    )
    try:
        assert deploy.run("--plan") == 0
        out = capsys.readouterr().out
        assert f"+ fulfillment URL: {deploy.pages.url()}  [AddDeliveryOptions]" in out
        assert f"{STACK} (us-east-1, UPDATE): 2 change(s)" in out  # Topic for T
        assert deploy.started() == []
        assert deploy.emulator.catalog.entity_views()[0]["DeliveryOptions"] == []
    finally:
        boto3.client("cloudformation", region_name="us-east-1").delete_stack(StackName=STACK)


def test_plan_says_in_one_line_why_the_live_listings_could_not_be_read(
    deploy: Deploy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_CATALOG", "http://127.0.0.1:9")
    assert deploy.run("--plan") == 0
    captured = capsys.readouterr()
    (line,) = [line for line in captured.out.splitlines() if "could not be read" in line]
    assert line.startswith("AWS Marketplace listings: the live listings could not be read (AWS could not be ")
    assert "Traceback" not in captured.err


def test_plan_names_a_change_a_sync_would_refuse(deploy: Deploy, capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy.run("--yes") == 0
    config = listing_config(pricingModel="contract")
    deploy.config_file.write_text(json.dumps(config))
    capsys.readouterr()
    assert deploy.run("--plan") == 0
    out = capsys.readouterr().out
    assert "A sync would refuse these changes, which AWS Marketplace does not allow:" in out
    assert "marketplaceListings.ai-skills.pricingModel: dimension 'learners' is ExternallyMetered" in out
    assert len(deploy.started()) == 1


def test_require_approval_has_cdk_stop_on_broadening_changes_and_says_what_to_do_without_a_terminal(
    deploy: Deploy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy.run("--no-sync") == 0
    deploy.deploy_exit = 1  # what cdk does when it would ask and no terminal is attached
    deploy.write_settings()
    assert deploy.run("--require-approval", "--no-sync") == cli.EXIT_DEPLOY_FAILED
    calls = deploy.log.read_text().splitlines()
    first, second = [line.split() for line in calls if line.startswith("deploy")]
    assert first[first.index("--require-approval") + 1] == "never"
    assert second[second.index("--require-approval") + 1] == "broadening"
    assert second[second.index("--concurrency") + 1] == "1"  # cdk asks about one stack at a time
    error = capsys.readouterr().err
    assert "cdk can only ask on a terminal" in error
    assert "--plan and run them with --execute-plan --require-approval --yes" in error
