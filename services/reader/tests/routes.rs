//! The read routes through the real router over in-memory tiers: the JSON shapes
//! (golden), auth and scopes, 404s the way Mackerel gives them, parameter errors naming
//! the parameter, the answer bound, and 503 + Retry-After without the store's text.
#![allow(clippy::unwrap_used)]

mod common;

use std::ops::Deref;

use axum::http::StatusCode;
use carat_core::Config;
use common::{OTHER, READ, WRITE_ONLY};
use serde_json::{json, Value};

const DAY: i64 = 86_400;
/// 2026-11-30 00:00 UTC: windows of the tests are that day's and the day before.
const T0: i64 = 1_764_460_800;

/// Mackerel-named series on two tenants, read at noon of T0's day.
struct Fixture(common::Fixture);

impl Deref for Fixture {
    type Target = common::Fixture;

    fn deref(&self) -> &common::Fixture {
        &self.0
    }
}

impl Fixture {
    async fn new(cfg: Config) -> Self {
        let f = Self(common::Fixture::new(
            cfg,
            common::reader_writer_other(),
            T0 + DAY / 2,
        ));
        f.store(
            "default",
            "host.h1.loadavg5",
            T0,
            &[(T0, 1.5), (T0 + 60, 2.5), (T0 + 120, 0.25)],
        )
        .await;
        f.store(
            "default",
            "host.h1.cpu.user",
            T0,
            &[(T0, 10.0), (T0 + 3_600, 30.0)],
        )
        .await;
        f.store(
            "default",
            "service.web.latency",
            T0,
            &[(T0 - DAY + 30, 7.0)],
        )
        .await;
        f.store("other", "host.h1.loadavg5", T0, &[(T0, 99.0)])
            .await;
        f
    }

    async fn get(&self, uri: &str, key: Option<&str>) -> (StatusCode, Value, Option<String>) {
        let answer = self.send(common::get(uri, key)).await;
        (answer.status, answer.json(), answer.retry_after())
    }
}

fn without_request_id(mut v: Value) -> Value {
    if let Some(e) = v.get_mut("error").and_then(Value::as_object_mut) {
        assert!(
            e.remove("request_id").is_some(),
            "errors carry a request id: {v}"
        );
    }
    v
}

#[tokio::test]
async fn mackerel_host_metrics_in_time_order() {
    let f = Fixture::new(Config::default()).await;
    let uri = format!(
        "/api/v0/hosts/h1/metrics?name=loadavg5&from={T0}&to={}",
        T0 + 3_600
    );
    let (status, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"metrics": [
            {"time": T0, "value": 1.5},
            {"time": T0 + 60, "value": 2.5},
            {"time": T0 + 120, "value": 0.25},
        ]})
    );
    // A range of 2 days: Mackerel's 5-minute rung, averages per bucket.
    let uri = format!(
        "/api/v0/hosts/h1/metrics?name=loadavg5&from={}&to={}",
        T0 - DAY,
        T0 + DAY
    );
    let (_, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!(
        body,
        json!({"metrics": [{"time": T0, "value": (1.5 + 2.5 + 0.25) / 3.0}]})
    );
    // Another tenant's key sees its own series only.
    let uri = format!(
        "/api/v0/hosts/h1/metrics?name=loadavg5&from={T0}&to={}",
        T0 + 60
    );
    let (_, body, _) = f.get(&uri, Some(OTHER)).await;
    assert_eq!(body, json!({"metrics": [{"time": T0, "value": 99.0}]}));
}

#[tokio::test]
async fn service_metrics_and_metric_names() {
    let f = Fixture::new(Config::default()).await;
    let uri = format!(
        "/api/v0/services/web/metrics?name=latency&from={}&to={}",
        T0 - DAY,
        T0 - DAY + 3_600
    );
    let (status, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"metrics": [{"time": T0 - DAY + 30, "value": 7.0}]})
    );
    let (_, body, _) = f.get("/api/v0/hosts/h1/metric-names", Some(READ)).await;
    assert_eq!(body, json!({"names": ["cpu.user", "loadavg5"]}));
    let (_, body, _) = f.get("/api/v0/services/web/metric-names", Some(READ)).await;
    assert_eq!(body, json!({"names": ["latency"]}));
}

