//! The probe against an in-process stub of the ingest API and the reader (axum on
//! 127.0.0.1:0), speaking the documented shapes: POST /api/v1/points (docs/api.md) and
//! GET /api/v1/points?series&from&to ⇒ {"series":[{"name","points":[[time,value]]}]}.
//! The stub moves the probe's clock by 250 ms at every read, so latencies are exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use carat_core::clock::ManualClock;
use carat_probe::{emf, lambda, HttpClient, Probe, ProbeResult};
use carat_store::secrets::Secret;
use serde::Deserialize;
use serde_json::{json, Value};

const T0_MS: i64 = 1_764_072_000_123;
const READ_STEP_MS: i64 = 250;

#[derive(Default)]
struct Stub {
    /// Key ⇒ (may write, may read).
    keys: HashMap<&'static str, (bool, bool)>,
    /// The point becomes readable at this read (1-based); None: never.
    visible_at_read: Option<u32>,
    points: Mutex<Vec<(String, i64, f64)>>,
    reads: Mutex<u32>,
    clock: Arc<ManualClock>,
}

#[derive(Deserialize)]
struct PostedPoint {
    series: String,
    time: i64,
    value: f64,
}

#[derive(Deserialize)]
struct Range {
    series: String,
    from: i64,
    to: i64,
}

fn scopes(stub: &Stub, headers: &HeaderMap) -> Option<(bool, bool)> {
    let key = headers.get("x-api-key")?.to_str().ok()?;
    stub.keys.get(key).copied()
}

async fn ingest(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Json(points): Json<Vec<PostedPoint>>,
) -> (StatusCode, Json<Value>) {
    match scopes(&stub, &headers) {
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "unknown key"}})),
        ),
        Some((false, _)) => (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"message": "no write scope"}})),
        ),
        Some((true, _)) => {
            let mut stored = stub.points.lock().expect("not poisoned");
            stored.extend(points.into_iter().map(|p| (p.series, p.time, p.value)));
            (StatusCode::OK, Json(json!({"success": true})))
        }
    }
}

async fn read(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Query(range): Query<Range>,
) -> (StatusCode, Json<Value>) {
    match scopes(&stub, &headers) {
        None => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"message": "unknown key"}})),
            )
        }
        Some((_, false)) => {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({"error": {"message": "no read scope"}})),
            )
        }
        Some((_, true)) => {}
    }
    let n = {
        let mut reads = stub.reads.lock().expect("not poisoned");
        *reads += 1;
        *reads
    };
    stub.clock.advance_ms(READ_STEP_MS);
    if stub.visible_at_read.is_none_or(|at| n < at) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "unknown series"}})),
        );
    }
    let points: Vec<Value> = stub
        .points
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|(s, t, _)| *s == range.series && (range.from..=range.to).contains(t))
        .map(|(_, t, v)| json!([t, v]))
        .collect();
    (
        StatusCode::OK,
        Json(json!({"series": [{"name": range.series, "points": points}]})),
    )
}

/// Serves `stub` (with or without the reader's GET) and returns the probe of it.
async fn start(stub: Arc<Stub>, with_reader: bool, key: &str) -> Probe {
    let route = if with_reader {
        post(ingest).get(read)
    } else {
        post(ingest)
    };
    let app = Router::new()
        .route("/api/v1/points", route)
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Probe::new(
        HttpClient::new().expect("client"),
        &format!("http://{addr}/"),
        Secret::new(key.to_string()),
        stub.clock.clone(),
    )
}

fn stub(visible_at_read: Option<u32>) -> Arc<Stub> {
    Arc::new(Stub {
        keys: [("probe-key", (true, true)), ("write-only", (true, false))].into(),
        visible_at_read,
        clock: Arc::new(ManualClock::at_ms(T0_MS)),
        ..Stub::default()
    })
}

fn emitted(result: &ProbeResult) -> String {
    let mut out = Vec::new();
    lambda::report(result, "test", &mut out).expect("write to a Vec");
    String::from_utf8(out).expect("utf-8")
}

#[tokio::test]
async fn a_point_read_back_gives_its_latency_and_the_emf_line() {
    let stub = stub(Some(3));
    let probe = start(Arc::clone(&stub), true, "probe-key").await;
    let result = probe.run(Duration::from_secs(20)).await;
    assert_eq!(result.error, None);
    // Read three times, 250 ms of the clock each.
    assert_eq!(result.latency_ms, Some(750));
    assert_eq!(result.at_ms, T0_MS);
    assert_eq!(
        *stub.points.lock().expect("not poisoned"),
        vec![("carat.probe".to_string(), 1_764_072_000, 1_764_072_000.123)]
    );
    assert_eq!(*stub.reads.lock().expect("not poisoned"), 3);
    assert_eq!(
        emitted(&result),
        format!("{}\n", emf::line("test", T0_MS, 750))
    );
}

#[tokio::test]
async fn a_point_never_visible_ends_at_the_deadline_without_a_metric() {
    let stub = stub(None);
    let probe = start(Arc::clone(&stub), true, "probe-key").await;
    let result = probe.run(Duration::from_millis(700)).await;
    assert_eq!(result.latency_ms, None);
    let error = result.error.clone().expect("an error");
    assert!(error.contains("was not readable after"), "{error}");
    assert!(error.contains("404"), "the last answer is quoted: {error}");
    // 100 + 200 + 400 ms of backoff fit in 700 ms: at least two reads, and not unbounded.
    let reads = *stub.reads.lock().expect("not poisoned");
    assert!((2..=6).contains(&reads), "{reads} reads");
    assert_eq!(emitted(&result), "");
}

#[tokio::test]
async fn an_unknown_key_is_a_clear_error_and_nothing_is_read() {
    let stub = stub(Some(1));
    let probe = start(Arc::clone(&stub), true, "revoked").await;
    let result = probe.run(Duration::from_secs(20)).await;
    let error = result.error.clone().expect("an error");
    assert!(
        error.contains("refused the probe's API key (401"),
        "{error}"
    );
    assert!(error.contains("write scope"), "{error}");
    assert_eq!(*stub.reads.lock().expect("not poisoned"), 0);
    assert!(stub.points.lock().expect("not poisoned").is_empty());
    assert_eq!(emitted(&result), "");
}

#[tokio::test]
async fn a_key_without_read_scope_stops_at_the_first_read() {
    let stub = stub(Some(1));
    let probe = start(Arc::clone(&stub), true, "write-only").await;
    let result = probe.run(Duration::from_secs(20)).await;
    let error = result.error.expect("an error");
    assert!(error.contains("(403"), "{error}");
    assert!(error.contains("read scope"), "{error}");
}

#[tokio::test]
async fn no_reader_behind_the_route_is_named() {
    let stub = stub(Some(1));
    let probe = start(Arc::clone(&stub), false, "probe-key").await;
    let result = probe.run(Duration::from_secs(20)).await;
    let error = result.error.expect("an error");
    assert!(
        error.contains("405") && error.contains("no reader serves the route"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_api_fails_the_post() {
    // Bind and drop: nothing listens on that port any more.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr")
    };
    let probe = Probe::new(
        HttpClient::new().expect("client"),
        &format!("http://{addr}"),
        Secret::new("k".to_string()),
        Arc::new(ManualClock::at_ms(T0_MS)),
    );
    let result = probe.run(Duration::from_secs(5)).await;
    let error = result.error.expect("an error");
    assert!(
        error.starts_with("posting the probe point: POST http://"),
        "{error}"
    );
}
