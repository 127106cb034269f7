#!/usr/bin/env bash
# Create .venv with lambda-compat (editable) and its test dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "setup: $PY is missing or older than 3.9; set PYTHON=/path/to/python3.9+" >&2
  exit 3
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=25.1,<27"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,lint]'
