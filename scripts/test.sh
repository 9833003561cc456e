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
# Build every test target once, then run the binaries in lanes
# (tools/test_lanes.py): they mostly wait on moto, Spark and lease
# failovers, so the whole takes about the longest lane, not the sum. The
# ingest tests (lease failovers timed in seconds) have a lane of their own
# at normal priority; the two shared lanes run at nice +10.
mkdir -p target
cargo test --release --workspace --all-targets --no-run --message-format=json-render-diagnostics "$@" \
  > target/test-binaries.json
python3 tools/test_lanes.py target/test-binaries.json
cargo test --release --workspace --doc
