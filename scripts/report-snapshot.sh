#!/usr/bin/env bash
# Record the JSON reports of build, check and package on the fixtures, normalised (times,
# temporary paths, dates), into OUTDIR: run it before and after a refactoring and `diff -r`
# the two directories; behaviour is unchanged when nothing differs.
#   bash scripts/report-snapshot.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: report-snapshot.sh OUTDIR}"
mkdir -p "$out"
LC=(.venv/bin/lambda-compat)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cache="$work/cache"

run() {  # run NAME ARGS...: the report in NAME.json, the exit code in NAME.rc
  local name="$1"; shift
  "${LC[@]}" "$@" --cache-dir "$cache" --format json > "$work/$name.json" 2> "$work/$name.err"
  echo $? > "$out/$name.rc"
  .venv/bin/python scripts/normalise-report.py "$work" < "$work/$name.json" > "$out/$name.json"
}

run build-bench-311-x86 build fixtures/bench/requirements.txt --runtime python3.11 \
  --arch x86_64 -o "$work/b1"
run build-bench-312-arm build fixtures/bench/requirements.txt --runtime python3.12 \
  --arch arm64 -o "$work/b2"
run build-chalice-313 build fixtures/projects/chalice-like/requirements.txt \
  --runtime python3.13 --arch x86_64 -o "$work/b3"
run check-bench check fixtures/bench/requirements.txt --backend static --date 2026-12-01
run check-locked-uv check fixtures/projects/locked/pypi/uv --backend static --date 2026-12-01
run check-locked-pylock check fixtures/projects/locked/pypi/pylock --backend static \
  --date 2026-12-01
cp -r fixtures/projects/chalice-like "$work/proj"
run package-chalice package "$work/proj" --runtime python3.12 --arch arm64 -o "$work/dist"
ls "$out"
