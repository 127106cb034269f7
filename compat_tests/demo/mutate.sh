#!/usr/bin/env bash
# DEMONSTRATION ONLY - not part of lambda-compat and not run by the suite or CI.
#
# Breaks a scratch copy of the committed tree (git archive HEAD) in one of three ways a
# reviewer tried, and runs the CI selection against it; the run must fail. The working tree
# is never modified.
#
#   bash compat_tests/demo/mutate.sh MUTATION [pytest args]
#
# MUTATION:
#   no-interpreter      lambda_compat.host.interpreters.find_interpreter returns None
#   host-markers        Target.marker_environment() returns this machine's PEP 508 environment
#   manylinux-plus-one  platform_tags() accepts one manylinux level above the target's glibc
# pytest args default to .ci/run's compat slice: compat_tests -m compat_fast -n 2
# (give e.g. `-m "not container" -n 2 tests/test_targets.py` for the tests/ side).
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,16p "$0"; exit 2; }
mutation=$1; shift
repo=$(cd "$(dirname "$0")/../.." && pwd)
py="$repo/.venv/bin/python"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lambda-compat-mutant-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
git -C "$repo" archive HEAD | tar -x -C "$scratch"
"$py" - "$scratch/resolver/lambda_compat" "$mutation" <<'PY'
import sys
pkg, mutation = sys.argv[1], sys.argv[2]
edits = {
    "no-interpreter": ("interpreters.py",
        '    An explicit path must be that version, else :class:`~lambda_compat.errors.BadInput`.\n    """\n',
        '    An explicit path must be that version, else :class:`~lambda_compat.errors.BadInput`.\n    """\n'
        "    return None  # MUTATION no-interpreter\n"),
    "host-markers": ("targets.py",
        '        """The full PEP 508 environment of the target\'s interpreter."""\n',
        '        """The full PEP 508 environment of the target\'s interpreter."""\n'
        "        from packaging.markers import default_environment  # MUTATION host-markers\n"
        "        return dict(default_environment())\n"),
    "manylinux-plus-one": ("targets.py",
        "    for n in range(minor, MIN_GLIBC_MINOR[machine] - 1, -1):\n",
        "    for n in range(minor + 1, MIN_GLIBC_MINOR[machine] - 1, -1):  # MUTATION\n"),
}
if mutation not in edits:
    sys.exit(f"unknown mutation {mutation!r}: one of {', '.join(edits)}")
name, anchor, replacement = edits[mutation]
path = f"{pkg}/{name}"
text = open(path, encoding="utf-8").read()
assert text.count(anchor) == 1, f"{name} changed: update compat_tests/demo/mutate.sh"
open(path, "w", encoding="utf-8").write(text.replace(anchor, replacement))
print(f"mutant: {mutation} in {path}")
PY
[ $# -gt 0 ] || set -- compat_tests -m compat_fast -n 2
cd "$scratch"
status=0
PYTHONPATH="$scratch/resolver" "$py" -m pytest -p no:cacheprovider "$@" || status=$?
echo "pytest exit status with the mutant ($mutation): $status (non-zero expected)"
exit $(( status == 0 ))
