#!/usr/bin/env bash
# `make test`: every test of the repository, and a non-zero exit on any failure.
#   1. installs what is missing (scripts/install-deps.sh);
#   2. starts the Redis cluster and the AWS stand-in (with its resources) unless they are up;
#   3. cargo test --workspace --no-fail-fast -- --include-ignored   (the ignored tests need the local system),
#      and cargo check of the system suite's LocalStack path (it needs Docker to run);
#   4. the CDK tests (npm test in cdk/), if cdk/ has a package.json.
# It stops afterwards only the services it started itself; ones that were already up stay up.
# CARAT_KEEP_SERVICES=1 keeps what it started too (faster reruns; `make local-down` stops them).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$CARAT_ROOT"

"$CARAT_ROOT/scripts/install-deps.sh"

started=()
cleanup() {
  if [[ ${CARAT_KEEP_SERVICES:-0} == 1 ]]; then return; fi
  local s
  for s in "${started[@]}"; do "$CARAT_ROOT/scripts/$s" stop || true; done
}
trap cleanup EXIT
for s in redis-cluster.sh aws-standin.sh; do
  if ! "$CARAT_ROOT/scripts/$s" status >/dev/null 2>&1; then started=("$s" "${started[@]}"); fi
  "$CARAT_ROOT/scripts/$s" start
done

failed=()
say "== cargo test --workspace --no-fail-fast -- --include-ignored"
# --no-fail-fast: one failing crate must not hide the results of the others.
cargo test --workspace --no-fail-fast -- --include-ignored || failed+=("cargo test")
# The system suite's LocalStack path (CARAT_AWS=localstack) needs Docker to run; build it at least.
say "== cargo check -p carat-system-tests --features localstack --tests"
cargo check -p carat-system-tests --features localstack --tests || failed+=("cargo check --features localstack")

if [[ -f cdk/package.json ]]; then
  say "== CDK tests (cdk/: npm test)"
  if [[ ! -d cdk/node_modules ]]; then (cd cdk && npm ci --no-audit --no-fund --loglevel=error); fi
  (cd cdk && npm test) || failed+=("cdk npm test")
fi

if ((${#failed[@]})); then
  say "make test: FAILED: ${failed[*]}"
  exit 1
fi
say "make test: all passed"
