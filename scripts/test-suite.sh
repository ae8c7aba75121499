#!/usr/bin/env bash
# The test half of `make test`, run with an emulator already up (EVENTFOLD_EMULATOR_ENDPOINT).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
# The emulator's own fidelity and quirks, apart: a failure here is news about the emulator.
echo "== emulator fidelity and quirks (tests/emulator) =="
cargo test --workspace --test emulator
# What a command asks of DynamoDB, held against the baseline (make bench-check).
target/debug/eventfold-bench --check bench/baseline.json
if [ -x scripts/schemathesis.sh ]; then scripts/schemathesis.sh; fi
# Services of their own, from their folders: the example (its HTTP tests on the local runner and
# on the stack deployed to the emulator, rebuild and backfill through its functions), and one
# `eventfold new` writes; each one's make test, and its make local serving its demo.
scripts/service-check.sh examples/orders
scripts/scaffold-check.sh
