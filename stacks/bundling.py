"""Bundle the Lambda asset without Docker: the `lambda/` sources plus their pip dependencies.

The dependencies are the lock's runtime group, `requirements/lambda.txt` (exact versions, hash-checked), so
the functions run the very versions the tests ran. They are installed once per lock into
`.cache/lambda-deps/<hash>/` as Linux wheels for the Lambda runtime (`--platform manylinux2014_x86_64
--only-binary=:all:`), then copied into each bundle, so a synth after the first costs a file copy rather than
a download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import cast

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling, aws_lambda

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_ROOT = PROJECT_ROOT / "lambda"
LAMBDA_LOCK = PROJECT_ROOT / "requirements" / "lambda.txt"
DEPENDENCY_CACHE = PROJECT_ROOT / ".cache" / "lambda-deps"

# The runtime and platform the wheels are chosen for; they must match the functions' runtime.
RUNTIME = aws_lambda.Runtime.PYTHON_3_14
PYTHON_VERSION = "3.14"
PLATFORM = "manylinux2014_x86_64"

# What never belongs in a deployed function.
EXCLUDED = ("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")


class BundlingError(RuntimeError):
    """The Lambda asset could not be built (usually: pip could not reach PyPI)."""


def dependencies_dir(requirements: Path = LAMBDA_LOCK) -> Path:
    """Install the locked runtime dependencies for the Lambda platform once and return where they are."""
    digest = hashlib.sha256(requirements.read_bytes() + f"{PYTHON_VERSION}/{PLATFORM}".encode()).hexdigest()[
        :16
    ]
    target = DEPENDENCY_CACHE / digest
    if target.is_dir():
        return target
    DEPENDENCY_CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=DEPENDENCY_CACHE))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--requirement", str(requirements), "--require-hashes", "--no-deps", "--target", str(staging),
        "--platform", PLATFORM, "--python-version", PYTHON_VERSION,
        "--implementation", "cp", "--only-binary=:all:", "--no-compile",
    ]  # fmt: skip
    print(f"Installing Lambda dependencies for Python {PYTHON_VERSION} ({PLATFORM})...", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundlingError(
            f"pip could not install {requirements.relative_to(PROJECT_ROOT)} for the Lambda runtime:\n"
            f"{result.stderr.strip()}"
        )
    try:
        staging.rename(target)  # atomic: a concurrent synth either sees the whole directory or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another synth finished first; use its copy
    return target


@jsii.implements(ILocalBundling)
class LocalPythonBundling:
    """Copies the dependencies and the `lambda/` sources into CDK's bundling output directory."""

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        output = Path(output_dir)
        shutil.copytree(dependencies_dir(), output, dirs_exist_ok=True)
        shutil.copytree(LAMBDA_ROOT, output, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*EXCLUDED))
        # Lambda runs as another user: make sure everything is world-readable.
        for root, dirs, files in os.walk(output):
            for name in dirs:
                Path(root, name).chmod(0o755)
            for name in files:
                Path(root, name).chmod(0o644)
        return True


def lambda_code() -> aws_lambda.Code:
    """The one asset every function of a stack runs from (create one per stack: assets bind to a stack)."""
    return aws_lambda.Code.from_asset(
        str(LAMBDA_ROOT),
        exclude=list(EXCLUDED),
        bundling=BundlingOptions(
            # Never used: local bundling always succeeds or raises, and there is no Docker engine here.
            image=DockerImage.from_registry("local-bundling-only"),
            # jsii calls try_bundle(output_dir, options); its Python typing spells the options out instead.
            local=cast(ILocalBundling, LocalPythonBundling()),
        ),
    )
