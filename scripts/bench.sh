#!/usr/bin/env bash
# `make bench`: the benchmarks whose numbers go into docs/BENCHMARKS.md, on a release build.
#   codec: carat chunk v1 beside Gorilla (tsz) and pco on ../shared/data/nab-aws-cloudwatch
#          (CARAT_BENCH_DATA overrides the folder), one chunk per series-day, lossless check.
# Benchmarks that need the local system (writer into Redis, …) are added here as they land;
# they expect `make local-up` first.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$CARAT_ROOT"

cargo build --release -p carat-bench
bench="${CARGO_TARGET_DIR:-$CARAT_ROOT/target}/release/carat-bench"
"$bench" codec ${CARAT_BENCH_DATA:+"$CARAT_BENCH_DATA"}
