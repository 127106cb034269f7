#!/usr/bin/env bash
# `chalice package`, with the deployment package built by lambda-compat for the Lambda target.
# Run in the Chalice project: ./package.sh OUT_DIR [RUNTIME] [ARCH]
# Chalice writes the SAM/CloudFormation template (sam.json) and its own deployment.zip; the
# zip is replaced by lambda-compat's (same layout: app.py, chalicelib/, vendor/ contents and
# the dependencies at the top level), resolved, built and verified for the target.
set -euo pipefail
out="${1:?usage: package.sh OUT_DIR [RUNTIME] [ARCH]}"
runtime="${2:-python3.12}"
arch="${3:-x86_64}"
"${CHALICE:-chalice}" package "$out"
"${LAMBDA_COMPAT:-lambda-compat}" package . --runtime "$runtime" --arch "$arch" \
    -o "$out/lambda-compat" ${LAMBDA_COMPAT_ARGS:-}
cp "$out/lambda-compat/deployment.zip" "$out/deployment.zip"
rm -r "$out/lambda-compat"
