#!/usr/bin/env bash
# Staging check of a deployed carat: invokes the end-to-end probe function once and passes
# only if that run posted its point through the deployed ingest API and read it back through
# the deployed reader (the result carries latency_ms), and the run's log shows the
# EndToEndLatency EMF line. It does not judge the latency (the end-to-end alarm does) nor
# wait for the metric to reach CloudWatch.
#
#   CARAT_PROBE_FUNCTION   name or ARN of the probe function (carat-<deployment>-probe)
#
# The pipeline runs it after the staging deployment. The probe's key never leaves the probe.
set -euo pipefail

: "${CARAT_PROBE_FUNCTION:?CARAT_PROBE_FUNCTION must name the probe function}"
region_args=()
if [[ "$CARAT_PROBE_FUNCTION" == arn:* ]]; then
  # arn:aws:lambda:<region>:<account>:function:<name>: call the function's region.
  region_args=(--region "$(cut -d: -f4 <<<"$CARAT_PROBE_FUNCTION")")
fi
payload="$(mktemp)"
meta="$(mktemp)"
trap 'rm -f "$payload" "$meta"' EXIT

# The probe runs for up to its timeout (50 s by default): wait longer than that.
aws lambda invoke "${region_args[@]}" --function-name "$CARAT_PROBE_FUNCTION" \
  --log-type Tail --cli-read-timeout 120 --output json "$payload" >"$meta" \
  || { echo "probe-check: aws lambda invoke of $CARAT_PROBE_FUNCTION failed" >&2; exit 1; }

python3 - "$payload" "$meta" <<'PY'
import base64, json, sys

def fail(why, log=""):
    print(f"probe-check: {why}", file=sys.stderr)
    if log:
        print("probe-check: the run's log tail:\n" + log, file=sys.stderr)
    sys.exit(1)

with open(sys.argv[2]) as f:
    meta = json.load(f)
log = base64.b64decode(meta.get("LogResult") or "").decode("utf-8", "replace")
with open(sys.argv[1]) as f:
    raw = f.read()
if meta.get("FunctionError"):
    fail(f"the probe function failed ({meta['FunctionError']}): {raw[:2000]}", log)
try:
    result = json.loads(raw)
except ValueError:
    fail(f"the probe returned no JSON result: {raw[:2000]}", log)
latency = result.get("latency_ms") if isinstance(result, dict) else None
if not isinstance(latency, int) or isinstance(latency, bool):
    error = result.get("error") if isinstance(result, dict) else None
    fail(f"the probe did not read its point back: {error}", log)
if '"EndToEndLatency":' not in log:
    fail("the probe read its point back but its log shows no EndToEndLatency EMF line", log)
print(f"probe-check: point posted and read back through the staging API in {latency} ms")
PY
