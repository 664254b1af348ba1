#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need (moto server
# in .venv for the DynamoDB tests), starts it on loopback (it stays up for the next run), and
# runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

WXKF_MOTO_ENDPOINT="$(scripts/moto.sh)"
export WXKF_MOTO_ENDPOINT

cargo test --workspace --all-targets --locked "$@"
