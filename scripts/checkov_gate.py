"""The checkov gate: an independent scanner on the synthesized templates, and nothing it finds unexplained.

checkov (its own lock and venv, `.venv-checkov/`; see scripts/lock.py) scans every CloudFormation template
given (files, or the `*.template.json` in a directory such as cdk.out/). A finding passes only when
`checkov-skips.json` lists its check with the reason it does not apply here, optionally only for the
resources named (`Type.LogicalId` glob patterns, e.g. `AWS::Lambda::Function.Fulfillment*`). Anything else
fails the gate, with the check, the resource and the template named.

    python scripts/checkov_gate.py cdk.out            scan every template of a cloud assembly
    python scripts/checkov_gate.py a.json b.json      scan these templates

checkov runs offline: no download of policies or metadata, and nothing leaves the machine.
Runs on the standard library alone (checkov itself runs in its own venv).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SKIPS = PROJECT / "checkov-skips.json"
CHECKOV = PROJECT / ".venv-checkov" / "bin" / "checkov"
_CHECK_ID = re.compile(r"^CKV2?_AWS_\d+$")
MIN_REASON = 50


class GateError(Exception):
    """The gate could not run (no checkov, a bad skip list, checkov's own failure); the message says why."""


@dataclass(frozen=True)
class Finding:
    check_id: str
    check_name: str
    resource: str  # Type.LogicalId, as checkov names it
    template: str

    def __str__(self) -> str:
        return f"{self.check_id} ({self.check_name}) on {self.resource} in {self.template}"


@dataclass(frozen=True)
class Skip:
    check_id: str
    reason: str
    resources: tuple[str, ...] = ()  # empty: every resource

    def covers(self, finding: Finding) -> bool:
        return finding.check_id == self.check_id and (
            not self.resources or any(fnmatchcase(finding.resource, pattern) for pattern in self.resources)
        )


@dataclass
class Outcome:
    unexplained: list[Finding] = field(default_factory=list)
    skipped: dict[str, list[Finding]] = field(default_factory=dict)  # check id → findings
    passed: int = 0


def load_skips(path: Path = SKIPS) -> list[Skip]:
    """The reviewed skip list: `{"CKV_AWS_n": {"reason": "...", "resources": ["Type.Id*", ...]}}`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise GateError(f"{path.name}: cannot be read as JSON: {error}") from None
    if not isinstance(data, Mapping):
        raise GateError(f"{path.name}: expected an object of check ids")
    skips: list[Skip] = []
    for check_id, entry in data.items():
        where = f"{path.name}: {check_id}"
        if not _CHECK_ID.match(check_id):
            raise GateError(f"{where}: not a checkov AWS check id (CKV_AWS_n or CKV2_AWS_n)")
        if not isinstance(entry, Mapping) or set(entry) - {"reason", "resources"}:
            raise GateError(f"{where}: expected {{'reason': ..., 'resources': [...]}} and nothing else")
        reason, resources = entry.get("reason"), entry.get("resources", [])
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON:
            raise GateError(f"{where}: the reason must say why the check does not apply here")
        if not isinstance(resources, list) or not all(isinstance(r, str) and r for r in resources):
            raise GateError(f"{where}: 'resources' must be a list of Type.LogicalId patterns")
        skips.append(Skip(check_id, reason, tuple(resources)))
    return skips


def templates_in(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(path.glob("*.template.json"))
        elif path.is_file():
            found.append(path)
        else:
            raise GateError(f"{path}: no such file or directory")
    if not found:
        raise GateError(f"no CloudFormation templates (*.template.json) in {', '.join(map(str, paths))}")
    return found


def run_checkov(templates: Sequence[Path], checkov: Path = CHECKOV) -> list[dict[str, object]]:
    """checkov's JSON reports for these templates (one per template), run offline."""
    if not checkov.exists():
        raise GateError(f"{checkov} is missing: ./run-tests.sh installs it (requirements/checkov.txt)")
    command = [
        str(checkov), "--framework", "cloudformation", "--output", "json", "--compact", "--quiet",
        "--skip-download", "--skip-results-upload",
        *(argument for template in templates for argument in ("--file", str(template))),
    ]  # fmt: skip
    # No platform key, no guideline mapping fetched: checkov then reads nothing but the templates.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    env.pop("BC_API_KEY", None)
    # Exit 1 means "failed checks"; the JSON says which. Anything else is checkov's own failure.
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if result.returncode not in (0, 1):
        raise GateError(f"checkov failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    try:
        reports = json.loads(result.stdout)
    except ValueError:
        raise GateError(
            f"checkov printed no JSON report: {result.stdout[:500]}{result.stderr[-2000:]}"
        ) from None
    reports = reports if isinstance(reports, list) else [reports]
    if not reports or any(report.get("check_type") != "cloudformation" for report in reports):
        raise GateError(f"checkov scanned nothing as CloudFormation: {result.stdout[:500]}")
    return reports


def findings_of(reports: Iterable[Mapping[str, object]]) -> tuple[list[Finding], int]:
    """The failed checks of checkov's reports, and how many checks passed."""
    failed: list[Finding] = []
    passed = 0
    for report in reports:
        results, summary = report["results"], report["summary"]
        assert isinstance(results, Mapping) and isinstance(summary, Mapping)
        passed += int(summary["passed"])
        for check in results.get("failed_checks", []):
            failed.append(
                Finding(
                    check_id=check["check_id"],
                    check_name=check["check_name"],
                    resource=check["resource"],
                    template=Path(check["file_path"]).name,
                )
            )
    return failed, passed


def judge(findings: Iterable[Finding], skips: Sequence[Skip], passed: int = 0) -> Outcome:
    outcome = Outcome(passed=passed)
    for finding in findings:
        if any(skip.covers(finding) for skip in skips):
            outcome.skipped.setdefault(finding.check_id, []).append(finding)
        else:
            outcome.unexplained.append(finding)
    return outcome


def scan(paths: Iterable[Path], *, skips_file: Path = SKIPS, checkov: Path = CHECKOV) -> Outcome:
    skips = load_skips(skips_file)
    findings, passed = findings_of(run_checkov(templates_in(paths), checkov))
    return judge(findings, skips, passed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path, help="templates, or directories of *.template.json")
    parser.add_argument("--skips", type=Path, default=SKIPS, help="the skip list (default: %(default)s)")
    parser.add_argument("--checkov", type=Path, default=CHECKOV, help="checkov (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        outcome = scan(args.paths, skips_file=args.skips, checkov=args.checkov)
    except GateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    skipped = sum(len(found) for found in outcome.skipped.values())
    print(
        f"checkov: {outcome.passed} passed, {skipped} skipped with a reason in {args.skips.name} "
        f"({len(outcome.skipped)} checks), {len(outcome.unexplained)} unexplained",
        file=sys.stderr,
    )
    for finding in outcome.unexplained:
        print(f"error: checkov: {finding}: fix it, or list it in {args.skips.name} with why", file=sys.stderr)
    return 1 if outcome.unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
