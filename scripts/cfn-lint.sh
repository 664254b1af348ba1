#!/usr/bin/env bash
# Checks template.yaml with cfn-lint (PyPI), offline, installing it into .venv if missing.
# Exits non-zero on any error; warnings are printed and allowed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${root}/.venv"

if [ ! -x "${venv}/bin/cfn-lint" ]; then
    [ -x "${venv}/bin/python" ] || python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet cfn-lint
fi

# cfn-lint exit codes are bit flags: 2 errors, 4 warnings, 8 informational.
set +e
"${venv}/bin/cfn-lint" --format parseable "${root}/template.yaml"
status=$?
set -e
if [ $((status & 2)) -ne 0 ] || [ $((status & 1)) -ne 0 ]; then
    echo "cfn-lint found errors in template.yaml" >&2
    exit 1
fi
echo "cfn-lint: template.yaml has no errors"
