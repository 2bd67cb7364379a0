#!/usr/bin/env bash
# Upgrade the lock of exact versions, then run every test and quality gate against it.
#   ./scripts/upgrade-lock.sh          every package, to the newest version pyproject.toml allows
#   ./scripts/upgrade-lock.sh NAME...  only these packages (and what they need)
# The CDK CLI (package-lock.json) is updated within ^2 too, so that it reads what aws-cdk-lib writes.
# Review `git diff requirements/ package-lock.json`, then commit it.
set -euo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

setup_project dev   # pip-compile comes with the dev tools
cd "$PROJECT_DIR"
args=(--upgrade)
if [ $# -gt 0 ]; then
  args=()
  for package in "$@"; do args+=(--upgrade-package "$package"); done
fi
"$VENV/bin/python" scripts/lock.py "${args[@]}" || die "the lock was not changed"
if [ $# -eq 0 ]; then
  say "Updating the CDK CLI within ^2 (package-lock.json)"
  npm update aws-cdk --no-audit --no-fund --loglevel=error >/dev/null || die "npm update aws-cdk failed"
fi
say "Testing against the new lock"
exec ./run-tests.sh
