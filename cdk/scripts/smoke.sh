#!/usr/bin/env bash
# Smoke test of a deployed carat: posts one point through the ingest API and expects a 2xx.
#
#   CARAT_API_URL        base URL of the API (the Services stack output ApiUrl)
#   CARAT_API_KEY        a write API key, or else
#   CARAT_SMOKE_SECRET   name of a Secrets Manager secret whose string is that key
#
# The pipeline runs it after the staging deployment. It never prints the key.
set -euo pipefail

: "${CARAT_API_URL:?CARAT_API_URL must be the API base URL}"
key="${CARAT_API_KEY:-}"
if [[ -z "$key" ]]; then
  : "${CARAT_SMOKE_SECRET:?set CARAT_API_KEY or CARAT_SMOKE_SECRET}"
  key="$(aws secretsmanager get-secret-value --secret-id "$CARAT_SMOKE_SECRET" --query SecretString --output text)"
fi

now="$(date +%s)"
body="[{\"series\":\"carat.smoke\",\"time\":${now},\"value\":1}]"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

status="$(curl -sS -o "$out" -w '%{http_code}' --max-time 30 \
  -X POST "${CARAT_API_URL%/}/api/v1/points" \
  -H "X-Api-Key: ${key}" \
  -H 'Content-Type: application/json' \
  --data "$body")" || { echo "smoke: request to ${CARAT_API_URL%/}/api/v1/points failed" >&2; exit 1; }

if [[ "$status" =~ ^2[0-9][0-9]$ ]]; then
  echo "smoke: POST /api/v1/points -> HTTP $status"
else
  echo "smoke: POST /api/v1/points -> HTTP $status, expected 2xx; body:" >&2
  head -c 2000 "$out" >&2; echo >&2
  exit 1
fi