#[tokio::test]
async fn unknown_host_service_and_metric_are_404() {
    let f = Fixture::new(Config::default()).await;
    let q = format!("from={T0}&to={}", T0 + 60);
    for (uri, message) in [
        (
            format!("/api/v0/hosts/nope/metrics?name=loadavg5&{q}"),
            "host `nope` not found",
        ),
        (
            format!("/api/v0/hosts/h1/metrics?name=nope&{q}"),
            "metric `nope` not found",
        ),
        (
            format!("/api/v0/services/nope/metrics?name=latency&{q}"),
            "service `nope` not found",
        ),
        (
            "/api/v0/hosts/nope/metric-names".to_string(),
            "host `nope` not found",
        ),
        (
            format!("/api/v1/points?series=host.h1.nope&{q}"),
            "series `host.h1.nope` not found",
        ),
    ] {
        let (status, body, _) = f.get(&uri, Some(READ)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            without_request_id(body),
            json!({"error": {"message": message}}),
            "{uri}"
        );
    }
    // A known metric with no point in the range is an empty answer, not a 404.
    let uri = format!(
        "/api/v0/hosts/h1/metrics?name=loadavg5&from={}&to={}",
        T0 - 600,
        T0 - 1
    );
    let (status, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"metrics": []})));
}

#[tokio::test]
async fn latest_per_host_and_name() {
    let f = Fixture::new(Config::default()).await;
    let uri = "/api/v0/tsdb/latest?hostId=h1&hostId=h2&name=loadavg5&name=cpu.user&name=nope";
    let (status, body, _) = f.get(uri, Some(READ)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"tsdbLatest": {
            "h1": {
                "loadavg5": {"name": "loadavg5", "time": T0 + 120, "value": 0.25},
                "cpu.user": {"name": "cpu.user", "time": T0 + 3_600, "value": 30.0},
            },
            "h2": {},
        }})
    );
}

