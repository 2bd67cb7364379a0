"""`./deploy-marketplace.sh` as a seller runs it: exit codes and messages for each failure mode."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.seed_config import SEED_CONFIG

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT_ROOT / "deploy-marketplace.sh"

# These tests share the checkout's cdk.out with `--synth`: run-tests.sh runs them one after another.
pytestmark = pytest.mark.checkout


def run(
    *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [str(SCRIPT), *args],
        cwd=PROJECT_ROOT,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def without_aws_credentials(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def write_config(tmp_path: Path, config: dict[str, object]) -> Path:
    file = tmp_path / "marketplace-config.json"
    file.write_text(json.dumps(config))
    return file


def test_help_describes_every_mode() -> None:
    result = run("--help")
    assert result.returncode == 0
    for mode in ("--synth", "--plan", "--local", "--config PATH", "--listing PATH"):
        assert mode in result.stdout


def test_a_bad_config_exits_non_zero_naming_every_problem_before_building_anything(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "marketplaceListings": {"x": {"name": "X", "path": "Bad_Path", "productCode": "has space"}},
            "deploymentSettings": {"regoin": "us-east-1"},
        },
    )
    started = time.monotonic()
    result = run("--synth", "--config", str(config))
    assert result.returncode == 2
    assert time.monotonic() - started < 60
    lines = result.stderr.splitlines()
    for expected in (
        "marketplaceListings.x.path: 'Bad_Path' does not have the expected form",
        "marketplaceListings.x.productCode: 'has space' does not have the expected form",
        "marketplaceListings.x.description: is required",
        "deploymentSettings.regoin: is not a known setting",
    ):
        assert any(expected in line for line in lines), expected
    assert "has 4 problems" in result.stderr  # dimensions are optional (the seed's config has none)
    assert "Synthesizing" not in result.stderr


def test_an_unknown_listing_is_refused(tmp_path: Path) -> None:
    result = run("--synth", "--listing", "no-such-listing")
    assert result.returncode == 2
    assert "--listing no-such-listing: no listing in marketplace-config.json has this path" in result.stderr


def test_deploy_without_credentials_stops_at_once_and_suggests_local(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(env=without_aws_credentials(tmp_path))
    assert result.returncode == 3
    assert time.monotonic() - started < 30
    assert "No AWS credentials found" in result.stderr
    assert "AWS_ACCESS_KEY_ID" in result.stderr and "AWS_PROFILE" in result.stderr
    assert "./deploy-marketplace.sh --local" in result.stderr


def test_synth_writes_one_template_per_enabled_listing(tmp_path: Path) -> None:
    dimension = [{"name": "users", "description": "Active users"}]
    config = write_config(
        tmp_path,
        {
            "marketplaceListings": {
                key: {
                    "name": key,
                    "description": f"{key} listing",
                    "productCode": f"CODE_{index}",
                    "path": key,
                    "enabled": key != "off",
                    "dimensions": dimension,
                }
                for index, key in enumerate(("alpha", "beta", "off"))
            },
            "deploymentSettings": {"namePrefix": "acme-mp"},
        },
    )
    result = run("--synth", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    templates = sorted(path.name for path in (PROJECT_ROOT / "cdk.out").glob("*.template.json"))
    assert templates == ["acme-mp-alpha.template.json", "acme-mp-beta.template.json"]
    assert "Linting the templates with cfn-lint" in result.stderr
    template = json.loads((PROJECT_ROOT / "cdk.out" / "acme-mp-alpha.template.json").read_text())
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert {"AcmeMp-alpha-RegistrationHandler", "AcmeMp-alpha-FulfillmentHandler"} <= {
        f["Properties"].get("FunctionName") for f in functions
    }
    # The Lambda asset is really bundled: the handlers, the shared package and Linux wheels of the deps
    code = next(
        f for f in functions if f["Properties"].get("FunctionName") == "AcmeMp-alpha-RegistrationHandler"
    )
    asset_hash = code["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    bundle = PROJECT_ROOT / "cdk.out" / f"asset.{asset_hash}"
    assert (bundle / "handlers" / "registration.py").is_file()
    assert (bundle / "marketplace_saas" / "__init__.py").is_file()
    assert list((bundle / "pydantic_core").glob("_pydantic_core.cpython-314-x86_64-linux-gnu.so"))
    assert not list(bundle.rglob("__pycache__"))
    # Traces come from Lambda's and API Gateway's active tracing: no X-Ray SDK in the functions.
    assert (bundle / "aws_lambda_powertools").is_dir()
    assert not list(bundle.glob("aws_xray_sdk*"))


def test_the_seeds_config_synthesizes_as_written_with_one_warning_per_listing(tmp_path: Path) -> None:
    config = tmp_path / "marketplace-config.json"
    config.write_text(SEED_CONFIG)
    result = run("--synth", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    templates = sorted(path.name for path in (PROJECT_ROOT / "cdk.out").glob("*.template.json"))
    assert templates == [
        "codio-marketplace-ai-skills.template.json",
        "codio-marketplace-data-analytics.template.json",
    ]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: marketplaceListings.{key}.dimensions: none declared; buyers can subscribe and register, "
        "but no usage is recorded or metered until you add the listing's dimensions"
        for key in ("ai-skills", "data-analytics")
    ]


def test_deploy_to_an_unbootstrapped_account_says_how_to_bootstrap(tmp_path: Path) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto's servers in one process share their state: another test may have bootstrapped the account.
        reset = urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - moto on 127.0.0.1
        env = without_aws_credentials(tmp_path)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_ENDPOINT_URL_STS": f"http://{host}:{port}",
                "AWS_ENDPOINT_URL_SSM": f"http://{host}:{port}",
            }
        )
        result = run(env=env)
    finally:
        server.stop()
    assert result.returncode == 4, result.stderr
    assert "is not bootstrapped for CDK in us-east-1" in result.stderr
    assert "npx cdk bootstrap aws://123456789012/us-east-1" in result.stderr
