//! CloudWatch Embedded Metric Format: one JSON line on stdout per invocation, which
//! Lambda's log pipeline turns into metrics (namespace `Carat`, dimension `Function`)
//! without a PutMetricData call. This is the "points processed per minute" signal.

use serde_json::{json, Map, Value};

/// Namespace of every carat metric.
pub const NAMESPACE: &str = "Carat";

/// The per-invocation phase metrics: time spent in each service's calls, summed over
/// concurrent calls (`carat_store::trace`).
pub const PHASE_METRICS: [(&str, carat_store::trace::Service); 4] = [
    ("AppendMs", carat_store::trace::Service::Redis),
    ("FlushMs", carat_store::trace::Service::DynamoDb),
    ("PutMs", carat_store::trace::Service::Kinesis),
    ("ArchiveMs", carat_store::trace::Service::S3),
];

/// `(metric, ms)` of the [`PHASE_METRICS`] whose service `phases` saw called (a function
/// that never calls Kinesis emits no `PutMs`: each metric a function emits is a billed
/// custom metric), plus `extra` (e.g. `DecodeMs`, `TotalMs`).
#[must_use]
pub fn phase_millis(
    phases: Option<&carat_store::trace::Phases>,
    extra: &[(&'static str, u64)],
) -> Vec<(&'static str, u64)> {
    PHASE_METRICS
        .iter()
        .filter_map(|(name, s)| {
            let p = phases?;
            (p.calls(*s) > 0).then(|| (*name, p.millis(*s)))
        })
        .chain(extra.iter().copied())
        .collect()
}

/// The EMF document for `metrics` (name, count) of `function` at `timestamp_ms`.
#[must_use]
pub fn line(function: &str, timestamp_ms: i64, metrics: &[(&str, u64)]) -> String {
    line_with_millis(function, timestamp_ms, metrics, &[])
}

/// [`line`] with durations too: `millis` (name, milliseconds) get the unit `Milliseconds`.
#[must_use]
pub fn line_with_millis(
    function: &str,
    timestamp_ms: i64,
    metrics: &[(&str, u64)],
    millis: &[(&str, u64)],
) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({ "Name": name, "Unit": "Count" }))
        .chain(
            millis
                .iter()
                .map(|(name, _)| json!({ "Name": name, "Unit": "Milliseconds" })),
        )
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".to_string(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        }),
    );
    doc.insert("Function".to_string(), Value::from(function));
    for (name, value) in metrics.iter().chain(millis) {
        doc.insert((*name).to_string(), Value::from(*value));
    }
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let l = line(
            "writer",
            1_700_000_000_123,
            &[("ProcessedPoints", 42), ("BadRecords", 1)],
        );
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["Function"], "writer");
        assert_eq!(v["ProcessedPoints"], 42);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123_i64);
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Carat");
        assert_eq!(m["Dimensions"][0][0], "Function");
        assert_eq!(m["Metrics"][0]["Name"], "ProcessedPoints");
        assert_eq!(m["Metrics"][1]["Unit"], "Count");
    }

    #[test]
    fn durations_are_milliseconds() {
        let l = line_with_millis("writer", 1, &[("ProcessedPoints", 3)], &[("AppendMs", 12)]);
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["AppendMs"], 12);
        let m = &v["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(m[0]["Unit"], "Count");
        assert_eq!(m[1]["Name"], "AppendMs");
        assert_eq!(m[1]["Unit"], "Milliseconds");
    }

    /// The phase metrics of an invocation (`crate::handler::phase_millis`): the names
    /// the dashboard and docs/deploy.md's runbook use.
    #[test]
    fn phase_metric_names() {
        let names: Vec<&str> = PHASE_METRICS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["AppendMs", "FlushMs", "PutMs", "ArchiveMs"]);
    }
}
