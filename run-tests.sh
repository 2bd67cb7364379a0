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
# mypy runs on one CPU while the synthesis and checkov run on the other; its report follows theirs.
say "mypy --strict (beside the synthesis; its report comes after checkov's)"
mkdir -p .cache
mypy >.cache/mypy.log 2>&1 &
mypy_pid=$!
trap 'kill "$mypy_pid" 2>/dev/null || true' EXIT
say "Synthesizing the shipped config with every gate (cdk-nag, cfn-lint) and real Lambda bundling"
./deploy-marketplace.sh --synth
say "checkov on the synthesized templates (anything not fixed needs its reason in checkov-skips.json)"
python scripts/checkov_gate.py cdk.out
say "mypy --strict"
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
cat .cache/mypy.log
[ "$mypy_status" -eq 0 ] || exit "$mypy_status"
if [ $# -gt 0 ]; then
  say "pytest $*"
  exec python -m pytest "$@"
fi
# Unit, integration, infrastructure and command-line tests in parallel; then, one at a time, the tests
# that write the checkout's own cdk.out or .local/ (marked `checkout`) and the end-to-end tests (one running
# local mode and a browser).
say "pytest: unit, infrastructure, integration and command-line tests"
status=0
python -m pytest -n 2 --durations=20 -m "not checkout" --ignore=tests/e2e || status=$?
say "pytest: the tests that use the checkout's cdk.out or .local/, then the end-to-end tests"
python -m pytest --durations=10 -m checkout tests/cli || status=$?
python -m pytest --durations=20 tests/e2e || status=$?
exit "$status"
