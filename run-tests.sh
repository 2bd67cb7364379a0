#!/usr/bin/env bash
# Every test and quality gate, as CI runs them. Installs what it needs first (idempotent).
#   ./run-tests.sh            everything
#   ./run-tests.sh -k config  extra arguments go to pytest
set -euo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/setup.sh"

setup_project dev
setup_tool checkov
setup_chromium
cd "$PROJECT_DIR"
export PATH="$VENV/bin:$PATH"

say "ruff (lint and format)"
ruff check .
ruff format --check .
say "mypy --strict"
mypy
say "Synthesizing the shipped config with every gate (cdk-nag, cfn-lint) and real Lambda bundling"
./deploy-marketplace.sh --synth
say "checkov on the synthesized templates (anything not fixed needs its reason in checkov-skips.json)"
python scripts/checkov_gate.py cdk.out
if [ $# -gt 0 ]; then
  say "pytest $*"
  exec python -m pytest "$@"
fi
# Unit, integration and infrastructure tests in parallel; then, one at a time, the tests that share
# cdk.out (the CLI) or one running local mode and browser (end-to-end).
say "pytest: unit, infrastructure and integration tests"
status=0
python -m pytest -n 2 --durations=20 --ignore=tests/cli --ignore=tests/e2e || status=$?
say "pytest: command-line and end-to-end tests"
python -m pytest --durations=20 tests/cli tests/e2e || status=$?
exit "$status"
