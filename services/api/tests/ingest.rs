//! Handler tests: the router against `FakeLog`, through `tower::ServiceExt::oneshot`.
//! Success cases decode the records the fake holds and compare them with what was
//! posted; failure cases check the status, the error's index and field, and that the
//! log holds nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use carat_api::clock::ManualClock;
use carat_api::keys::LoadError;
use carat_api::remote_write::{Label, Sample, TimeSeries, WriteRequest, STALE_NAN_BITS};
use carat_api::{router, AppState, FixedClock, KeySource, KeyStore, Keys, Scope};
use carat_core::record::{self, Record};
use carat_core::series::partition_key;
use carat_core::{Config, SeriesKey, SeriesName, Tenant};
use carat_store::fake::{FakeLog, FaultKind};
use carat_store::ports::{Log, LogBatch, LogRecord, StartAt};
use carat_store::StoreError;
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
        keys: Arc::new(Keys::fixed(Arc::new(keys()))),
        clock: Arc::new(FixedClock(NOW_MS)),
        config: Arc::new(config.clone()),
        labels_sent: Arc::default(),
        name_sets: None,
    });
    Harness { log, app, config }
}

fn harness() -> Harness {
    harness_with(Config::default())
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    request_id: Option<String>,
    dropped: Option<String>,
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
        let get = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii").to_string())
        };
        let retry_after = get(header::RETRY_AFTER.as_str());
        let request_id = get("x-request-id");
        let dropped = get("x-carat-dropped-samples");
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
            request_id,
            dropped,
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
                if entry.data.first() == Some(&record::labels::VERSION) {
                    continue; // labels records: see `labels_records`
                }
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

    /// Every labels record on the log as (partition key, decoded), in log order per shard.
    fn labels_records(&self) -> Vec<(String, record::labels::LabelsRecord)> {
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            for entry in self.log.records(shard) {
                if entry.data.first() == Some(&record::labels::VERSION) {
                    let rec = record::labels::decode(&entry.data).expect("labels records decode");
                    out.push((entry.partition_key, rec));
                }
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

/// A sample carat cannot store is dropped and counted, never a 400 for the batch (which
/// Prometheus would drop for good, good samples included); only a batch with nothing
/// storable is a 400, naming the first time series and field at fault.
#[tokio::test]
async fn unstorable_remote_write_samples_are_dropped_not_the_batch() {
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
                labels: labels(&[("__name__", "y"), ("long", &"v".repeat(300))]),
                ..ok.clone()
            },
            "labels",
        ),
        (
            TimeSeries {
                // After an outage: Prometheus sends what its WAL still holds.
                samples: vec![sample((NOW - 2 * 86_400) * 1000, 2.0)],
                ..ok.clone()
            },
            "samples[0].time",
        ),
        (
            TimeSeries {
                samples: vec![sample((NOW + 3600) * 1000, 2.0)],
                ..ok.clone()
            },
            "samples[0].time",
        ),
        (
            TimeSeries {
                samples: vec![],
                histograms: vec![vec![1, 2, 3]],
                ..ok.clone()
            },
            "histograms",
        ),
    ];
    for (bad, field) in cases {
        // Beside a good series: 204, the good sample stored, the drop counted.
        let h = harness();
        let req = WriteRequest {
            timeseries: vec![ok.clone(), bad.clone()],
        };
        let a = h.remote_write(prometheus_body(&req)).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{field}: {}", a.json);
        assert_eq!(a.dropped.as_deref(), Some("1"), "{field}");
        assert_eq!(h.stored(), expect(&[("x", &[(NOW, 1.0)])]), "{field}");
        // Alone: nothing storable, 400 naming the time series and field.
        let h = harness();
        let req = WriteRequest {
            timeseries: vec![bad],
        };
        let a = h.remote_write(prometheus_body(&req)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{field}: {}", a.json);
        assert_eq!(a.json["error"]["index"], json!(0), "{}", a.json);
        assert_eq!(a.json["error"]["field"], json!(field), "{}", a.json);
        assert!(
            a.json["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no sample of the request is storable"),
            "{}",
            a.json
        );
        h.assert_nothing_written();
    }
}

