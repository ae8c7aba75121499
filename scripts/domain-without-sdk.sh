#!/usr/bin/env bash
# The domain crates (the bank, the example's orders) build and test on the library's core: no
# AWS SDK and no Lambda runtime anywhere in their dependency tree, dev-dependencies included.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
# crate:manifest (the example is a workspace of its own, as an adopter's service is).
for entry in bank:Cargo.toml orders:examples/orders/Cargo.toml; do
  crate=${entry%%:*}
  found=$(cargo tree -q --manifest-path "${entry#*:}" -p "$crate" -e normal,build,dev --prefix none \
    | grep -E '^(aws-|lambda_runtime|aws_lambda_events|serde_dynamo)' | sort -u || true)
  if [ -n "$found" ]; then
    echo "$crate reaches AWS through: $found" | tr '\n' ' '; echo
    status=1
  else
    echo "$crate: no AWS SDK, no Lambda runtime in its tree"
  fi
done
exit $status
