"""The gates every synth passes: cdk-nag (AwsSolutions + Serverless), cfn-lint, and checkov (an independent
scanner, in its own venv) with nothing unexplained."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_cdk import App, RemovalPolicy, Validations, aws_s3 as s3

from stacks.app_builder import build_app
from tests.infrastructure.conftest import ACCOUNT, PROJECT_ROOT, Synthesized, config_with, listing, new_app


def test_nag_fails_the_synth_on_an_unacknowledged_finding() -> None:
    # Given a listing stack with one bucket that breaks AwsSolutions rules (no SSL enforcement, no logs)
    app = new_app()
    _, (stack,) = build_app(config_with(listing("gate", "PROD_GATE")), account=ACCOUNT, app=app)
    s3.Bucket(stack, "CarelessBucket", removal_policy=RemovalPolicy.DESTROY)
    # When the app is synthesized, Then the synth stops and names the rules and the resource
    with pytest.raises(RuntimeError) as failure:
        app.synth()
    message = str(failure.value)
    assert "AwsSolutions-S10" in message
    assert "AwsSolutions-S1" in message
    assert "codio-marketplace-gate/CarelessBucket" in message
    assert "codio-marketplace-gate/Site" not in message  # the listing's own resources pass


def test_the_listing_stacks_have_no_unacknowledged_findings(two_listings: Synthesized) -> None:
    # The fixture's synth would have raised on any unacknowledged error; both stacks came out.
    assert len(two_listings.templates) == 2


def test_every_acknowledgement_gives_a_specific_reason() -> None:
    app = new_app()
    build_app(config_with(listing("reasons", "PROD_REASONS")), account=ACCOUNT, app=app)
    reasons: dict[str, str] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                reasons.update(entry.data)
    assert len(reasons) >= 10, "expected the stack to acknowledge its known findings"
    for rule, reason in reasons.items():
        assert len(reason) >= 50, f"{rule}: the reason is too short to explain anything: {reason!r}"
        pack = rule.removeprefix("Annotation::").split("-")[0]
        assert pack in {"AwsSolutions", "Serverless"}, rule


def test_cfn_lint_finds_nothing_in_the_templates(two_listings: Synthesized, tmp_path: Path) -> None:
    files = []
    for stack_name, template in two_listings.templates.items():
        file = tmp_path / f"{stack_name}.template.json"
        file.write_text(json.dumps(template.to_json()))
        files.append(str(file))
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run(  # noqa: S603
        [cfn_lint, "--config-file", str(PROJECT_ROOT / ".cfnlintrc.yaml"), *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _load_checkov_gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "checkov_gate", PROJECT_ROOT / "scripts" / "checkov_gate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gate = _load_checkov_gate()
needs_checkov = pytest.mark.skipif(
    not gate.CHECKOV.exists(), reason="checkov is not installed (./run-tests.sh sets up .venv-checkov)"
)


@pytest.fixture(scope="module")
def every_kind_of_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cloud assembly with every kind of stack and option: an e-mailed listing, a legacy contract listing
    on a custom domain, and (outside us-east-1) each one's event forwarder."""
    outdir = tmp_path_factory.mktemp("assembly")
    flags = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    app = App(outdir=str(outdir), context={**flags, "aws:cdk:bundling-stacks": []})
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    config = config_with(
        listing("mailed", "PROD_MAILED", notificationEmail="ops@example.com"),
        listing(
            "old",
            "PROD_OLD",
            legacy=True,
            pricingModel="contract",
            customDomain={"domainName": "learn.example.com", "certificateArn": certificate},
        ),
        region="eu-west-1",
    )
    build_app(config, account=ACCOUNT, app=app)
    app.synth()
    names = sorted(path.name for path in outdir.glob("*.template.json"))
    assert names == [
        "codio-marketplace-mailed-events.template.json",
        "codio-marketplace-mailed.template.json",
        "codio-marketplace-old-events.template.json",
        "codio-marketplace-old.template.json",
    ]
    return outdir


@needs_checkov
def test_checkov_finds_nothing_unexplained_and_every_skip_is_used(every_kind_of_template: Path) -> None:
    outcome = gate.scan([every_kind_of_template])
    assert outcome.unexplained == []
    assert outcome.passed > 100  # it did scan the templates
    # A skip that matches nothing is stale (its finding was fixed): it goes, so it cannot hide a new one.
    assert sorted(outcome.skipped) == sorted(skip.check_id for skip in gate.load_skips())


@needs_checkov
def test_checkov_reports_a_finding_the_skip_list_does_not_explain(
    every_kind_of_template: Path, tmp_path: Path
) -> None:
    # Given the metering job without its concurrency limit (the skip list exempts only the other functions)
    template: dict[str, Any] = json.loads(
        (every_kind_of_template / "codio-marketplace-old.template.json").read_text()
    )
    (job_id,) = [
        key
        for key, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and key.startswith("MeteringJobFunction")
    ]
    del template["Resources"][job_id]["Properties"]["ReservedConcurrentExecutions"]
    changed = tmp_path / "changed.template.json"
    changed.write_text(json.dumps(template))
    # When the gate runs, Then it fails and names the check, the resource and the template
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(PROJECT_ROOT / "scripts" / "checkov_gate.py"), str(changed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: checkov: CKV_AWS_115 (Ensure that AWS Lambda function is configured for function-level "
        f"concurrent execution limit) on AWS::Lambda::Function.{job_id} in changed.template.json: fix it, "
        "or list it in checkov-skips.json with why"
    ]
    assert "0 unexplained" not in result.stderr


def test_a_skip_covers_only_its_check_and_its_resources() -> None:
    skip = gate.Skip("CKV_AWS_115", "reason", ("AWS::Lambda::Function.Usage*",))
    usage = gate.Finding("CKV_AWS_115", "limit", "AWS::Lambda::Function.UsageFunctionAB12", "t.json")
    job = gate.Finding("CKV_AWS_115", "limit", "AWS::Lambda::Function.MeteringJobFunctionCD34", "t.json")
    other = gate.Finding("CKV_AWS_116", "dlq", "AWS::Lambda::Function.UsageFunctionAB12", "t.json")
    outcome = gate.judge([usage, job, other], [skip])
    assert outcome.skipped == {"CKV_AWS_115": [usage]}
    assert outcome.unexplained == [job, other]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"CKV_AWS_1000x": {"reason": "x" * 60}}, "not a checkov AWS check id"),
        ({"CKV_AWS_27": {"reason": "noise"}}, "the reason must say why"),
        ({"CKV_AWS_27": {"reason": "x" * 60, "resources": "AWS::SQS::Queue.*"}}, "must be a list"),
        ({"CKV_AWS_27": {"reason": "x" * 60, "why": "extra"}}, "and nothing else"),
    ],
)
def test_a_malformed_skip_list_is_refused_naming_the_entry(
    tmp_path: Path, entry: dict[str, Any], problem: str
) -> None:
    skips = tmp_path / "checkov-skips.json"
    skips.write_text(json.dumps(entry))
    with pytest.raises(gate.GateError, match=problem) as failure:
        gate.load_skips(skips)
    assert str(failure.value).startswith(f"checkov-skips.json: {next(iter(entry))}")


def test_the_reviewed_skip_list_loads_and_names_its_resources_exactly() -> None:
    skips = {skip.check_id: skip for skip in gate.load_skips()}
    # The fixes stay enforced: the metering job has its concurrency limit, every log group its reason.
    assert not any("MeteringJob" in pattern for pattern in skips["CKV_AWS_115"].resources)
    assert skips["CKV_AWS_115"].resources
