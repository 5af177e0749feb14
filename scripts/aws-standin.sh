#!/usr/bin/env bash
# The AWS stand-in: moto server on 127.0.0.1:4566 (LocalStack's port, so every component
# needs only AWS_ENDPOINT_URL), with carat's stream, table and bucket created in it.
#
#   scripts/aws-standin.sh start    start moto unless 4566 already answers, then create the resources
#   scripts/aws-standin.sh stop     stop the moto this script started (.run/moto.pid)
#   scripts/aws-standin.sh status   exit 0 if 4566 answers
#
# moto keeps everything in memory: a restart starts empty (the init script recreates the
# resources). Something already answering on 4566 (LocalStack, or a moto someone started by
# hand) is used as it is and never stopped.
set -euo pipefail
. "$(dirname "$0")/env.sh"

PIDFILE="$RUN_DIR/moto.pid"
LOG="$RUN_DIR/moto.log"
INIT="$CARAT_ROOT/localstack/init/ready.d/10-carat-resources.sh"

answers() { curl -s -o /dev/null --max-time 2 "$AWS_ENDPOINT_URL/"; }
ours() { pid_alive "$PIDFILE" moto_server; }

start() {
  if answers; then
    if ours; then say "aws stand-in: already up on 127.0.0.1:4566 (moto, pid $(<"$PIDFILE"))"; else say "aws stand-in: something already answers on 127.0.0.1:4566; using it"; fi
  else
    port_open 4566 && die "port 4566 is taken but does not answer HTTP"
    [[ -x $VENV/bin/moto_server ]] || die "moto_server not found in $VENV: run scripts/install-deps.sh"
    mkdir -p "$RUN_DIR"
    # A fresh moto has a new, empty stream: shard checkpoints of the old one would make
    # carat-local's pollers skip the new stream's first records (sequence numbers restart).
    if [[ -d $RUN_DIR/checkpoints ]]; then
      rm -rf "$RUN_DIR/checkpoints"
      say "aws stand-in: removed the old stream's shard checkpoints (.run/checkpoints)"
    fi
    # setsid: the server outlives this shell and make's process group.
    # moto_server_serial.py: moto one request at a time. Threaded moto loses acknowledged
    # Kinesis records under concurrent PutRecords (measured: 141 of 10,000 records from
    # 16 concurrent callers gone, duplicate sequence numbers); see the script.
    setsid nohup "$VENV/bin/python" "$CARAT_ROOT/scripts/moto_server_serial.py" -H 127.0.0.1 -p 4566 >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    wait_for 30 "moto on 127.0.0.1:4566" answers || die "moto did not start; see $LOG"
    say "aws stand-in: moto started on 127.0.0.1:4566 (pid $(<"$PIDFILE"), log $LOG)"
  fi
  "$INIT" | sed 's/^/  /' >&2
}

stop() {
  if ours; then
    stop_pidfile "$PIDFILE" moto_server "moto"
  elif answers; then
    say "aws stand-in on 127.0.0.1:4566 was not started by these scripts; left running"
  else
    rm -f "$PIDFILE"
    say "aws stand-in: nothing of ours was running"
  fi
}

status() {
  if answers; then
    if ours; then echo "aws stand-in: up on 127.0.0.1:4566 (moto, pid $(<"$PIDFILE"))"; else echo "aws stand-in: up on 127.0.0.1:4566 (not ours)"; fi
  else
    echo "aws stand-in: down"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