/// What a real Prometheus 2.42 sends routinely: NaN quantiles of summaries that
/// observed nothing, +Inf bucket bounds' values, staleness markers when a target goes
/// away. All kept, bit-exact, through to the Kinesis record.
#[tokio::test]
async fn remote_write_keeps_nan_inf_and_staleness_markers_bit_exact() {
    let h = harness();
    let stale = f64::from_bits(STALE_NAN_BITS);
    // A NaN with a payload other than Prometheus's: kept as sent too.
    let odd_nan = f64::from_bits(0x7ff8_0000_dead_beef);
    let req = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: labels(&[("__name__", "go_gc_duration_seconds"), ("quantile", "0.5")]),
                samples: vec![
                    sample((NOW - 15) * 1000, f64::NAN),
                    sample(NOW * 1000, 0.25),
                ],
                histograms: vec![],
            },
            TimeSeries {
                labels: labels(&[("__name__", "weird"), ("job", "x")]),
                samples: vec![
                    sample((NOW - 3) * 1000, f64::INFINITY),
                    sample((NOW - 2) * 1000, f64::NEG_INFINITY),
                    sample((NOW - 1) * 1000, odd_nan),
                    // (-0.0 cannot be tested here: proto3 omits a field equal to
                    // 0.0, so prost sends -0.0 as nothing, i.e. +0.0.)
                    sample(NOW * 1000, 12.5),
                ],
                histograms: vec![],
            },
            TimeSeries {
                labels: labels(&[("__name__", "up"), ("job", "gone")]),
                samples: vec![
                    sample((NOW - 15) * 1000, 1.0),
                    sample(NOW * 1000 + 5, stale),
                ],
                histograms: vec![],
            },
        ],
    };
    let a = h.remote_write(prometheus_body(&req)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    assert_eq!(a.dropped, None);
    let bits = |pts: &[(i64, u64)]| pts.to_vec();
    let stored = h.stored();
    assert_eq!(
        stored["go_gc_duration_seconds.quantile.0.5"],
        bits(&[(NOW - 15, f64::NAN.to_bits()), (NOW, 0.25f64.to_bits())])
    );
    assert_eq!(
        stored["weird.job.x"],
        bits(&[
            (NOW - 3, f64::INFINITY.to_bits()),
            (NOW - 2, f64::NEG_INFINITY.to_bits()),
            (NOW - 1, 0x7ff8_0000_dead_beef),
            (NOW, 12.5f64.to_bits()),
        ])
    );
    assert_eq!(
        stored["up.job.gone"],
        bits(&[(NOW - 15, 1.0f64.to_bits()), (NOW, STALE_NAN_BITS)])
    );
    assert_eq!(stored.len(), 3);
}

