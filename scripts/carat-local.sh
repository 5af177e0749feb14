#!/usr/bin/env bash
# carat-local (`carat local`): health and the ingest API on 127.0.0.1:8080, plus the
# stream pollers and schedules. Runs the debug build (the one `cargo test` shares).
#
#   scripts/carat-local.sh start    start it unless it runs (restart it if the binary was rebuilt); wait for /health 200
#   scripts/carat-local.sh stop     stop the carat-local this script started (.run/carat-local.pid)
#   scripts/carat-local.sh status   print /health; exit 0 if it answers 200
#
# Build first: cargo build -p carat-local. Config: config/local.toml (CARAT_CONFIG_FILE overrides).
set -euo pipefail
. "$(dirname "$0")/env.sh"
# carat-local resolves config/api-keys.local.toml and .run/ relative to its working directory.
cd "$CARAT_ROOT"

PIDFILE="$RUN_DIR/carat-local.pid"
LOG="$RUN_DIR/carat-local.log"
BIN="${CARGO_TARGET_DIR:-$CARAT_ROOT/target}/debug/carat"
CONFIG="${CARAT_CONFIG_FILE:-$CARAT_ROOT/config/local.toml}"
URL="http://127.0.0.1:8080/health"
NEEDLE="carat local"

healthy() { curl -sf -o /dev/null --max-time 5 "$URL"; }
ours() { pid_alive "$PIDFILE" "$NEEDLE"; }

start() {
  [[ -x $BIN ]] || die "$BIN not found: cargo build -p carat-local"
  if ours; then
    if [[ $BIN -nt $PIDFILE ]]; then
      say "carat-local: binary rebuilt since it started; restarting"
      stop_pidfile "$PIDFILE" "$NEEDLE" "carat-local"
    elif healthy; then
      say "carat-local: already up on 127.0.0.1:8080 (pid $(<"$PIDFILE"))"
      return 0
    fi
  fi
  if ! ours; then
    if port_open 8080; then
      if healthy; then
        say "carat-local: something not started by these scripts already serves a healthy /health on 8080; using it"
        return 0
      fi
      die "port 8080 is taken by a process these scripts did not start"
    fi
    mkdir -p "$RUN_DIR"
    # setsid: it outlives this shell and make's process group. Appends, so earlier runs stay readable.
    printf '\n=== %s carat local --config %s\n' "$(date -u +%FT%TZ)" "$CONFIG" >>"$LOG"
    setsid nohup "$BIN" local --config "$CONFIG" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  if ! wait_for 60 "carat-local /health" healthy; then
    say "carat-local is not healthy; /health says:"
    curl -s --max-time 5 "$URL" >&2 || true
    say ""
    say "last lines of $LOG:"
    tail -n 20 "$LOG" >&2
    ours || rm -f "$PIDFILE"
    return 1
  fi
  say "carat-local: up on 127.0.0.1:8080 (pid $(<"$PIDFILE"), log $LOG)"
}

stop() {
  if ours; then
    stop_pidfile "$PIDFILE" "$NEEDLE" "carat-local"
  elif port_open 8080; then
    rm -f "$PIDFILE"
    say "carat-local on 127.0.0.1:8080 was not started by these scripts; left running"
  else
    rm -f "$PIDFILE"
    say "carat-local: nothing of ours was running"
  fi
}

status() {
  local body
  if body=$(curl -sf --max-time 5 "$URL"); then
    if ours; then echo "carat-local: up on 127.0.0.1:8080 (pid $(<"$PIDFILE"))"; else echo "carat-local: up on 127.0.0.1:8080 (not ours)"; fi
    echo "  $body"
  else
    echo "carat-local: not healthy on 127.0.0.1:8080"
    curl -s --max-time 5 "$URL" | sed 's/^/  /' || true
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
