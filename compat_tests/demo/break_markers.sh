#!/usr/bin/env bash
# DEMONSTRATION ONLY - not part of lambda-compat and not run by the suite or CI.
#
# Shows that the compat suite catches a real class of bug: environment markers judged for the
# machine running lambda-compat instead of the Lambda target. It exports the committed tree
# (git archive HEAD) into a scratch directory, breaks Target.marker_environment() there so it
# returns this machine's PEP 508 environment (packaging.markers.default_environment()), and
# runs the marker cases of the compat suite against that broken copy. The suite must fail,
# naming case and target. The working tree is never modified.
#
#   bash compat_tests/demo/break_markers.sh [extra pytest args]
#
# Default selection: the three marker cases on python3.10 and python3.12, both arches.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
py="$repo/.venv/bin/python"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lambda-compat-broken-XXXXXX")
git -C "$repo" archive HEAD | tar -x -C "$scratch"
"$py" - "$scratch/resolver/lambda_compat/targets/target.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
anchor = '        """The full PEP 508 environment of the target\'s interpreter."""\n'
assert text.count(anchor) == 1, "targets.py changed: update the demonstration"
broken = anchor + ("        # DELIBERATELY BROKEN (compat_tests/demo/break_markers.sh): the host's markers\n"
                   "        from packaging.markers import default_environment\n"
                   "        return dict(default_environment())\n")
open(path, "w", encoding="utf-8").write(text.replace(anchor, broken))
PY
echo "broken copy: $scratch (Target.marker_environment returns this machine's environment)"
cd "$scratch"
status=0
PYTHONPATH="$scratch/resolver" "$py" -m pytest compat_tests/test_matrix.py -p no:cacheprovider \
  -n 2 -k "marker-" --runtime python3.10 --runtime python3.12 "$@" || status=$?
echo "pytest exit status with the broken tool: $status (non-zero expected)"
rm -rf "$scratch"
exit $(( status == 0 ))
