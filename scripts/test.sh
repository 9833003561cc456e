#!/usr/bin/env bash
# Run every test of the workspace: unit, integration (cfn-lint gate, moto
# server tests) and doc tests. Installs the pinned tools first.
#
# Tests build in the release profile: the suite exercises the binaries that
# ship, and the demo (`scripts/demo.sh`) reuses this build instead of
# compiling the crate graph a second time (docs/benchmarks.md, "Build").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh
cargo test --release --workspace --all-targets --no-fail-fast "$@"
cargo test --release --workspace --doc
