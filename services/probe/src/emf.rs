//! The probe's one metric in CloudWatch Embedded Metric Format (docs/probe-metric.md):
//! one JSON line on stdout, which Lambda forwards to CloudWatch Logs and CloudWatch turns
//! into `Carat/EndToEndLatency` (Milliseconds, dimension `Deployment`). The names are fixed
//! with the CDK's `METRICS.endToEndLatency` (cdk/lib/names.ts): change both together.

use serde::Serialize;

/// Namespace of every carat metric.
pub const NAMESPACE: &str = "Carat";
/// The metric the Monitoring stack alarms on.
pub const METRIC: &str = "EndToEndLatency";
/// Its unit.
pub const UNIT: &str = "Milliseconds";
/// Its one dimension; the value is `CARAT_DEPLOYMENT`.
pub const DIMENSION: &str = "Deployment";

// Structs rather than a `serde_json::Map`: the map sorts its keys, and the line should read
// as the spec writes it (`_aws` first).
#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "_aws")]
    aws: Aws,
    #[serde(rename = "Deployment")]
    deployment: &'a str,
    #[serde(rename = "EndToEndLatency")]
    latency_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Aws {
    timestamp: i64,
    cloud_watch_metrics: [Directive; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive {
    namespace: &'static str,
    dimensions: [[&'static str; 1]; 1],
    metrics: [Definition; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    name: &'static str,
    unit: &'static str,
}

/// The EMF line (no newline) saying that the probe of `deployment` started at
/// `timestamp_ms` saw its point after `latency_ms`.
#[must_use]
pub fn line(deployment: &str, timestamp_ms: i64, latency_ms: u64) -> String {
    let doc = Line {
        aws: Aws {
            timestamp: timestamp_ms,
            cloud_watch_metrics: [Directive {
                namespace: NAMESPACE,
                dimensions: [[DIMENSION]],
                metrics: [Definition {
                    name: METRIC,
                    unit: UNIT,
                }],
            }],
        },
        deployment,
        latency_ms,
    };
    serde_json::to_string(&doc).expect("a struct of strings and integers always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of docs/probe-metric.md, byte for byte: the format is frozen here.
    const GOLDEN: &str = r#"{"_aws":{"Timestamp":1764072000000,"CloudWatchMetrics":[{"Namespace":"Carat","Dimensions":[["Deployment"]],"Metrics":[{"Name":"EndToEndLatency","Unit":"Milliseconds"}]}]},"Deployment":"staging","EndToEndLatency":412}"#;

    #[test]
    fn golden_line() {
        assert_eq!(line("staging", 1_764_072_000_000, 412), GOLDEN);
    }

    #[test]
    fn the_doc_shows_the_golden_line() {
        let doc = include_str!("../../../docs/probe-metric.md");
        assert!(
            doc.lines().any(|l| l == GOLDEN),
            "docs/probe-metric.md must show the probe's EMF line as emf::line writes it"
        );
    }

    #[test]
    fn deployment_is_escaped() {
        let l = line("a\"b", 0, 1);
        let v: serde_json::Value = serde_json::from_str(&l).expect("valid JSON");
        assert_eq!(v["Deployment"], "a\"b");
        assert_eq!(v["EndToEndLatency"], 1);
    }
}
