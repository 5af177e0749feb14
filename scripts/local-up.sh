#!/usr/bin/env bash
# `make local-up`: the whole local system, each part by its own script, then what runs where.
# Idempotent: parts already up are left as they are.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$CARAT_ROOT"

t0=$SECONDS
"$CARAT_ROOT/scripts/install-deps.sh"
say "building carat (debug, with the features make test resolves: the same build)"
# `cargo build -p carat-local` alone resolves other features of shared dependencies than
# `cargo test --workspace` (dev-dependencies switch on tokio test-util, getrandom std,
# zerocopy derive), so each would rebuild ~80 crates after the other. `--examples` makes
# cargo resolve with the workspace's dev-dependencies, as the tests do; the examples are
# part of what `make test` builds anyway.
cargo build --workspace --bin carat --examples
"$CARAT_ROOT/scripts/redis-cluster.sh" start
"$CARAT_ROOT/scripts/aws-standin.sh" start
"$CARAT_ROOT/scripts/carat-local.sh" start

cat >&2 <<MSG

carat local system is up ($((SECONDS - t0)) s):
  carat-local    http://127.0.0.1:8080/health        log  .run/carat-local.log
  Redis cluster  127.0.0.1:7000-7005 (3 masters, 3 replicas)   data/logs  .run/redis/
  AWS stand-in   moto on http://127.0.0.1:4566       log  .run/moto.log
                 Kinesis carat-points, DynamoDB carat-windows, S3 carat-archive
  To talk to it:  . scripts/env.sh   (sets AWS_ENDPOINT_URL and test credentials; aws CLI in .run/venv/bin)
  Status:         scripts/redis-cluster.sh status; scripts/aws-standin.sh status; scripts/carat-local.sh status
  Stop:           make local-down
MSG
