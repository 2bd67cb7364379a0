"""The gates every synth passes: cdk-nag (AwsSolutions + Serverless) and cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import RemovalPolicy, Validations, aws_s3 as s3

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
