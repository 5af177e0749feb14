//! Handler tests: the router against `FakeLog`, through `tower::ServiceExt::oneshot`.
//! Success cases decode the records the fake holds and compare them with what was
//! posted; failure cases check the status, the error's index and field, and that the
//! log holds nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use carat_api::remote_write::{Label, Sample, TimeSeries, WriteRequest, STALE_NAN_BITS};
use carat_api::{router, AppState, FixedClock, KeyStore};
use carat_core::record::{self, Record};
use carat_core::series::partition_key;
use carat_core::{Config, SeriesKey, SeriesName, Tenant};
use carat_store::fake::{FakeLog, FaultKind};
use prost::Message as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const NOW_MS: i64 = 1_700_000_000_123;
const NOW: i64 = 1_700_000_000;
const SHARDS: usize = 4;
/// The documented development keys of config/api-keys.local.toml.
const DEV_KEY: &str = "carat-dev-key";
const READ_ONLY_KEY: &str = "carat-dev-readonly";

fn keys() -> KeyStore {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/api-keys.local.toml");
    KeyStore::load(&path).expect("the local keys file parses")
}

struct Harness {
    log: Arc<FakeLog>,
    app: Router,
    config: Config,
}

fn harness_with(config: Config) -> Harness {
    let log = Arc::new(FakeLog::new(SHARDS));
    let app = router(AppState {
        log: log.clone(),
        keys: Arc::new(keys()),
        clock: Arc::new(FixedClock(NOW_MS)),
        config: Arc::new(config.clone()),
    });
    Harness { log, app, config }
}

fn harness() -> Harness {
    harness_with(Config::default())
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    json: Value,
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().expect("ascii").to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "response is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer {
            status,
            retry_after,
            json,
        }
    }

    async fn post_json(&self, path: &str, body: impl Into<Body>) -> Answer {
        self.send(
            Request::post(path)
                .header("x-api-key", DEV_KEY)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.into())
                .expect("request"),
        )
        .await
    }

    async fn remote_write(&self, body: Vec<u8>) -> Answer {
        self.send(
            Request::post("/api/v1/write")
                .header(header::AUTHORIZATION, format!("Bearer {DEV_KEY}"))
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .header(header::CONTENT_ENCODING, "snappy")
                .header("x-prometheus-remote-write-version", "0.1.0")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
    }

    /// Every record on the log, decoded, after checking its partition key is the
    /// bucket of every series it carries.
    fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            for entry in self.log.records(shard) {
                let rec = record::decode(&entry.data).expect("records decode");
                for s in &rec.series {
                    let bucket = SeriesKey::new(rec.tenant.clone(), s.series.clone())
                        .bucket(self.config.record.buckets);
                    assert_eq!(entry.partition_key, partition_key(bucket), "{}", s.series);
                }
                out.push(rec);
            }
        }
        out
    }

    /// Series ⇒ (time, value bits) as stored, checking tenant and stamp on the way.
    fn stored(&self) -> BTreeMap<String, Vec<(i64, u64)>> {
        let mut out: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
        for rec in self.records() {
            assert_eq!(rec.tenant, Tenant::default_tenant());
            assert_eq!(rec.stamp_ms, NOW_MS);
            for s in rec.series {
                let pts = out.entry(s.series.as_str().to_string()).or_default();
                assert!(pts.is_empty(), "series {} split across records", s.series);
                pts.extend(s.points.iter().map(|p| (p.time, p.value.to_bits())));
            }
        }
        out
    }

    fn assert_nothing_written(&self) {
        for shard in 0..SHARDS {
            assert!(
                self.log.records(shard).is_empty(),
                "shard {shard} holds records"
            );
        }
    }
}