#[tokio::test]
async fn native_points_with_patterns_resolutions_and_aggregates() {
    let f = Fixture::new(Config::default()).await;
    let uri = format!(
        "/api/v1/points?series=host.h1.*&from={T0}&to={}&resolution=1h&aggregate=max",
        T0 + 7_199
    );
    let (status, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"aggregate": "max", "series": [
            {"name": "host.h1.loadavg5", "resolution": 3600, "points": [[T0, 2.5]]},
        ]})
    );
    let uri = format!(
        "/api/v1/points?series=host.h1.{{cpu.user,loadavg5}}&from={T0}&to={}&resolution=raw",
        T0 + 3_600
    );
    let (_, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!(
        body,
        json!({"aggregate": null, "series": [
            {"name": "host.h1.cpu.user", "resolution": 0, "points": [[T0, 10.0], [T0 + 3_600, 30.0]]},
            {"name": "host.h1.loadavg5", "resolution": 0, "points": [[T0, 1.5], [T0 + 60, 2.5], [T0 + 120, 0.25]]},
        ]})
    );
    // Many series over one live window: one BatchGetItem, no Query.
    let (queries, batches) = (
        f.table.faults().calls("query"),
        f.table.faults().calls("batch_get"),
    );
    let uri = format!(
        "/api/v1/points?series=host.h1.{{cpu.user,loadavg5}}&from={T0}&to={}&resolution=raw",
        T0 + 600
    );
    let (_, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!(body["series"][0]["points"], json!([[T0, 10.0]]));
    assert_eq!(
        body["series"][1]["points"],
        json!([[T0, 1.5], [T0 + 60, 2.5], [T0 + 120, 0.25]])
    );
    assert_eq!(f.table.faults().calls("batch_get"), batches + 1);
    assert_eq!(f.table.faults().calls("query"), queries);
    let (_, body, _) = f.get("/api/v1/names?match=host.*.cpu.*", Some(READ)).await;
    assert_eq!(body, json!({"names": [{"name": "host.h1.cpu.user"}]}));
    let (_, body, _) = f.get("/api/v1/names?match=*", Some(READ)).await;
    assert_eq!(
        body,
        json!({"names": []}),
        "`*` is one segment; every name here has dots"
    );
    let (_, body, _) = f.get("/api/v1/names?match=service.*.*", Some(READ)).await;
    assert_eq!(body, json!({"names": [{"name": "service.web.latency"}]}));
}

#[tokio::test]
async fn bad_parameters_name_the_parameter() {
    let f = Fixture::new(Config::default()).await;
    for (uri, field) in [
        (
            format!(
                "/api/v0/hosts/h1/metrics?name=loadavg5&from={}&to={T0}",
                T0 + 1
            ),
            "to",
        ),
        (
            "/api/v0/hosts/h1/metrics?name=loadavg5&to=5".to_string(),
            "from",
        ),
        ("/api/v0/hosts/h1/metrics?from=1&to=5".to_string(), "name"),
        (
            "/api/v0/hosts/h1/metrics?name=a%20b&from=1&to=5".to_string(),
            "name",
        ),
        (
            "/api/v0/hosts/h%2A/metrics?name=a&from=1&to=5".to_string(),
            "hostId",
        ),
        (
            "/api/v1/points?series=a.%7Bb&from=1&to=5".to_string(),
            "series",
        ),
        (
            "/api/v1/points?series=a&from=1&to=5&resolution=5x".to_string(),
            "resolution",
        ),
        (
            "/api/v1/points?series=a&from=1&to=5&aggregate=p99".to_string(),
            "aggregate",
        ),
        (
            "/api/v1/points?series=a&from=1&to=5&max_points=0".to_string(),
            "max_points",
        ),
        ("/api/v0/tsdb/latest?name=x".to_string(), "hostId"),
    ] {
        let (status, body, _) = f.get(&uri, Some(READ)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["field"], json!(field), "{uri}: {body}");
    }
}

#[tokio::test]
async fn keys_need_the_read_scope() {
    let f = Fixture::new(Config::default()).await;
    let uri = format!(
        "/api/v0/hosts/h1/metrics?name=loadavg5&from={T0}&to={}",
        T0 + 60
    );
    assert_eq!(f.get(&uri, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(f.get(&uri, Some("nope")).await.0, StatusCode::UNAUTHORIZED);
    let (status, body, _) = f.get(&uri, Some(WRITE_ONLY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"]["message"],
        json!("API key `writer` lacks the `read` scope")
    );
}

#[tokio::test]
async fn answers_are_bounded() {
    let mut cfg = Config::default();
    cfg.reader.max_points_per_answer = 2;
    let f = Fixture::new(cfg).await;
    let uri = format!(
        "/api/v0/hosts/h1/metrics?name=loadavg5&from={T0}&to={}",
        T0 + 3_600
    );
    let (status, body, _) = f.get(&uri, Some(READ)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let uri = format!(
        "/api/v1/points?series=host.h1.loadavg5&from={T0}&to={}&resolution=1h",
        T0 + 3_600
    );
    assert_eq!(
        f.get(&uri, Some(READ)).await.0,
        StatusCode::OK,
        "a coarser resolution fits"
    );
}

#[tokio::test]
async fn an_unavailable_tier_is_503_with_retry_after_and_no_store_text() {
    let f = Fixture::new(Config::default()).await;
    f.table.faults().fail_next(1);
    let uri = format!(
        "/api/v0/hosts/h1/metrics?name=loadavg5&from={T0}&to={}",
        T0 + 60
    );
    let (status, body, retry) = f.get(&uri, Some(READ)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(
        without_request_id(body),
        json!({"error": {"message": "storage is unavailable; retry after 1 s"}})
    );
}
