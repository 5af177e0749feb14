#!/usr/bin/env bash
# `make bench`: the benchmarks whose numbers go into docs/BENCHMARKS.md, on a release build.
#   codec: carat chunk v1 beside Gorilla (tsz) and pco on ../shared/data/nab-aws-cloudwatch
#          (CARAT_BENCH_DATA overrides the folder), one chunk per series-day, lossless check.
#   ingest: Kinesis bytes and PUT payload units per point of realistic Mackerel posts.
#   writer: CPU-only points/s, into the local Redis cluster beside a naive baseline, DynamoDB
#          write units and Redis bytes per point. Needs the Redis cluster: `make local-up` first
#          (or CARAT_BENCH_NO_REDIS=1 for the CPU-only part).
#   cost:  the reference workload's bill from those figures (docs/cost-figures/) into
#          docs/deploy.md "The reference workload's bill", beside Timestream.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$CARAT_ROOT"

cargo build --release -p carat-bench
bench="${CARGO_TARGET_DIR:-$CARAT_ROOT/target}/release/carat-bench"
"$bench" codec ${CARAT_BENCH_DATA:+"$CARAT_BENCH_DATA"}

cargo build --release -p carat-api --example kinesis_payload -p carat-writer --example writer_bench
examples="${CARGO_TARGET_DIR:-$CARAT_ROOT/target}/release/examples"
# The figures the cost model reads (docs/cost-figures/): written by the two benchmarks,
# then the bill in docs/deploy.md is computed from them (carat-bench cost).
figures="$CARAT_ROOT/docs/cost-figures"
"$examples/kinesis_payload" --figures "$figures"
if [[ -n ${CARAT_BENCH_NO_REDIS:-} ]]; then
  "$examples/writer_bench" ${CARAT_BENCH_DATA:+"$CARAT_BENCH_DATA"} --no-redis
  say "CARAT_BENCH_NO_REDIS: no head figure, so docs/cost-figures/writer.json and the bill stay as they were"
else
  "$examples/writer_bench" ${CARAT_BENCH_DATA:+"$CARAT_BENCH_DATA"} --figures "$figures"
  "$bench" cost "$figures" --write "$CARAT_ROOT/docs/deploy.md"
fi