fn expect(pairs: &[(&str, &[(i64, f64)])]) -> BTreeMap<String, Vec<(i64, u64)>> {
    pairs
        .iter()
        .map(|(s, pts)| {
            (
                (*s).to_string(),
                pts.iter().map(|(t, v)| (*t, v.to_bits())).collect(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Success

#[tokio::test]
async fn mackerel_host_points_are_stored_exactly() {
    let h = harness();
    let body = json!([
        {"hostId": "3Ab9", "name": "cpu.user.percentage", "time": NOW - 60, "value": 12.34},
        {"hostId": "3Ab9", "name": "cpu.user.percentage", "time": NOW, "value": 94.79799999999999},
        {"hostId": "3Ab9", "name": "memory.used", "time": NOW, "value": 8_123_456_789_u64},
        {"hostId": "x-1", "name": "loadavg5", "time": NOW - 86_400, "value": -0.0},
    ]);
    let a = h.post_json("/api/v0/tsdb", body.to_string()).await;
    assert_eq!(
        (a.status, &a.json),
        (StatusCode::OK, &json!({"success": true}))
    );
    assert_eq!(
        h.stored(),
        expect(&[
            (
                "host.3Ab9.cpu.user.percentage",
                &[(NOW - 60, 12.34), (NOW, 94.797_999_999_999_99)]
            ),
            ("host.3Ab9.memory.used", &[(NOW, 8_123_456_789.0)]),
            ("host.x-1.loadavg5", &[(NOW - 86_400, -0.0)]),
        ])
    );
}

#[tokio::test]
async fn mackerel_service_points_are_stored_exactly() {
    let h = harness();
    let body = json!([
        {"name": "latency.p99", "time": NOW, "value": 0.25},
        {"name": "requests", "time": NOW + 600, "value": 42},
    ]);
    let a = h
        .post_json("/api/v0/services/web-1/tsdb", body.to_string())
        .await;
    assert_eq!(
        (a.status, &a.json),
        (StatusCode::OK, &json!({"success": true}))
    );
    assert_eq!(
        h.stored(),
        expect(&[
            ("service.web-1.latency.p99", &[(NOW, 0.25)]),
            ("service.web-1.requests", &[(NOW + 600, 42.0)]),
        ])
    );
}

#[tokio::test]
async fn native_points_are_stored_exactly() {
    let h = harness();
    let body = json!([
        {"series": "app.queue.depth", "time": NOW - 5, "value": 3},
        {"series": "app.queue.depth", "time": NOW, "value": 1e300},
    ]);
    let a = h.post_json("/api/v1/points", body.to_string()).await;
    assert_eq!(
        (a.status, &a.json),
        (StatusCode::OK, &json!({"success": true}))
    );
    assert_eq!(
        h.stored(),
        expect(&[("app.queue.depth", &[(NOW - 5, 3.0), (NOW, 1e300)])])
    );
}

#[tokio::test]
async fn empty_posts_succeed_and_write_nothing() {
    let h = harness();
    let a = h.post_json("/api/v0/tsdb", "[]").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(h.log.faults().calls("put"), 0);
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(n, v)| Label {
            name: (*n).to_string(),
            value: (*v).to_string(),
        })
        .collect()
}

fn sample(ms: i64, value: f64) -> Sample {
    Sample {
        value,
        timestamp: ms,
    }
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .expect("snappy compresses")
}

/// A remote_write body as Prometheus builds it: label sets sorted by name, samples in
/// time order, protobuf then snappy block format.
fn prometheus_body(req: &WriteRequest) -> Vec<u8> {
    snappy(&req.encode_to_vec())
}

#[tokio::test]
async fn prometheus_remote_write_is_stored_exactly() {
    let h = harness();
    let req = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: labels(&[
                    ("__name__", "node_cpu_seconds_total"),
                    ("cpu", "0"),
                    ("instance", "10.0.0.1:9100"),
                    ("job", "node"),
                    ("mode", "idle"),
                ]),
                samples: vec![
                    sample((NOW - 30) * 1000, 1_234_567.89),
                    sample((NOW - 15) * 1000, 1_234_582.01),
                ],
                histograms: vec![],
            },
            TimeSeries {
                labels: labels(&[
                    ("__name__", "up"),
                    ("instance", "10.0.0.1:9100"),
                    ("job", "node"),
                ]),
                samples: vec![
                    // Sub-second samples of one second: the later replaces the earlier.
                    sample(NOW * 1000 + 100, 0.0),
                    sample(NOW * 1000 + 900, 1.0),
                    // A staleness marker is dropped, not rejected.
                    sample(NOW * 1000 + 950, f64::from_bits(STALE_NAN_BITS)),
                ],
                histograms: vec![],
            },
        ],
    };
    let a = h.remote_write(prometheus_body(&req)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    assert_eq!(
        h.stored(),
        expect(&[
            (
                "node_cpu_seconds_total.cpu.0.instance.10.0.0.1_9100.job.node.mode.idle",
                &[(NOW - 30, 1_234_567.89), (NOW - 15, 1_234_582.01)],
            ),
            ("up.instance.10.0.0.1_9100.job.node", &[(NOW, 1.0)]),
        ])
    );
}

#[tokio::test]
async fn same_series_and_time_keeps_the_last_point() {
    let h = harness();
    let body = json!([
        {"hostId": "h", "name": "m", "time": NOW - 60, "value": 1},
        {"hostId": "h", "name": "m", "time": NOW, "value": 2},
        {"hostId": "h", "name": "m", "time": NOW - 60, "value": 3},
        {"hostId": "h", "name": "n", "time": NOW, "value": 4},
        {"hostId": "h", "name": "m", "time": NOW - 60, "value": 5},
    ]);
    assert_eq!(
        h.post_json("/api/v0/tsdb", body.to_string()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.stored(),
        expect(&[
            ("host.h.m", &[(NOW, 2.0), (NOW - 60, 5.0)]),
            ("host.h.n", &[(NOW, 4.0)]),
        ])
    );
}

#[tokio::test]
async fn series_are_grouped_by_bucket_one_record_per_bucket() {
    let mut config = Config::default();
    config.record.buckets = 8;
    let h = harness_with(config);
    let points: Vec<Value> = (0..100)
        .map(|i| json!({"series": format!("s{i}"), "time": NOW, "value": i}))
        .collect();
    let a = h
        .post_json("/api/v1/points", Value::Array(points).to_string())
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let records = h.records(); // checks partition key = bucket of every series
    let buckets: std::collections::BTreeSet<u32> = (0..100)
        .map(|i| {
            SeriesKey::new(
                Tenant::default_tenant(),
                SeriesName::parse(&format!("s{i}"), "series").expect("valid"),
            )
            .bucket(8)
        })
        .collect();
    assert_eq!(records.len(), buckets.len(), "one record per bucket");
    assert_eq!(h.log.faults().calls("put"), 1, "one Log::put per request");
    let stored = h.stored();
    assert_eq!(stored.len(), 100);
    for i in 0..100 {
        assert_eq!(
            stored[&format!("s{i}")],
            vec![(NOW, f64::from(i).to_bits())]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Bad input: right status, error names index and field, nothing written

async fn rejected(
    h: &Harness,
    path: &str,
    body: &str,
    status: StatusCode,
    index: Option<u64>,
    field: Option<&str>,
) -> Value {
    let a = h.post_json(path, body.to_string()).await;
    assert_eq!(a.status, status, "{path} {body}: {}", a.json);
    let err = &a.json["error"];
    assert!(err["message"].is_string(), "{}", a.json);
    assert_eq!(err["index"].as_u64(), index, "{body}: {}", a.json);
    assert_eq!(err["field"].as_str(), field, "{body}: {}", a.json);
    h.assert_nothing_written();
    assert_eq!(h.log.faults().calls("put"), 0);
    a.json
}

const OK_HOST: &str = r#"{"hostId":"h","name":"cpu","time":1700000000,"value":1}"#;

#[tokio::test]
async fn malformed_json_is_400() {
    let h = harness();
    let bad = StatusCode::BAD_REQUEST;
    rejected(&h, "/api/v0/tsdb", "", bad, None, None).await;
    rejected(&h, "/api/v0/tsdb", "not json", bad, None, None).await;
    rejected(&h, "/api/v0/tsdb", r#"{"hostId":"h"}"#, bad, None, None).await;
    rejected(
        &h,
        "/api/v0/tsdb",
        &format!("[{OK_HOST},"),
        bad,
        Some(1),
        None,
    )
    .await;
    rejected(
        &h,
        "/api/v0/tsdb",
        &format!("[{OK_HOST}] x"),
        bad,
        None,
        None,
    )
    .await;
    rejected(
        &h,
        "/api/v0/tsdb",
        &format!("[{OK_HOST},7]"),
        bad,
        Some(1),
        None,
    )
    .await;
}

#[tokio::test]
async fn wrong_types_and_missing_fields_name_index_and_field() {
    let h = harness();
    let bad = StatusCode::BAD_REQUEST;
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"hostId":"h","name":"cpu","time":"1700000000","value":1}"#,
            "time",
            "string",
        ),
        (
            r#"{"hostId":"h","name":"cpu","time":1700000000.5,"value":1}"#,
            "time",
            "floating",
        ),
        (
            r#"{"hostId":"h","name":"cpu","time":1700000000,"value":"1"}"#,
            "value",
            "string",
        ),
        (
            r#"{"hostId":"h","name":"cpu","time":1700000000,"value":true}"#,
            "value",
            "boolean",
        ),
        (
            r#"{"hostId":3,"name":"cpu","time":1700000000,"value":1}"#,
            "hostId",
            "integer",
        ),
        (
            r#"{"hostId":"h","name":["cpu"],"time":1700000000,"value":1}"#,
            "name",
            "sequence",
        ),
        (
            r#"{"hostId":"h","time":1700000000,"value":1}"#,
            "name",
            "missing",
        ),
        (
            r#"{"hostId":"h","name":"cpu","time":1700000000}"#,
            "value",
            "missing",
        ),
    ];
    for (point, field, word) in cases {
        let body = format!("[{OK_HOST},{OK_HOST},{point}]");
        let j = rejected(&h, "/api/v0/tsdb", &body, bad, Some(2), Some(field)).await;
        let msg = j["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(word) && msg.contains("point 2"), "{msg}");
    }
    rejected(
        &h,
        "/api/v1/points",
        r#"[{"series":null,"time":1700000000,"value":1}]"#,
        bad,
        Some(0),
        Some("series"),
    )
    .await;
}

#[tokio::test]
async fn non_finite_values_are_400() {
    // JSON cannot carry NaN or Infinity: they arrive as strings, null or numbers too
    // large for an f64.
    let h = harness();
    let bad = StatusCode::BAD_REQUEST;
    for v in [
        r#""NaN""#,
        r#""Infinity""#,
        "null",
        "1e999",
        "-1e999",
        "NaN",
        "Infinity",
    ] {
        let body =
            format!(r#"[{OK_HOST},{{"hostId":"h","name":"cpu","time":1700000000,"value":{v}}}]"#);
        // Bare NaN/Infinity are not JSON at all: a syntax error inside the value, which
        // still names the point and the field.
        rejected(&h, "/api/v0/tsdb", &body, bad, Some(1), Some("value")).await;
    }
}

#[tokio::test]
async fn bad_names_are_400() {
    let h = harness();
    let bad = StatusCode::BAD_REQUEST;
    let p = |host: &str, name: &str| {
        format!(r#"[{OK_HOST},{{"hostId":{host:?},"name":{name:?},"time":1700000000,"value":1}}]"#)
    };
    rejected(
        &h,
        "/api/v0/tsdb",
        &p("h", "cpu user"),
        bad,
        Some(1),
        Some("name"),
    )
    .await;
    rejected(
        &h,
        "/api/v0/tsdb",
        &p("h/1", "cpu"),
        bad,
        Some(1),
        Some("hostId"),
    )
    .await;
    rejected(
        &h,
        "/api/v0/tsdb",
        &p("", "cpu"),
        bad,
        Some(1),
        Some("hostId"),
    )
    .await;
    rejected(&h, "/api/v0/tsdb", &p("h", "é"), bad, Some(1), Some("name")).await;
    rejected(
        &h,
        "/api/v0/tsdb",
        &p("h", &"a".repeat(250)),
        bad,
        Some(1),
        Some("name"),
    )
    .await;
    rejected(
        &h,
        "/api/v1/points",
        r#"[{"series":"a b","time":1700000000,"value":1}]"#,
        bad,
        Some(0),
        Some("series"),
    )
    .await;
    rejected(
        &h,
        "/api/v0/services/we%20b/tsdb",
        r#"[{"name":"a","time":1700000000,"value":1}]"#,
        bad,
        None,
        Some("service"),
    )
    .await;
}

#[tokio::test]
async fn too_old_and_future_times_are_400() {
    let h = harness();
    let bad = StatusCode::BAD_REQUEST;
    let ingest = &h.config.ingest;
    for t in [
        NOW - ingest.max_lateness_secs - 1,
        NOW + ingest.max_skew_secs + 1,
        0,
        -5,
    ] {
        let body = format!(r#"[{OK_HOST},{OK_HOST},{{"series":"a","time":{t},"value":1}}]"#)
            .replace(OK_HOST, r#"{"series":"a","time":1700000000,"value":1}"#);
        rejected(&h, "/api/v1/points", &body, bad, Some(2), Some("time")).await;
    }
}

#[tokio::test]
async fn huge_bodies_are_413_with_the_json_error() {
    let mut config = Config::default();
    config.ingest.max_body_bytes = 1024;
    let h = harness_with(config);
    let points: Vec<String> = (0..40).map(|_| OK_HOST.to_string()).collect();
    let body = format!("[{}]", points.join(","));
    assert!(body.len() > 1024);
    let j = rejected(
        &h,
        "/api/v0/tsdb",
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        None,
    )
    .await;
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1024"),
        "{j}"
    );
    // Also when the size is not announced (chunked): a streamed body.
    let stream = futures_like_stream(body.clone().into_bytes());
    let a = h
        .send(
            Request::post("/api/v0/tsdb")
                .header("x-api-key", DEV_KEY)
                .body(stream)
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.json);
    // A remote_write body over the limit, and one that only inflates past it.
    let a = h.remote_write(vec![0; 2048]).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.json);
    let a = h.remote_write(snappy(&vec![0; 64 * 1024])).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.json);
    assert!(a.json["error"]["message"].is_string());
    h.assert_nothing_written();
}

/// A body without a known length, sent in pieces.
fn futures_like_stream(bytes: Vec<u8>) -> Body {
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = bytes
        .chunks(100)
        .map(|c| Ok(axum::body::Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn too_many_points_is_413() {
    let mut config = Config::default();
    config.ingest.max_points_per_request = 3;
    let h = harness_with(config);
    let body = format!("[{OK_HOST},{OK_HOST},{OK_HOST},{OK_HOST}]");
    rejected(
        &h,
        "/api/v0/tsdb",
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        None,
    )
    .await;
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: labels(&[("__name__", "x")]),
            samples: (0..4).map(|i| sample(NOW * 1000 - i * 1000, 1.0)).collect(),
            histograms: vec![],
        }],
    };
    let a = h.remote_write(prometheus_body(&req)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.json);
    h.assert_nothing_written();
}

#[tokio::test]
async fn corrupt_snappy_and_protobuf_are_400() {
    let h = harness();
    // Not snappy: a varint length that never ends.
    let a = h.remote_write(vec![0xff; 16]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    assert!(a.json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("snappy"));
    // Snappy that announces more bytes than it holds.
    let mut truncated = snappy(&WriteRequest::default().encode_to_vec());
    truncated[0] = 100;
    let a = h.remote_write(truncated).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    // Valid snappy around bytes that are not a WriteRequest (a field with wire type 7).
    let a = h.remote_write(snappy(&[0x0f, 0x01, 0x02])).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    assert!(a.json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("protobuf"));
    // A valid WriteRequest cut short.
    let full = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: labels(&[("__name__", "x")]),
            samples: vec![sample(NOW * 1000, 1.0)],
            histograms: vec![],
        }],
    }
    .encode_to_vec();
    let a = h.remote_write(snappy(&full[..full.len() - 3])).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    h.assert_nothing_written();
}

#[tokio::test]
async fn bad_remote_write_series_name_index_and_field() {
    let h = harness();
    let ok = TimeSeries {
        labels: labels(&[("__name__", "x")]),
        samples: vec![sample(NOW * 1000, 1.0)],
        histograms: vec![],
    };
    let cases = [
        (
            TimeSeries {
                labels: labels(&[("job", "x")]),
                ..ok.clone()
            },
            "labels",
        ),
        (
            TimeSeries {
                samples: vec![sample(NOW * 1000, 2.0), sample(NOW * 1000, f64::NAN)],
                ..ok.clone()
            },
            "samples[1].value",
        ),
        (
            TimeSeries {
                samples: vec![sample(NOW * 1000, f64::INFINITY)],
                ..ok.clone()
            },
            "samples[0].value",
        ),
        (
            TimeSeries {
                samples: vec![sample((NOW + 3600) * 1000, 1.0)],
                ..ok.clone()
            },
            "samples[0].time",
        ),
        (
            TimeSeries {
                histograms: vec![vec![1, 2, 3]],
                ..ok.clone()
            },
            "histograms",
        ),
    ];
    for (bad, field) in cases {
        let req = WriteRequest {
            timeseries: vec![ok.clone(), bad],
        };
        let a = h.remote_write(prometheus_body(&req)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
        assert_eq!(a.json["error"]["index"], json!(1), "{}", a.json);
        assert_eq!(a.json["error"]["field"], json!(field), "{}", a.json);
    }
    h.assert_nothing_written();
}

#[tokio::test]
async fn remote_write_2_is_415() {
    let h = harness();
    let a = h
        .send(
            Request::post("/api/v1/write")
                .header(header::AUTHORIZATION, format!("Bearer {DEV_KEY}"))
                .header(
                    header::CONTENT_TYPE,
                    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                )
                .header(header::CONTENT_ENCODING, "snappy")
                .body(Body::from(snappy(b"")))
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.json);
    h.assert_nothing_written();
}

// ---------------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn missing_or_unknown_key_is_401_read_only_is_403() {
    let h = harness();
    let body = format!("[{OK_HOST}]");
    for path in [
        "/api/v0/tsdb",
        "/api/v0/services/web/tsdb",
        "/api/v1/points",
        "/api/v1/write",
    ] {
        for (header, status) in [
            (None, StatusCode::UNAUTHORIZED),
            (
                Some(("x-api-key", "wrong".to_string())),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some(("authorization", "Bearer wrong".to_string())),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some(("authorization", format!("Basic {DEV_KEY}"))),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some(("x-api-key", READ_ONLY_KEY.to_string())),
                StatusCode::FORBIDDEN,
            ),
            (
                Some(("authorization", format!("Bearer {READ_ONLY_KEY}"))),
                StatusCode::FORBIDDEN,
            ),
        ] {
            let mut req = Request::post(path);
            if let Some((k, v)) = &header {
                req = req.header(*k, v);
            }
            let a = h
                .send(req.body(Body::from(body.clone())).expect("request"))
                .await;
            assert_eq!(a.status, status, "{path} {header:?}: {}", a.json);
            assert!(a.json["error"]["message"].is_string(), "{}", a.json);
        }
    }
    h.assert_nothing_written();
    // Auth comes before the body: an unauthenticated oversized body is 401, not 413.
    let mut config = Config::default();
    config.ingest.max_body_bytes = 16;
    let h = harness_with(config);
    let a = h
        .send(
            Request::post("/api/v0/tsdb")
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_key_works_on_json_routes() {
    let h = harness();
    let a = h
        .send(
            Request::post("/api/v0/tsdb")
                .header(header::AUTHORIZATION, format!("Bearer {DEV_KEY}"))
                .body(Body::from(format!("[{OK_HOST}]")))
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
}

// ---------------------------------------------------------------------------------------
// Throttling and store failures: never report stored what was not acknowledged

#[tokio::test]
async fn throttled_log_is_503_with_retry_after() {
    let h = harness();
    let body = format!("[{OK_HOST}]");
    h.log.faults().fail_next_op("put", 1);
    let a = h.post_json("/api/v0/tsdb", body.clone()).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.json);
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    assert!(a.json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("nothing was stored"));
    assert!(a.json.get("success").is_none());
    h.assert_nothing_written();
    // The client retries the same request: now it is stored.
    let a = h.post_json("/api/v0/tsdb", body).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(h.stored(), expect(&[("host.h.cpu", &[(NOW, 1.0)])]));
}

#[tokio::test]
async fn partly_acknowledged_put_is_503_not_success() {
    let mut config = Config::default();
    config.record.buckets = 64;
    let h = harness_with(config);
    let points: Vec<Value> = (0..50)
        .map(|i| json!({"series": format!("s{i}"), "time": NOW, "value": i}))
        .collect();
    h.log
        .faults()
        .inject(Some("put"), 1, FaultKind::PartialThenRetryable(1));
    let a = h
        .post_json("/api/v1/points", Value::Array(points).to_string())
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.json);
    assert!(a.retry_after.is_some());
}

#[tokio::test]
async fn fatal_log_error_is_500() {
    let h = harness();
    h.log.faults().inject(Some("put"), 1, FaultKind::Fatal);
    let a = h.post_json("/api/v0/tsdb", format!("[{OK_HOST}]")).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.json);
    assert!(a.json["error"]["message"].is_string());
    assert!(a.retry_after.is_none());
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let h = harness();
    let a = h.post_json("/api/v0/nope", "[]").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------
// docs/api.md: the curl examples work as documented

/// Every `curl` example of docs/api.md, posted through the router with its key, path and
/// body; the `# <status>` line under it is the expected answer.
#[tokio::test]
async fn api_doc_examples_run() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md"),
    )
    .expect("docs/api.md is readable");
    let mut ran = 0;
    for block in doc.split("```sh").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        if !block.contains("curl") {
            continue;
        }
        let h = harness();
        let field = |after: &str, until: char| {
            let start = block.find(after).map(|i| i + after.len())?;
            block[start..].split(until).next().map(str::to_string)
        };
        let path = field("http://127.0.0.1:8080", ' ').expect("a URL");
        let body = field("-d '", '\'').expect("a body");
        let status: u16 = field("# ", ' ')
            .and_then(|s| s.parse().ok())
            .expect("a `# <status>` line");
        let mut req = Request::post(path.as_str());
        if let Some(key) = field("X-Api-Key: ", '\'') {
            req = req.header("x-api-key", key);
        }
        if let Some(key) = field("Authorization: Bearer ", '\'') {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let a = h.send(req.body(Body::from(body)).expect("request")).await;
        assert_eq!(a.status.as_u16(), status, "{path}: {}", a.json);
        assert!(!h.stored().is_empty(), "{path}: nothing stored");
        ran += 1;
    }
    assert_eq!(ran, 3, "docs/api.md has three curl examples");
}
