# Set-up shared by deploy-marketplace.sh and run-tests.sh; source it, then call `setup_project GROUPS...`.
# Idempotent and quick when nothing changed: each step is skipped when its stamp matches its inputs.
# Installs what is missing: Debian packages (python3-venv, nodejs, npm, chromium), the virtual environment
# with the exact versions of a lock in requirements/, and the CDK CLI from package-lock.json; `setup_tool`
# does the same for a tool with a lock and a venv of its own (.venv-<tool>, see scripts/lock.py).

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$PROJECT_DIR/.venv"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export CDK_DISABLE_CLI_TELEMETRY=true
export CDK_DISABLE_VERSION_CHECK=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

_apt_install() {
  local missing=("$@")
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}; install them with your package manager and run again"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
    sudo="sudo -n"
  fi
  say "Installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

_find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

setup_python() {
  # Installs requirements/<lock>.txt (exact versions, hash-checked) into .venv; see scripts/lock.py.
  rm -f "$VENV"/.installed-*  # stamps of the set-up before the lock
  _setup_venv "$VENV" "$1" && _SETUP_CHANGED=1
  return 0
}

# setup_import_path: puts the project's own packages on the venv's import path, in every shell and for
# every program the venv runs (`python -m operations.cli`, a seller's `from operations.record_usage import
# ...`, cdk's app.py, pytest): the project root (stacks, operations, local) and lambda/ (marketplace_saas,
# handlers; `lambda` is a Python keyword, so its packages have names of their own). A .pth file in the
# venv's site-packages, not an editable install: it adds no package, so the venv still equals the lock.
setup_import_path() {
  local site want pth
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    || die "could not find the site-packages of ${VENV#"$PROJECT_DIR"/}"
  pth="$site/marketplace-listing-stacks.pth"
  want="$(printf '%s\n%s' "$PROJECT_DIR" "$PROJECT_DIR/lambda")"
  if [ -f "$pth" ] && [ "$(cat "$pth")" = "$want" ]; then
    return 0
  fi
  printf '%s\n' "$want" > "$pth" || die "could not write $pth"
}

setup_tool() {
  # Installs requirements/<tool>.txt into .venv-<tool>, a venv of its own (its dependencies clash with the
  # project's); `"$PROJECT_DIR/.venv-<tool>/bin/<tool>"` runs it.
  _setup_venv "$PROJECT_DIR/.venv-$1" "$1" || true
}

# _setup_venv DIR LOCK: creates the venv DIR if needed and makes it hold exactly requirements/LOCK.txt.
# Returns 0 when it installed something, 1 when the venv already matched (its stamp).
_setup_venv() {
  local venv="$1" lock="$2"
  local lockfile="$PROJECT_DIR/requirements/$lock.txt"
  [ -f "$lockfile" ] || die "requirements/$lock.txt is missing: run python scripts/lock.py and commit requirements/"
  local python
  if [ ! -x "$venv/bin/python" ]; then
    python="$(_find_python)" || { _apt_install python3 python3-venv python3-pip; python="$(_find_python)" || die "Python 3.11 or newer is required"; }
    "$python" -c 'import venv, ensurepip' 2>/dev/null || _apt_install python3-venv
    say "Creating the virtual environment in ${venv#"$PROJECT_DIR"/}"
    "$python" -m venv "$venv" || die "could not create ${venv#"$PROJECT_DIR"/}"
  fi
  local stamp="$venv/.lock-$lock"
  local want
  want="$(_hash "$lockfile")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 1
  fi
  say "Installing the locked Python dependencies (requirements/$lock.txt) into ${venv#"$PROJECT_DIR"/}"
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --quiet --require-hashes --no-deps --requirement "$lockfile" \
    2> >(grep -v "^WARNING: Location" >&2) || die "pip could not install requirements/$lock.txt"
  echo "$want" > "$stamp"
  # Whatever no installed lock lists any more (a package dropped or renamed) goes.
  local current=() other name
  for other in "$venv"/.lock-*; do
    name="${other##*/.lock-}"
    [ -f "$PROJECT_DIR/requirements/$name.txt" ] && [ "$(cat "$other")" = "$(_hash "$PROJECT_DIR/requirements/$name.txt")" ] \
      && current+=("$name")
  done
  "$venv/bin/python" "$PROJECT_DIR/scripts/lock.py" --prune "${current[@]}" || die "could not remove unlocked packages"
  return 0
}

setup_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    _apt_install nodejs npm
  fi
  node -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' \
    || die "Node.js 18 or newer is required for the CDK CLI (found $(node --version))"
  local stamp="$PROJECT_DIR/node_modules/.installed"
  local want
  want="$(_hash "$PROJECT_DIR/package.json" "$PROJECT_DIR/package-lock.json")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$PROJECT_DIR/node_modules/.bin/cdk" ]; then
    return 0
  fi
  say "Installing the npm packages (the CDK CLI aws-cdk 2.x, axe-core) with npm"
  (cd "$PROJECT_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
  echo "$want" > "$stamp"
  _SETUP_CHANGED=1
}

setup_chromium() {
  [ -x /usr/bin/chromium ] || _apt_install chromium
}

# setup_project LOCK: dev (tests and tools) or deploy (synth, deploy, local mode).
setup_project() {
  _SETUP_CHANGED=0
  setup_python "$1"
  setup_import_path
  setup_node
  if [ "$_SETUP_CHANGED" = 1 ]; then
    "$VENV/bin/python" "$PROJECT_DIR/scripts/lock.py" --check-cdk-cli || die "the CDK CLI is older than aws-cdk-lib"
  fi
}
