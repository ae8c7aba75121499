#!/usr/bin/env bash
# A service as `eventfold new` writes it, into an empty folder, with this workspace's lock file
# (so it resolves what is already built); then checked as its user would (service-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/debug/eventfold new "$work/loans" --aggregate Book
cp Cargo.lock "$work/loans/"
scripts/service-check.sh "$work/loans"
