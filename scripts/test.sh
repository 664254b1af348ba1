#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need (moto server
# in .venv for the DynamoDB tests), starts it on loopback, runs the tests, and stops it again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/moto.sh ]; then
  # shellcheck source=scripts/moto.sh
  source scripts/moto.sh
fi

cargo test --workspace --all-targets --locked "$@"
