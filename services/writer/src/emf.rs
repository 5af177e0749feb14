//! CloudWatch Embedded Metric Format: one JSON line on stdout per invocation, which
//! Lambda's log pipeline turns into metrics (namespace `Carat`, dimension `Function`)
//! without a PutMetricData call. This is the "points processed per minute" signal.

use serde_json::{json, Map, Value};

/// Namespace of every carat metric.
pub const NAMESPACE: &str = "Carat";

/// The EMF document for `metrics` (name, count) of `function` at `timestamp_ms`.
#[must_use]
pub fn line(function: &str, timestamp_ms: i64, metrics: &[(&str, u64)]) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({ "Name": name, "Unit": "Count" }))
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
    for (name, value) in metrics {
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
}
