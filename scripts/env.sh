# Sourced (not run) by the other scripts: where things live, the AWS stand-in's
# environment, and a few helpers. Sourcing it has no side effects beyond variables.
#
#   . "$(dirname "$0")/env.sh"

CARAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$CARAT_ROOT/.run"
VENV="$RUN_DIR/venv"

# Everything local talks to the stand-in on LocalStack's port, never to real AWS:
# these are set unconditionally, so a shell with real credentials cannot leak into tests.
export AWS_ENDPOINT_URL="http://127.0.0.1:4566"
export AWS_ACCESS_KEY_ID="test"
export AWS_SECRET_ACCESS_KEY="test"
export AWS_REGION="us-east-1"
export AWS_DEFAULT_REGION="us-east-1"
unset AWS_PROFILE AWS_SESSION_TOKEN

# The venv's tools (moto_server, aws, cargo-lambda) come first.
export PATH="$VENV/bin:$PATH"

say() { printf '%s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# pid_alive PIDFILE NEEDLE: the PID in PIDFILE is a live process whose command line
# contains NEEDLE (so a recycled PID of some other program is not mistaken for ours).
pid_alive() {
  local pidfile=$1 needle=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.2 s until it succeeds.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# stop_pidfile PIDFILE NEEDLE NAME: stops the process of a PID file written by these
# scripts (TERM, then KILL after 10 s) and removes the file. Anything else is left alone.
stop_pidfile() {
  local pidfile=$1 needle=$2 name=$3 pid i
  if ! pid_alive "$pidfile" "$needle"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pidfile" "$needle" || break
    sleep 0.2
  done
  if pid_alive "$pidfile" "$needle"; then
    say "$name (pid $pid) did not stop on TERM; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  say "stopped $name (pid $pid)"
}
