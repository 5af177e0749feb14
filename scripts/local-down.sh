#!/usr/bin/env bash
# `make local-down`: stops what the local-up scripts started (PID files under .run/), in the
# reverse order; anything else on the same ports is left running. Data goes with it: Redis
# and moto keep nothing across a restart.
set -euo pipefail
. "$(dirname "$0")/env.sh"

"$CARAT_ROOT/scripts/carat-local.sh" stop
"$CARAT_ROOT/scripts/aws-standin.sh" stop
"$CARAT_ROOT/scripts/redis-cluster.sh" stop
