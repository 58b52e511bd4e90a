#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv (CPU torch + this pack), then
#   scripts/dev.sh demo [--weights DIR | --smoke] [--out DIR]   music -> dance video (the shipped demo set by default)
#   scripts/dev.sh test [pytest args]                  the test suite (what CI runs)
#   scripts/dev.sh setup                               only build the environment
# Env: M2P_VENV (default .venv), PYTHON (default python3), TORCH_SPEC (default torch==2.13.0).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${M2P_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[dev] creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
  fi
  if [ ! -f "$VENV/.m2pdance-installed" ] || [ "$ROOT/pyproject.toml" -nt "$VENV/.m2pdance-installed" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch first, on its own: the pack pins nothing that could pull a CUDA build into CPU CI.
    "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
    touch "$VENV/.m2pdance-installed"
  fi
}

cmd="${1:-test}"; shift || true
case "$cmd" in
  setup) setup ;;
  test)
    setup
    cd "$ROOT"
    report="$(mktemp -d)/junit.xml"
    set +e
    "$VENV/bin/pytest" --junitxml="$report" "$@"
    status=$?
    set -e
    # pytest exits 5 when nothing was collected; also fail when every test was skipped.
    "$VENV/bin/python" - "$report" "$status" <<'PY'
import sys, xml.etree.ElementTree as ET
path, status = sys.argv[1], int(sys.argv[2])
try:
    suite = ET.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    ran = int(suite.get("tests", 0)) - int(suite.get("skipped", 0))
except (OSError, ET.ParseError):
    ran = 0
if ran <= 0:
    print("[dev] no test was executed: failing", file=sys.stderr)
    sys.exit(status or 1)
sys.exit(status)
PY
    ;;
  demo)
    setup
    cd "$ROOT"
    exec "$VENV/bin/python" "$ROOT/scripts/demo.py" "$@"
    ;;
  *) echo "usage: scripts/dev.sh demo|test|setup [args]" >&2; exit 2 ;;
esac
