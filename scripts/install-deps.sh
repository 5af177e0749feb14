#!/usr/bin/env bash
# Installs what the local system needs, and nothing that is already there:
#   - Debian packages: redis-server, redis-tools, prometheus, prometheus-node-exporter (the
#     Prometheus remote_write test), chromium (the graph page's browser test) (and curl,
#     python3-venv if missing);
#   - a Python venv at .run/venv with scripts/requirements.txt (moto server, aws CLI, cargo-lambda);
#   - the CDK's node modules (npm ci in cdk/) when cdk/package-lock.json exists;
#   - tests/browser's node modules (playwright-core) the same way.
# Idempotent: a second run checks and returns in a few seconds. Uses sudo only when not root.
set -euo pipefail
. "$(dirname "$0")/env.sh"

as_root() {
  if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}

# --- Debian packages -------------------------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
command -v curl >/dev/null || missing+=(curl)
command -v chromium >/dev/null || missing+=(chromium) # the graph page's browser test
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a redis-server on 6379 (and, with systemd, prometheus on 9090 and the node
  # exporter on 9100) after installing them; carat and its tests do not use those.
fi

# --- Python venv -----------------------------------------------------------------
req="$CARAT_ROOT/scripts/requirements.txt"
stamp="$VENV/.carat-requirements"
if [[ -x $VENV/bin/python ]] && cmp -s "$req" "$stamp"; then
  :
else
  say "creating the Python venv at $VENV (moto, aws CLI, cargo-lambda; a minute or two)"
  mkdir -p "$RUN_DIR"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

# --- CDK node modules ------------------------------------------------------------
cdk="$CARAT_ROOT/cdk"
if [[ -f $cdk/package-lock.json ]]; then
  # npm ci wipes node_modules: run it only when the lock file is newer than npm's own
  # record of the last install (node_modules/.package-lock.json), as npm itself judges.
  if [[ $cdk/node_modules/.package-lock.json -nt $cdk/package-lock.json ]]; then
    :
  else
    command -v npm >/dev/null || die "npm not found: install Node.js 20 (the CDK needs it)"
    say "npm ci in cdk/"
    (cd "$cdk" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

# --- the browser test's node modules (playwright-core, driving Debian's chromium) -
browser="$CARAT_ROOT/tests/browser"
if [[ ! $browser/node_modules/.package-lock.json -nt $browser/package-lock.json ]]; then
  command -v npm >/dev/null || die "npm not found: install Node.js 20 (the browser test needs it)"
  say "npm ci in tests/browser/"
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

say "dependencies: ok (redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), moto $("$VENV/bin/python" -c "import moto; print(moto.__version__)"), venv $VENV)"
