"""The lock of exact versions: compile it from pyproject.toml, check it, and make a venv match it.

pyproject.toml's dependency groups say what the project needs (ranges); the files in `requirements/` say
exactly which versions are installed, with their hashes, so that every machine runs the same programs:

    requirements/dev.txt      the `dev` group: tools, tests and everything below (run-tests.sh, CI)
    requirements/deploy.txt   the `cdk` and `local` groups (deploy-marketplace.sh)
    requirements/lambda.txt   the `runtime` group: what is bundled into every Lambda function

`deploy.txt` and `lambda.txt` are compiled under the constraint of `dev.txt`, so a package has one version in
all three. A tool whose dependencies clash with the project's has a lock of its own, compiled without that
constraint and installed into a venv of its own, `.venv-<lock>/` (scripts/setup.sh, `setup_tool`):

    requirements/checkov.txt  the `checkov` group: the IaC scanner of the quality gates (run-tests.sh)
 The files are written by pip-tools (pip-compile), which uses pip's own configuration, so no index
URL is written into them.

    python scripts/lock.py                      relock after editing pyproject.toml (keeps the current pins
                                                that the new ranges still allow)
    python scripts/lock.py --upgrade            every package to the newest version the ranges allow
    python scripts/lock.py --upgrade-package P  only P (and what P needs) to its newest allowed version
    python scripts/lock.py --only checkov       relock only that tool's lock (the others stay untouched)
    python scripts/lock.py --check              exit 1 if the locks were not compiled from this pyproject.toml
    python scripts/lock.py --verify-venv LOCK   exit 1 unless this interpreter has exactly LOCK's versions
    python scripts/lock.py --prune LOCK...      uninstall what none of the given locks lists (set-up uses it)
    python scripts/lock.py --check-cdk-cli      exit 1 if the CDK CLI cannot read what aws-cdk-lib writes

Everything but compiling runs on the standard library alone, so set-up can call it before the venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PYPROJECT = PROJECT / "pyproject.toml"
LOCK_DIR = PROJECT / "requirements"
CDK_CLI_BUNDLE = PROJECT / "node_modules" / "aws-cdk" / "lib" / "index.js"

# Each lock and the dependency groups it installs. The first one is compiled first and constrains the others.
LOCKS: dict[str, tuple[str, ...]] = {
    "dev": ("dev",),
    "deploy": ("cdk", "local"),
    "lambda": ("runtime",),
}
# Tools that run in a venv of their own (`.venv-<lock>`): each lock is compiled alone, constrained by nothing.
TOOL_LOCKS: dict[str, tuple[str, ...]] = {
    "checkov": ("checkov",),
}
STAMP_PREFIX = "# dependency-groups sha256: "
# Never removed from a venv by --prune: the installer itself and its build tools.
KEEP = frozenset({"pip", "setuptools", "wheel"})
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


class LockError(Exception):
    """The lock cannot be made or used; the message says what to do."""


def normalize(name: str) -> str:
    """PEP 503: `aws_cdk.asset-awscli-v1` and `aws-cdk-asset-awscli-v1` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_groups(pyproject: Path = PYPROJECT) -> dict[str, list[str]]:
    """Every group's requirements, with `include-group` entries expanded (PEP 735)."""
    groups: dict[str, list[object]] = tomllib.loads(pyproject.read_text())["dependency-groups"]

    def expand(name: str, seen: tuple[str, ...]) -> list[str]:
        if name in seen:
            raise LockError(f"pyproject.toml: dependency group {name!r} includes itself")
        if name not in groups:
            raise LockError(f"pyproject.toml: no dependency group {name!r}")
        out: list[str] = []
        for entry in groups[name]:
            if isinstance(entry, Mapping):
                out += expand(str(entry["include-group"]), (*seen, name))
            else:
                out.append(str(entry))
        return out

    return {name: expand(name, ()) for name in groups}


