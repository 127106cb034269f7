#!/usr/bin/env bash
# The step of action.yml: inputs arrive as LC_* variables (never interpolated into the script).
set -euo pipefail
args=(--requirements "${LC_REQUIREMENTS:-requirements.txt}" --fail-on "${LC_FAIL_ON:-incompatible}"
      --backend "${LC_BACKEND:-auto}")
[ -n "${LC_RUNTIMES:-}" ] && args+=(--runtimes "$LC_RUNTIMES")
[ -n "${LC_ARCHITECTURES:-}" ] && args+=(--architectures "$LC_ARCHITECTURES")
# Extra check options, split on whitespace as a shell would (no globbing, no evaluation).
read -r -a extra <<< "${LC_ARGS:-}"
exec "${LC_PYTHON:-python}" -m lambda_compat.cli.github_action "${args[@]}" "${extra[@]}"
