"""The project's packages import by their own names from the venv set-up made, with no `sys.path` edits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["app.py", "stacks", "operations", "local", "lambda", "scripts", "bench"]


def _venv_with_import_path(folder: Path) -> Path:
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # noqa: S603
    for _ in range(2):  # set-up runs on every command: a second run must change nothing
        subprocess.run(  # noqa: S603
            ["bash", "-c", 'source scripts/setup.sh && VENV="$1" && setup_import_path', "setup", str(venv)],  # noqa: S607
            cwd=ROOT,
            check=True,
        )
    return venv


def test_set_up_puts_the_project_and_its_runtime_package_on_the_venvs_import_path(tmp_path: Path) -> None:
    venv = _venv_with_import_path(tmp_path)
    (pth,) = (venv / "lib").glob("python3*/site-packages/marketplace-listing-stacks.pth")
    assert pth.read_text().splitlines() == [str(ROOT), str(ROOT / "lambda")]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # Where each would be imported from (the venv is empty: importing them would want their dependencies).
    modules = [
        "operations.cli",
        "operations.record_usage",
        "stacks.config",
        "marketplace_saas.usage",
        "handlers",
    ]
    probe = (
        "import importlib.metadata, importlib.util, sys\n"
        "for name in sys.argv[1:]: print(importlib.util.find_spec(name).origin)\n"
        "print(len(list(importlib.metadata.distributions())))"
    )
    result = subprocess.run(  # noqa: S603
        [str(venv / "bin" / "python"), "-c", probe, *modules],
        cwd=tmp_path,  # not the project: the import path comes from the venv alone
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *origins, distributions = result.stdout.splitlines()
    assert [Path(origin) for origin in origins] == [
        ROOT / "operations" / "cli.py",
        ROOT / "operations" / "record_usage.py",
        ROOT / "stacks" / "config.py",
        ROOT / "lambda" / "marketplace_saas" / "usage.py",
        ROOT / "lambda" / "handlers" / "__init__.py",
    ]
    assert distributions == "0"  # a .pth adds no package: the venv still equals its lock


def test_no_shipped_module_edits_the_import_path() -> None:
    edits = re.compile(r"sys\.path\s*(\.(insert|append|extend)\b|\[|\+=|=)")
    files = [ROOT / "app.py"]
    for folder in SHIPPED[1:]:
        files += [path for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts]
    offenders = [
        str(path.relative_to(ROOT)) for path in files if edits.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_stacks_is_cdk_alone_and_does_not_import_the_operator_commands() -> None:
    imports = re.compile(r"^\s*(from|import)\s+operations\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "stacks").rglob("*.py")
        if imports.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
