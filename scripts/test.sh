#!/usr/bin/env bash
# The project's one test selection: what `.ci/run` (and so ci.yml, which calls it) and a
# developer run. Lint and typing, the default suite with the network/slow acceptance tests
# (`-m "not container and not heavy"` replaces pyproject's addopts selection; heavy tests
# compile numpy for minutes and are run by hand), the fast slice of the compat
# matrix, then the container backend for real (podman with stand-in images). Needs the
# system packages `.ci/run` installs; run `bash scripts/setup.sh` first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
"$PY" -m ruff check resolver compat_tests tests benchmarks
"$PY" -m mypy
"$PY" -m pytest -m "not container and not heavy" -n 2
"$PY" -m pytest compat_tests -m compat_fast -n 2 \
  --compat-json compat-fast.json --compat-html compat-fast.html
"$PY" -m pytest -m container -n 2
