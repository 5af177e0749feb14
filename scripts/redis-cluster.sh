#!/usr/bin/env bash
# The local Redis cluster: 6 nodes on 127.0.0.1:7000–7005 (3 masters, 3 replicas), so
# cluster behaviour (MOVED, ASK, failover) is exercised, not a single node.
#
#   scripts/redis-cluster.sh start    start what is not running, form the cluster, wait for cluster_state:ok
#   scripts/redis-cluster.sh stop     stop the nodes this script started (PID files under .run/redis/)
#   scripts/redis-cluster.sh status   one line per node; exit 0 only if the cluster is ok
#   scripts/redis-cluster.sh restart PORT   start that one node again with its nodes.conf (after a
#                                     kill: it rejoins as a replica), wait for cluster_state:ok
#                                     and every master's replica (the failover test calls it)
#
# Data, logs and PID files live under .run/redis/. Redis is carat's cache (Kinesis is the log),
# so nothing is persisted: a cold start forms a fresh, empty cluster. Nodes that answer on these
# ports without a PID file of ours (started by someone else) are used as they are and never stopped.
#
# CARAT_REDIS_BASE_PORT=N runs the same commands on another cluster of its own: ports N..N+5,
# data under .run/redis-N/ (the system tests' Redis-fault scenario kills nodes of such a
# private cluster, tests/system/README.md). Unset (or 7000): the cluster above.
set -euo pipefail
. "$(dirname "$0")/env.sh"

BASE=${CARAT_REDIS_BASE_PORT:-7000}
[[ $BASE =~ ^[0-9]+$ ]] && ((BASE >= 1024 && BASE <= 55530)) ||
  die "CARAT_REDIS_BASE_PORT=$BASE: give a port from 1024 to 55530 (the cluster bus is port + 10000)"
PORTS=()
for ((i = 0; i < 6; i++)); do PORTS+=($((BASE + i))); done
if ((BASE == 7000)); then DIR="$RUN_DIR/redis"; else DIR="$RUN_DIR/redis-$BASE"; fi
RANGE="127.0.0.1:${PORTS[0]}-${PORTS[5]}"

pidfile() { echo "$DIR/$1.pid"; }
ours() { pid_alive "$(pidfile "$1")" "redis-server"; }
cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
answers() { [[ $(cli "$1" ping 2>/dev/null) == PONG ]]; }
cluster_ok() {
  local p
  for p in "${PORTS[@]}"; do
    cli "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}
# A node that has never joined a cluster knows only itself.
lonely() { cli "$1" cluster info 2>/dev/null | grep -q '^cluster_known_nodes:1'; }

start_node() {
  local port=$1 d="$DIR/$1"
  mkdir -p "$d"
  redis-server \
    --bind 127.0.0.1 --port "$port" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --dir "$d" --save '' --appendonly no \
    --daemonize yes --pidfile "$(pidfile "$port")" --logfile "$DIR/$port.log" \
    >/dev/null
}

start() {
  command -v redis-server >/dev/null || die "redis-server not found: run scripts/install-deps.sh"
  mkdir -p "$DIR"
  if cluster_ok; then
    say "redis cluster: already up on $RANGE"
    return 0
  fi
  local p cold=1 started=()
  for p in "${PORTS[@]}"; do
    if ours "$p" || answers "$p"; then cold=0; fi
  done
  for p in "${PORTS[@]}"; do
    if ours "$p"; then continue; fi
    if port_open "$p"; then
      die "port $p is taken by a process these scripts did not start, and the cluster is not ok; stop it or fix the cluster by hand"
    fi
    # On a cold start, forget any old cluster: a stale nodes.conf would name node ids
    # that no longer hold the slots.
    if ((cold)); then rm -f "$DIR/$p/nodes.conf" "$DIR/$p/dump.rdb"; fi
    start_node "$p"
    started+=("$p")
  done
  for p in "${PORTS[@]}"; do
    wait_for 10 "redis node $p" answers "$p" || die "redis node $p did not start; see $DIR/$p.log"
  done
  local all_lonely=1
  for p in "${PORTS[@]}"; do lonely "$p" || all_lonely=0; done
  if ((all_lonely)); then
    local addrs=()
    for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 ||
      die "redis-cli --cluster create failed; see $DIR/create.log"
  fi
  wait_for 30 "redis cluster_state:ok" cluster_ok || die "redis cluster not ok; see $DIR/*.log"
  # Replicas report cluster_state:ok before their first sync; wait for every master to
  # have its replica so a test that fails over finds one.
  wait_for 30 "redis replicas" replicas_linked || die "redis replicas did not link; see $DIR/*.log"
  say "redis cluster: up on $RANGE${started:+ (started ${started[*]})}; data and logs in $DIR"
}

replicas_linked() {
  local p n=0
  for p in "${PORTS[@]}"; do
    if cli "$p" info replication 2>/dev/null | grep -q '^master_link_status:up'; then n=$((n + 1)); fi
  done
  ((n >= 3))
}

# One node again, with the command line and nodes.conf it had: a master that was killed and
# failed over comes back as a replica of the node that took its slots.
restart() {
  local port=${1:-}
  [[ " ${PORTS[*]} " == *" $port "* ]] || die "usage: $0 restart PORT (one of ${PORTS[*]})"
  if answers "$port"; then
    say "redis node $port: already running"
  else
    [[ -f "$DIR/$port/nodes.conf" ]] || die "redis node $port has no $DIR/$port/nodes.conf; use start"
    port_open "$port" && die "port $port is taken by a process that does not answer PING"
    start_node "$port"
    wait_for 10 "redis node $port" answers "$port" || die "redis node $port did not start; see $DIR/$port.log"
  fi
  wait_for 30 "redis cluster_state:ok" cluster_ok || die "redis cluster not ok; see $DIR/*.log"
  wait_for 30 "redis replicas" replicas_linked || die "redis replicas did not link; see $DIR/*.log"
  say "redis node $port: up ($(cli "$port" info replication | sed -n 's/^role:\(.*\)\r$/\1/p')); cluster ok"
}

stop() {
  local p any=0
  for p in "${PORTS[@]}"; do
    if ours "$p"; then
      stop_pidfile "$(pidfile "$p")" "redis-server" "redis node $p"
      any=1
    elif answers "$p"; then
      say "redis node $p was not started by these scripts; left running"
    fi
  done
  ((any)) || say "redis cluster: nothing of ours was running"
}

status() {
  local p who role
  for p in "${PORTS[@]}"; do
    if ours "$p"; then who="pid $(<"$(pidfile "$p")")"; elif answers "$p"; then who="not ours"; else who="down"; fi
    role=$(cli "$p" info replication 2>/dev/null | sed -n 's/^role:\(.*\)\r$/\1/p' || true)
    printf 'redis 127.0.0.1:%s  %-10s %s\n' "$p" "$who" "${role:-}"
  done
  if cluster_ok; then
    echo "redis cluster: ok"
  else
    echo "redis cluster: not ok"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) restart "${2:-}" ;;
  *) die "usage: $0 start|stop|status|restart PORT" ;;
esac