/// Messages of `prometheus.WriteRequest` with the fields carat does not read
/// (metadata, exemplars), as Prometheus sends them.
mod full {
    #![allow(unreachable_pub)]

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<carat_api::remote_write::Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<carat_api::remote_write::Sample>,
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<carat_api::remote_write::Label>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

#[tokio::test]
async fn metadata_exemplars_and_empty_series_are_not_errors() {
    let h = harness();
    // A metadata-only request (Prometheus sends one every minute by default).
    let meta = full::WriteRequest {
        timeseries: vec![],
        metadata: vec![full::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let a = h.remote_write(snappy(&meta.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    assert_eq!(h.log.faults().calls("put"), 0);
    // An empty request, and series without samples (exemplar-only series carry labels
    // carat would not even accept; they are skipped before the labels are read).
    let a = h
        .remote_write(prometheus_body(&WriteRequest::default()))
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    let exemplar = full::Exemplar {
        labels: labels(&[("trace_id", "abc")]),
        value: 1.0,
        timestamp: NOW * 1000,
    };
    let req = full::WriteRequest {
        timeseries: vec![
            full::TimeSeries {
                labels: labels(&[("no_name", "x")]),
                samples: vec![],
                exemplars: vec![exemplar.clone()],
            },
            full::TimeSeries {
                labels: labels(&[("__name__", "x")]),
                samples: vec![sample(NOW * 1000, 1.0)],
                exemplars: vec![exemplar],
            },
        ],
        metadata: vec![],
    };
    let a = h.remote_write(snappy(&req.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    assert_eq!(a.dropped, None);
    assert_eq!(h.stored(), expect(&[("x", &[(NOW, 1.0)])]));
}

/// Times at the ends of i64 never overflow: remote_write drops and counts them, the
/// JSON routes answer 400 naming the point and `time`.
#[tokio::test]
async fn extreme_times_are_dropped_or_400_never_a_panic() {
    let h = harness();
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: labels(&[("__name__", "x")]),
            samples: vec![
                sample(i64::MIN, 1.0),
                sample(i64::MIN + 1, 2.0),
                sample(NOW * 1000, 3.0),
                sample(i64::MAX - 1, 4.0),
                sample(i64::MAX, 5.0),
            ],
            histograms: vec![],
        }],
    };
    let a = h.remote_write(prometheus_body(&req)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.json);
    assert_eq!(a.dropped.as_deref(), Some("4"));
    assert_eq!(h.stored(), expect(&[("x", &[(NOW, 3.0)])]));
    let h = harness();
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: labels(&[("__name__", "x")]),
            samples: vec![sample(i64::MIN, 1.0), sample(i64::MAX, 2.0)],
            histograms: vec![],
        }],
    };
    let a = h.remote_write(prometheus_body(&req)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    assert_eq!(a.json["error"]["field"], json!("samples[0].time"));
    for t in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
        let body = format!(r#"[{{"series":"a","time":{t},"value":1}}]"#);
        rejected(
            &h,
            "/api/v1/points",
            &body,
            StatusCode::BAD_REQUEST,
            Some(0),
            Some("time"),
        )
        .await;
        let body = format!(r#"[{{"hostId":"h","name":"n","time":{t},"value":1}}]"#);
        rejected(
            &h,
            "/api/v0/tsdb",
            &body,
            StatusCode::BAD_REQUEST,
            Some(0),
            Some("time"),
        )
        .await;
    }
    // A clock at the ends of i64 too (a broken clock must not panic either).
    for now_ms in [i64::MIN, i64::MAX] {
        let log = Arc::new(FakeLog::new(SHARDS));
        let app = router(AppState {
            log: log.clone(),
            keys: Arc::new(Keys::fixed(Arc::new(keys()))),
            clock: Arc::new(FixedClock(now_ms)),
            config: Arc::new(Config::default()),
            labels_sent: Arc::default(),
            name_sets: None,
        });
        let h = Harness {
            log,
            app,
            config: Config::default(),
        };
        let a = h.remote_write(prometheus_body(&req)).await;
        assert!(
            a.status.is_success() || a.status == StatusCode::BAD_REQUEST,
            "{}",
            a.json
        );
        let a = h
            .post_json(
                "/api/v1/points",
                format!(r#"[{{"series":"a","time":{},"value":1}}]"#, i64::MAX),
            )
            .await;
        assert!(
            a.status.is_success() || a.status == StatusCode::BAD_REQUEST,
            "{}",
            a.json
        );
    }
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
    assert!(a.request_id.is_some(), "axum's own 404 carries the id too");
    let a = h
        .send(
            Request::get("/api/v1/points")
                .header("x-api-key", DEV_KEY)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(a.request_id.is_some());
}

// ---------------------------------------------------------------------------------------
// Error bodies: a request id and a plain message, never a dependency's error text

/// What an AWS error says about who failed to do what: account, role, stream.
const AWS_TEXT: &str = "User: arn:aws:sts::123456789012:assumed-role/carat-api/x is not \
    authorized to perform: kinesis:PutRecords on resource: \
    arn:aws:kinesis:us-east-1:123456789012:stream/carat-points-secret";

/// The one place the test builds a `StoreError` by hand (its variants gain fields as
/// the store crate evolves).
fn aws_error(retryable: bool) -> StoreError {
    if retryable {
        StoreError::retryable("kinesis", "PutRecords", AWS_TEXT)
    } else {
        StoreError::fatal("kinesis", "PutRecords", AWS_TEXT)
    }
}

/// A log whose every call fails with [`AWS_TEXT`].
struct FailingLog {
    retryable: bool,
}

#[async_trait::async_trait]
impl Log for FailingLog {
    async fn put(&self, _: &[LogRecord]) -> Result<Vec<String>, StoreError> {
        Err(aws_error(self.retryable))
    }
    async fn shards(&self) -> Result<Vec<String>, StoreError> {
        Err(aws_error(self.retryable))
    }
    async fn iterator(&self, _: &str, _: &StartAt) -> Result<String, StoreError> {
        Err(aws_error(self.retryable))
    }
    async fn read(&self, _: &str, _: usize) -> Result<LogBatch, StoreError> {
        Err(aws_error(self.retryable))
    }
}

fn failing_app(retryable: bool) -> Router {
    router(AppState {
        log: Arc::new(FailingLog { retryable }),
        keys: Arc::new(Keys::fixed(Arc::new(keys()))),
        clock: Arc::new(FixedClock(NOW_MS)),
        config: Arc::new(Config::default()),
        labels_sent: Arc::default(),
        name_sets: None,
    })
}

/// Sends `req` to `app`: status, headers, body text.
async fn raw(app: &Router, req: Request<Body>) -> (StatusCode, header::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}

fn post_host(extra: Option<(&str, &str)>) -> Request<Body> {
    let mut req = Request::post("/api/v0/tsdb")
        .header("x-api-key", DEV_KEY)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    req.body(Body::from(format!("[{OK_HOST}]")))
        .expect("request")
}

#[tokio::test]
async fn store_errors_never_reach_the_body_and_carry_a_request_id() {
    for (retryable, status) in [
        (true, StatusCode::SERVICE_UNAVAILABLE),
        (false, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let app = failing_app(retryable);
        let (got, headers, body) = raw(&app, post_host(None)).await;
        assert_eq!(got, status, "{body}");
        for secret in [
            "arn:",
            "123456789012",
            "carat-points-secret",
            "assumed-role",
            "kinesis:",
        ] {
            assert!(!body.contains(secret), "{secret} leaked: {body}");
        }
        let json: Value = serde_json::from_str(&body).expect("a JSON error");
        let id = json["error"]["request_id"].as_str().expect("a request id");
        assert!(!id.is_empty());
        assert_eq!(
            headers.get("x-request-id").and_then(|v| v.to_str().ok()),
            Some(id),
            "the header and the body name the same request"
        );
        let message = json["error"]["message"].as_str().unwrap_or_default();
        if retryable {
            assert_eq!(
                message,
                "the log is unavailable, nothing was stored; retry after 1 s"
            );
            assert_eq!(
                headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                Some("1")
            );
        } else {
            assert!(message.starts_with("internal error"), "{message}");
            assert!(headers.get(header::RETRY_AFTER).is_none());
        }
        // Also on remote_write.
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: labels(&[("__name__", "x")]),
                samples: vec![sample(NOW * 1000, 1.0)],
                histograms: vec![],
            }],
        };
        let (got, _, body) = raw(
            &app,
            Request::post("/api/v1/write")
                .header(header::AUTHORIZATION, format!("Bearer {DEV_KEY}"))
                .header(header::CONTENT_ENCODING, "snappy")
                .body(Body::from(prometheus_body(&req)))
                .expect("request"),
        )
        .await;
        assert_eq!(got, status, "{body}");
        assert!(
            !body.contains("arn:") && !body.contains("123456789012"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn request_ids_are_reused_from_the_caller_or_made() {
    let app = failing_app(true);
    for header_name in ["x-request-id", "x-amzn-requestid"] {
        let (_, headers, body) = raw(&app, post_host(Some((header_name, "req-42")))).await;
        let json: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            json["error"]["request_id"],
            json!("req-42"),
            "{header_name}"
        );
        assert_eq!(
            headers.get("x-request-id").and_then(|v| v.to_str().ok()),
            Some("req-42")
        );
    }
    // Text that is not a plain id is not echoed: a new id is made.
    let (_, headers, _) = raw(&app, post_host(Some(("x-request-id", "a b <script>")))).await;
    let made = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    assert!(made.is_some_and(|id| id.len() == 32), "{made:?}");
    // Every error and every success carries one; two requests never share one.
    let h = harness();
    let a = h.post_json("/api/v0/tsdb", "not json").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.json["error"]["request_id"].as_str(),
        a.request_id.as_deref()
    );
    let b = h.post_json("/api/v0/tsdb", format!("[{OK_HOST}]")).await;
    assert_eq!(b.status, StatusCode::OK);
    assert!(b.request_id.is_some());
    assert_ne!(a.request_id, b.request_id);
    let c = h
        .send(
            Request::post("/api/v0/tsdb")
                .body(Body::from("[]"))
                .expect("request"),
        )
        .await;
    assert_eq!(c.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.json["error"]["request_id"].as_str(),
        c.request_id.as_deref()
    );
    assert!(c.request_id.is_some());
}

// ---------------------------------------------------------------------------------------
// Key store refresh: a revoked key stops working within refresh_secs

/// A key store source a test edits, counting loads; it can be made to fail.
struct EditableKeys {
    doc: Mutex<KeyStore>,
    fail: AtomicBool,
    loads: AtomicUsize,
}

impl EditableKeys {
    fn new(store: KeyStore) -> Arc<Self> {
        Arc::new(Self {
            doc: Mutex::new(store),
            fail: AtomicBool::new(false),
            loads: AtomicUsize::new(0),
        })
    }

    fn set(&self, store: KeyStore) {
        *self.doc.lock().expect("not poisoned") = store;
    }
}

#[async_trait::async_trait]
impl KeySource for EditableKeys {
    fn describe(&self) -> String {
        "the test's key store".into()
    }
    async fn load(&self) -> Result<KeyStore, LoadError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err("GetSecretValue: throttled (arn:aws:secretsmanager:…)".into());
        }
        Ok(self.doc.lock().expect("not poisoned").clone())
    }
}

fn refreshing_harness(keys: Keys, clock: Arc<ManualClock>) -> Harness {
    let log = Arc::new(FakeLog::new(SHARDS));
    let app = router(AppState {
        log: log.clone(),
        keys: Arc::new(keys),
        clock,
        config: Arc::new(Config::default()),
        labels_sent: Arc::default(),
        name_sets: None,
    });
    Harness {
        log,
        app,
        config: Config::default(),
    }
}

const KEY_A: &str = "key-a";
const KEY_B: &str = "key-b";

fn only(key: &str) -> KeyStore {
    KeyStore::single(key, key, Tenant::default_tenant(), &[Scope::Write])
}

async fn post_with(h: &Harness, key: &str) -> StatusCode {
    h.send(
        Request::post("/api/v1/points")
            .header("x-api-key", key)
            .body(Body::from(
                r#"[{"series":"a","time":1700000000,"value":1}]"#,
            ))
            .expect("request"),
    )
    .await
    .status
}

#[tokio::test]
async fn a_revoked_key_stops_working_within_the_refresh_interval() {
    let clock = Arc::new(ManualClock::at_ms(NOW_MS));
    let source = EditableKeys::new(only(KEY_A));
    let keys = Keys::load(source.clone(), clock.clone(), 60)
        .await
        .expect("first load");
    let h = refreshing_harness(keys, clock.clone());
    assert_eq!(post_with(&h, KEY_A).await, StatusCode::OK);
    // Revoked in the source (key A replaced by key B).
    source.set(only(KEY_B));
    clock.advance_ms(59_000);
    assert_eq!(
        post_with(&h, KEY_A).await,
        StatusCode::OK,
        "within the interval the store is not reloaded"
    );
    assert_eq!(
        source.loads.load(Ordering::SeqCst),
        1,
        "only the first load so far"
    );
    clock.advance_ms(2_000); // 61 s after the load
    assert_eq!(post_with(&h, KEY_A).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post_with(&h, KEY_B).await, StatusCode::OK);
    assert_eq!(
        source.loads.load(Ordering::SeqCst),
        2,
        "one reload for many requests"
    );
}

#[tokio::test]
async fn a_failed_reload_keeps_the_last_good_store() {
    let clock = Arc::new(ManualClock::at_ms(NOW_MS));
    let source = EditableKeys::new(only(KEY_A));
    let keys = Keys::load(source.clone(), clock.clone(), 30)
        .await
        .expect("first load");
    let h = refreshing_harness(keys, clock.clone());
    source.fail.store(true, Ordering::SeqCst);
    clock.advance_ms(31_000);
    assert_eq!(post_with(&h, KEY_A).await, StatusCode::OK, "not locked out");
    assert_eq!(post_with(&h, KEY_A).await, StatusCode::OK);
    assert_eq!(
        source.loads.load(Ordering::SeqCst),
        2,
        "a failed reload waits an interval before the next try"
    );
    // The source recovers, with key A revoked: the next due reload applies it.
    source.fail.store(false, Ordering::SeqCst);
    source.set(only(KEY_B));
    clock.advance_ms(31_000);
    assert_eq!(post_with(&h, KEY_A).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post_with(&h, KEY_B).await, StatusCode::OK);
    // The first load has nothing to fall back on: it fails.
    source.fail.store(true, Ordering::SeqCst);
    assert!(Keys::load(source.clone(), clock.clone(), 60).await.is_err());
}

#[tokio::test]
async fn carat_local_reloads_the_keys_file() {
    let path = std::env::temp_dir().join(format!("carat-api-keys-{}.toml", std::process::id()));
    let entry = |name: &str, key: &str| {
        format!(
            "[[keys]]\nname = \"{name}\"\nsha256 = \"{}\"\ntenant = \"default\"\nscopes = [\"write\"]\n",
            hex::encode(carat_api::auth::hash_key(key))
        )
    };
    std::fs::write(&path, entry("a", KEY_A)).expect("write the keys file");
    let clock = Arc::new(ManualClock::at_ms(NOW_MS));
    let file = path.display().to_string();
    let env = |name: &str| match name {
        "CARAT_API_KEYS_FILE" => Some(file.clone()),
        "CARAT_API_KEYS_REFRESH_SECS" => Some("10".to_string()),
        _ => None,
    };
    let keys = Keys::from_env(env, clock.clone())
        .await
        .expect("the file loads");
    let h = refreshing_harness(keys, clock.clone());
    assert_eq!(post_with(&h, KEY_A).await, StatusCode::OK);
    std::fs::write(&path, entry("b", KEY_B)).expect("rewrite the keys file");
    clock.advance_ms(11_000);
    assert_eq!(post_with(&h, KEY_A).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post_with(&h, KEY_B).await, StatusCode::OK);
    // A file broken mid-edit keeps the last good store.
    std::fs::write(&path, "[[keys]]\nname = ").expect("break the keys file");
    clock.advance_ms(11_000);
    assert_eq!(post_with(&h, KEY_B).await, StatusCode::OK);
    std::fs::remove_file(&path).expect("remove the keys file");
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

/// `http_requests_total{job="api", le="0.5", path="/a/b"}`: a label set the series name
/// mapping cannot give back (`/a/b` becomes `_a_b`).
fn http_requests() -> TimeSeries {
    TimeSeries {
        labels: labels(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("le", "0.5"),
            ("path", "/a/b"),
        ]),
        samples: vec![sample(NOW * 1000, 7.0)],
        histograms: vec![],
    }
}

const HTTP_SERIES: &str = "http_requests_total.job.api.le.0.5.path._a_b";

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect()
}

#[tokio::test]
async fn remote_write_sends_each_label_set_once_with_the_points_partition_key() {
    let h = harness();
    let req = WriteRequest {
        timeseries: vec![http_requests()],
    };
    assert_eq!(
        h.remote_write(prometheus_body(&req)).await.status,
        StatusCode::NO_CONTENT
    );
    let got = h.labels_records();
    assert_eq!(got.len(), 1);
    let (pk, rec) = &got[0];
    let bucket = SeriesKey::new(
        Tenant::default_tenant(),
        SeriesName::parse(HTTP_SERIES, "name").expect("valid"),
    )
    .bucket(h.config.record.buckets);
    assert_eq!(pk, &partition_key(bucket), "the points' partition key");
    assert_eq!(rec.series.len(), 1);
    assert_eq!(rec.series[0].series.as_str(), HTTP_SERIES);
    assert_eq!(
        rec.series[0].labels,
        pairs(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("le", "0.5"),
            ("path", "/a/b"),
        ])
    );
    assert_eq!(h.stored().len(), 1, "the points went too");

    // Within the hour: points only.
    h.remote_write(prometheus_body(&req)).await;
    assert_eq!(h.labels_records().len(), 1);
    // A changed label set under the same name is sent.
    let mut changed = http_requests();
    changed.labels.push(Label {
        name: "path".into(),
        value: "_a_b".into(),
    });
    changed.labels.retain(|l| l.value != "/a/b");
    h.remote_write(prometheus_body(&WriteRequest {
        timeseries: vec![changed],
    }))
    .await;
    assert_eq!(h.labels_records().len(), 2);
    // The Mackerel and native routes send no labels records.
    h.post_json("/api/v0/tsdb", OK_HOST).await;
    h.post_json(
        "/api/v1/points",
        r#"[{"series":"cpu","time":1700000000,"value":1}]"#,
    )
    .await;
    assert_eq!(h.labels_records().len(), 2);
}

#[tokio::test]
async fn labels_not_acknowledged_are_sent_again() {
    let h = harness();
    let body = prometheus_body(&WriteRequest {
        timeseries: vec![http_requests()],
    });
    h.log.faults().inject(None, 1, FaultKind::Fatal);
    assert!(h.remote_write(body.clone()).await.status.is_server_error());
    assert!(h.labels_records().is_empty());
    assert_eq!(h.remote_write(body).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.labels_records().len(), 1);
}

/// remote_write ⇒ log ⇒ writer ⇒ catalog: the catalog keeps the label set exactly.
#[tokio::test]
async fn remote_write_labels_reach_the_catalog_exactly() {
    use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
    use carat_store::ports::Catalog as _;

    let h = harness();
    let mut other = http_requests();
    other.labels = labels(&[
        ("__name__", "http_requests_total"),
        ("job", "api"),
        ("le", "+Inf"),
        ("path", "/a/b"),
        ("ünïcode", "ö \"quoted\" {x}"),
    ]);
    let second = carat_api::remote_write::series_name(&other.labels).expect("valid");
    assert_eq!(
        second.as_str(),
        "http_requests_total.job.api.le._Inf.path._a_b._n_code.___quoted___x_"
    );
    let req = WriteRequest {
        timeseries: vec![http_requests(), other],
    };
    assert_eq!(
        h.remote_write(prometheus_body(&req)).await.status,
        StatusCode::NO_CONTENT
    );
    let entries: Vec<_> = (0..SHARDS).flat_map(|s| h.log.records(s)).collect();
    let catalog = Arc::new(FakeCatalog::new());
    let writer = carat_writer::Writer::new(
        Arc::new(h.config.clone()),
        Arc::new(FakeHead::new()),
        Arc::new(FakeTable::new()),
        catalog.clone(),
        Arc::new(carat_writer::sink::LogSink),
        Arc::new(FixedClock(NOW_MS + 1_000)),
    )
    .with_emf(false);
    let event = carat_writer::event::event("us-east-1", "carat-points", &entries);
    let report = writer.process(&event.records).await.expect("fake answers");
    // One labels record per bucket: these two series hash to different buckets.
    let buckets: std::collections::BTreeSet<u32> = [HTTP_SERIES, second.as_str()]
        .iter()
        .map(|n| {
            SeriesKey::new(
                Tenant::default_tenant(),
                SeriesName::parse(n, "n").expect("valid"),
            )
            .bucket(h.config.record.buckets)
        })
        .collect();
    assert_eq!(
        (report.bad_records, report.labels_records),
        (0, buckets.len() as u64)
    );
    assert_eq!(report.processed_points, 2);
    let t = Tenant::default_tenant();
    let listed = catalog
        .series(&t, "http_requests_total", "", 10)
        .await
        .expect("valid");
    let got: Vec<(&str, &Vec<(String, String)>)> = listed
        .iter()
        .map(|e| (e.series.as_str(), &e.labels))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "http_requests_total.job.api.le.0.5.path._a_b",
                &pairs(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("le", "0.5"),
                    ("path", "/a/b"),
                ])
            ),
            (
                second.as_str(),
                &pairs(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("le", "+Inf"),
                    ("path", "/a/b"),
                    ("ünïcode", "ö \"quoted\" {x}"),
                ])
            ),
        ]
    );
    assert_eq!(
        catalog.groups(&t, "", 10).await.expect("fake answers"),
        ["http_requests_total"]
    );
}
