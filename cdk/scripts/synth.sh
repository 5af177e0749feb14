#!/usr/bin/env bash
# Full synth of every stack WITH bundling: cargo-lambda builds each function (arm64, release)
# from the workspace, then each function asset's size is printed. The Makefile's `synth`
# target and the pipeline's build step call this. Extra arguments go to `cdk synth`
# (e.g. -c env=staging).
#
# Needs: node_modules (npm ci), cargo-lambda (pip install cargo-lambda, which brings zig),
# and the Rust std for aarch64-unknown-linux-gnu (rustup target add aarch64-unknown-linux-gnu).
set -euo pipefail
cd "$(dirname "$0")/.."

# scripts/install-deps.sh puts cargo-lambda (and zig) into the repository's venv.
[[ -d ../.run/venv/bin ]] && export PATH="$(cd ../.run/venv/bin && pwd):$PATH"

if ! cargo lambda --version >/dev/null 2>&1; then
  echo "synth: cargo-lambda is not installed (pip install cargo-lambda); it builds the functions." >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "synth: the Rust target aarch64-unknown-linux-gnu is missing (rustup target add aarch64-unknown-linux-gnu)." >&2
  exit 1
fi
[[ -d node_modules ]] || npm ci

rm -rf cdk.out
npx cdk synth --quiet "$@"
node scripts/asset-sizes.js cdk.out
