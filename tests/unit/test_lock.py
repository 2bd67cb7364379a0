"""The lock of exact versions (requirements/): what set-up, the tests and the Lambda bundle install."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("project_lock", ROOT / "scripts" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lock = _load_lock_module()


def test_every_lock_is_compiled_from_this_pyproject_and_they_agree() -> None:
    assert lock.check_locks() == []


def test_a_changed_dependency_group_makes_the_lock_stale(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    text = lock.PYPROJECT.read_text()
    assert "runtime = [\n" in text
    pyproject.write_text(text.replace("runtime = [\n", 'runtime = [\n    "requests>=2",\n', 1))
    problems = lock.check_locks(pyproject)
    # runtime is in the dev lock (through local), in the deploy lock (local) and is the lambda lock.
    assert {problem.split(" ")[0] for problem in problems} == {
        "requirements/dev.txt",
        "requirements/deploy.txt",
        "requirements/lambda.txt",
    }
    assert all("python scripts/lock.py" in problem for problem in problems)


def test_a_subset_lock_that_pins_another_version_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [*lock.LOCKS, *lock.TOOL_LOCKS]:
        (tmp_path / f"{name}.txt").write_text(lock.lock_path(name).read_text())
    lambda_lock = tmp_path / "lambda.txt"
    version = lock.pins(lambda_lock)["pydantic"]
    lambda_lock.write_text(lambda_lock.read_text().replace(f"pydantic=={version}", "pydantic==2.0.0"))
    monkeypatch.setattr(lock, "LOCK_DIR", tmp_path)
    assert lock.check_locks() == [
        f"requirements/lambda.txt pins pydantic==2.0.0 but requirements/dev.txt pins {version}: "
        "run python scripts/lock.py"
    ]


def test_every_pin_is_exact_and_hash_checked() -> None:
    for name in [*lock.LOCKS, *lock.TOOL_LOCKS]:
        text = lock.lock_path(name).read_text()
        assert "--index-url" not in text and "--extra-index-url" not in text and "--find-links" not in text
        entries = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        assert entries and all("==" in entry and entry.endswith("\\") for entry in entries), name
        assert text.count("--hash=sha256:") >= len(entries)


def test_this_venv_has_exactly_the_dev_lock() -> None:
    """Two machines that set up from one commit run the same programs: `pip freeze` equals the lock."""
    if not Path(sys.prefix, ".lock-dev").exists():
        pytest.skip("not the project's .venv (set up by ./run-tests.sh)")
    assert lock.venv_differences(lock.pins(lock.lock_path("dev")), lock.installed()) == []


def test_a_tool_lock_is_independent_of_the_project_locks(tmp_path: Path) -> None:
    """checkov's lock answers to its own group only: changing it leaves the project's locks current, and a
    version the dev lock pins differently (boto3) is no disagreement."""
    pyproject = tmp_path / "pyproject.toml"
    text = lock.PYPROJECT.read_text()
    (pin,) = lock.dependency_groups()["checkov"]
    assert pin.startswith("checkov==")  # one exact, reviewed version
    pyproject.write_text(text.replace(f'"{pin}"', '"checkov==3.0.0"', 1))
    assert lock.check_locks(pyproject) == [
        "requirements/checkov.txt was not compiled from this pyproject.toml's dependency groups (checkov): "
        "run python scripts/lock.py --only checkov"
    ]
    assert lock.pins(lock.lock_path("checkov"))["checkov"] == pin.removeprefix("checkov==")
    assert lock.pins(lock.lock_path("checkov"))["boto3"] != lock.pins(lock.lock_path("dev"))["boto3"]


def test_the_checkov_venv_has_exactly_the_checkov_lock() -> None:
    venv = ROOT / ".venv-checkov"
    if not (venv / ".lock-checkov").exists():
        pytest.skip("no .venv-checkov (set up by ./run-tests.sh)")
    listing = subprocess.run(  # noqa: S603
        [str(venv / "bin" / "python"), str(ROOT / "scripts" / "lock.py"), "--verify-venv", "checkov"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr


def test_venv_differences_names_what_is_off() -> None:
    expected = {"boto3": "1.44.8", "moto": "5.2.5"}
    present = {"boto3": "1.44.9", "requests": "2.32.0", "pip": "26.3"}
    assert lock.venv_differences(expected, present) == [
        "boto3: locked 1.44.8, installed 1.44.9",
        "moto: locked 5.2.5, installed nothing",
        "requests==2.32.0 is installed but not locked",
    ]


def test_the_lambda_bundle_holds_exactly_the_runtime_lock() -> None:
    from stacks import bundling

    assert lock.lock_path("lambda") == bundling.LAMBDA_LOCK
    assert not (ROOT / "lambda" / "requirements.txt").exists(), "the bundle installs requirements/lambda.txt"
    bundled = {}
    for info in bundling.dependencies_dir().glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        bundled[lock.normalize(name)] = version
    assert bundled == lock.pins(lock.lock_path("lambda"))


def test_the_cdk_cli_reads_what_the_locked_aws_cdk_lib_writes() -> None:
    if not lock.CDK_CLI_BUNDLE.exists():
        pytest.skip("the CDK CLI is not installed (npm ci)")
    assert lock.cdk_cli_problem() is None


def test_an_older_cdk_cli_is_reported_with_what_to_do(tmp_path: Path) -> None:
    bundle = tmp_path / "lib" / "index.js"
    bundle.parent.mkdir()
    bundle.write_text(
        'var require_version = __commonJS({\n  "../@aws-cdk/cloud-assembly-schema/schema/version.json"'
        '(exports2, module2) {\n    module2.exports = {\n      schemaHash: "ab",\n      revision: 12\n    };'
    )
    (tmp_path / "package.json").write_text('{"version": "2.1000.0"}')
    problem = lock.cdk_cli_problem(bundle=bundle)
    assert problem is not None
    assert "aws-cdk 2.1000.0" in problem and "up to schema 12" in problem and "npm update aws-cdk" in problem