def groups_digest(lock: str, groups: Mapping[str, list[str]]) -> str:
    """What a lock was compiled from: its groups' requirements and those of the lock constraining it."""
    names = sorted(TOOL_LOCKS[lock] if lock in TOOL_LOCKS else {*LOCKS[lock], *LOCKS[next(iter(LOCKS))]})
    text = json.dumps({name: groups[name] for name in names}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def lock_path(lock: str) -> Path:
    return LOCK_DIR / f"{lock}.txt"


def pins(path: Path) -> dict[str, str]:
    """The exact versions a lock file lists, by normalized name."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def recorded_digest(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith(STAMP_PREFIX):
            return line.removeprefix(STAMP_PREFIX).strip()
    return None


def _stamp(path: Path, digest: str) -> None:
    lines = [line for line in path.read_text().splitlines() if not line.startswith(STAMP_PREFIX)]
    # After pip-compile's header (the leading comment block), before the first pin.
    at = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    lines.insert(at, STAMP_PREFIX + digest)
    path.write_text("\n".join(lines) + "\n")


def compile_locks(upgrade: bool, upgrade_packages: Sequence[str], only: Sequence[str] = ()) -> None:
    """Run pip-compile for every lock (or only the tool locks named), the project's first one first; write
    the files only when every one succeeded."""
    pip_compile = shutil.which("pip-compile", path=str(Path(sys.executable).parent)) or shutil.which(
        "pip-compile"
    )
    if pip_compile is None:
        raise LockError("pip-compile is not installed: run ./run-tests.sh once (it sets up the dev tools)")
    groups = dependency_groups()
    LOCK_DIR.mkdir(exist_ok=True)
    first = next(iter(LOCKS))
    unknown = sorted(set(only) - set(TOOL_LOCKS))
    if unknown:
        raise LockError(f"--only takes a tool lock ({', '.join(TOOL_LOCKS)}), not {', '.join(unknown)}")
    chosen = {name: TOOL_LOCKS[name] for name in only} if only else {**LOCKS, **TOOL_LOCKS}
    with tempfile.TemporaryDirectory(prefix="lock-") as work:
        workdir = Path(work)
        for lock, names in chosen.items():
            lines = [requirement for name in names for requirement in groups[name]]
            if lock in LOCKS and lock != first:
                # One version of each package in every lock: the others are subsets of the first.
                shutil.copy(workdir / f"{first}.out.txt", workdir / f"{first}.txt")
                lines.append(f"-c {first}.txt")
            (workdir / f"{lock}.in").write_text("\n".join(lines) + "\n")
            output = workdir / f"{lock}.out.txt"
            if lock_path(lock).exists():
                shutil.copy(lock_path(lock), output)  # pip-compile keeps the pins it finds there
            command = [
                pip_compile, "--quiet", "--generate-hashes", "--allow-unsafe", "--strip-extras",
                "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
                "--output-file", output.name, f"{lock}.in",
            ]  # fmt: skip
            if upgrade:
                command.append("--upgrade")
            for package in upgrade_packages if lock in (first, *TOOL_LOCKS) else ():
                command += ["--upgrade-package", package]
            print(f"==> Locking requirements/{lock}.txt ({', '.join(names)})", file=sys.stderr)
            env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "python scripts/lock.py"}
            result = subprocess.run(command, cwd=workdir, env=env, check=False)  # noqa: S603
            if result.returncode != 0:
                raise LockError(
                    f"pip-compile could not lock requirements/{lock}.txt (see above); nothing changed"
                )
            _stamp(output, groups_digest(lock, groups))
        for lock in chosen:
            (workdir / f"{lock}.out.txt").replace(lock_path(lock))
    for lock in chosen:
        print(f"requirements/{lock}.txt: {len(pins(lock_path(lock)))} packages", file=sys.stderr)


def check_locks(pyproject: Path = PYPROJECT) -> list[str]:
    """Problems with the committed locks: missing, stale against pyproject.toml, or disagreeing."""
    groups = dependency_groups(pyproject)
    problems: list[str] = []
    first = next(iter(LOCKS))
    for lock, names in {**LOCKS, **TOOL_LOCKS}.items():
        path = lock_path(lock)
        command = f"python scripts/lock.py --only {lock}" if lock in TOOL_LOCKS else "python scripts/lock.py"
        if not path.exists():
            problems.append(f"requirements/{lock}.txt is missing: run {command}")
            continue
        if recorded_digest(path) != groups_digest(lock, groups):
            problems.append(
                f"requirements/{lock}.txt was not compiled from this pyproject.toml's dependency groups "
                f"({', '.join(names)}): run {command}"
            )
        if lock in LOCKS and lock != first and lock_path(first).exists():
            reference = pins(lock_path(first))
            for name, version in sorted(pins(path).items()):
                if reference.get(name) != version:
                    problems.append(
                        f"requirements/{lock}.txt pins {name}=={version} but requirements/{first}.txt "
                        f"pins {reference.get(name, 'nothing')}: run python scripts/lock.py"
                    )
    return problems


def installed() -> dict[str, str]:
    return {normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def venv_differences(expected: Mapping[str, str], present: Mapping[str, str]) -> list[str]:
    problems = [
        f"{name}: locked {version}, installed {present.get(name, 'nothing')}"
        for name, version in sorted(expected.items())
        if present.get(name) != version
    ]
    problems += [
        f"{name}=={version} is installed but not locked"
        for name, version in sorted(present.items())
        if name not in expected and name not in KEEP
    ]
    return problems


def prune(locks: Iterable[str]) -> None:
    """Uninstall what none of the locks lists (a package dropped from the lock must not linger)."""
    wanted: dict[str, str] = {}
    for lock in locks:
        wanted.update(pins(lock_path(lock)))
    extra = sorted(name for name in installed() if name not in wanted and name not in KEEP)
    if extra:
        print(f"==> Removing packages the lock no longer lists: {' '.join(extra)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *extra], check=True)  # noqa: S603


def cdk_cli_problem(lock: str = "deploy", bundle: Path = CDK_CLI_BUNDLE) -> str | None:
    """Why node_modules' CDK CLI cannot read what the locked aws-cdk-lib writes, or None.

    aws-cdk-lib writes a cloud assembly of schema version N.x (the package aws-cdk.cloud-assembly-schema);
    the CLI refuses an assembly whose major version is newer than the one it bundles.
    """
    schema = pins(lock_path(lock)).get("aws-cdk-cloud-assembly-schema")
    if schema is None or not bundle.exists():
        return None
    text = bundle.read_text(encoding="utf-8", errors="replace")
    match = re.search(
        r"cloud-assembly-schema/schema/version\.json.{0,600}?revision:\s*(\d+)", text, re.DOTALL
    )
    if match is None:
        return f"could not find the cloud assembly schema version in {bundle.relative_to(PROJECT)}"
    supported, needed = int(match.group(1)), int(schema.split(".")[0])
    if supported >= needed:
        return None
    cli = json.loads((bundle.parent.parent / "package.json").read_text()).get("version", "?")
    return (
        f"the CDK CLI in package-lock.json (aws-cdk {cli}) reads cloud assemblies up to schema {supported}, "
        f"but the locked aws-cdk-lib writes schema {needed} (aws-cdk-cloud-assembly-schema=={schema}): "
        "upgrade the CLI with `npm update aws-cdk` (it stays within ^2) and commit package-lock.json"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--upgrade", action="store_true", help="upgrade every package")
    action.add_argument("--upgrade-package", action="append", default=[], metavar="P", help="upgrade P only")
    parser.add_argument(
        "--only", action="append", default=[], metavar="TOOL", choices=list(TOOL_LOCKS),
        help="compile only this tool's lock",
    )  # fmt: skip
    action.add_argument("--check", action="store_true", help="check the locks against pyproject.toml")
    action.add_argument(
        "--verify-venv", metavar="LOCK", choices=[*LOCKS, *TOOL_LOCKS], help="compare this venv to LOCK"
    )
    action.add_argument(
        "--prune", nargs="+", metavar="LOCK", choices=[*LOCKS, *TOOL_LOCKS], help="remove unlocked packages"
    )
    action.add_argument("--check-cdk-cli", action="store_true", help="check the CDK CLI against aws-cdk-lib")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check_locks()
        elif args.verify_venv:
            problems = venv_differences(pins(lock_path(args.verify_venv)), installed())
        elif args.check_cdk_cli:
            problem = cdk_cli_problem()
            problems = [problem] if problem else []
        elif args.prune:
            prune(args.prune)
            problems = []
        else:
            compile_locks(args.upgrade, args.upgrade_package, args.only)
            problems = check_locks()
    except LockError as error:
        problems = [str(error)]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
