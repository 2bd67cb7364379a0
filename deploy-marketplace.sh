#!/usr/bin/env bash
# The one command: set-up, validate, synthesize, deploy (or --synth, --plan, --local). See --help.
# Set-up (virtual environment, Python and npm dependencies, Debian packages when missing) runs first
# every time; it takes a moment only when something changed.
set -euo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/setup.sh"

setup_project deploy
cd "$PROJECT_DIR"
exec "$VENV/bin/python" -m operations.cli "$@"
