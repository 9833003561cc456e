#!/usr/bin/env bash
# The randomized fault soak of lake-ingest (issue 31): SEEDS seeds (default
# 1..200) of random SIGKILL / SIGSTOP / SIGTERM, option changes, held and
# failed requests and concurrent compaction against the moto server, each
# ending with a drain and a check that every order is in the lake exactly
# once. Prints per-seed lost / duplicated / stalled counts, the totals and
# the seeds that failed (with their event log). CI runs two fixed seeds
# (crates/dataplane/tests/ingest/chaos.rs); this is the sweep.
#
#   bench/fault_seeds.sh [FIRST..LAST] [SECONDS_OF_FAULTS_PER_SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh demo
export LAKE_FAULT_SEEDS=${1:-1..200}
export LAKE_FAULT_SECONDS=${2:-25}
cargo test --release -p lake-dataplane --test ingest -- \
  --ignored --exact chaos::fault_seed_sweep --nocapture --test-threads 1
