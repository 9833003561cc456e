#!/usr/bin/env bash
# Run every test of the workspace: unit, integration (cfn-lint gate, moto
# server tests) and doc tests. Installs the pinned Python tools first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc
