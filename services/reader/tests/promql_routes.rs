//! The Prometheus HTTP API routes through the real router over in-memory tiers: the
//! envelope and result shapes Grafana parses, parameter errors (400 bad_data), the
//! 11,000-points rule, unsupported functions (422 naming them), bounds, store failures
//! (503 + Retry-After, no store text), form POST, and Grafana's health check `1+1`.
#![allow(clippy::unwrap_used)]

mod common;
mod promql_fixture;

use axum::http::StatusCode;
use carat_core::Config;
use promql_fixture::{enc, Fixture};
use serde_json::{json, Value};

/// 2026-11-30 00:00 UTC.
const T0: i64 = 1_764_460_800;

async fn fixture(cfg: Config) -> Fixture {
    let f = Fixture::new(cfg, T0 + 3_600);
    let every_minute =
        |f: fn(i64) -> f64| -> Vec<(i64, f64)> { (0..30).map(|i| (T0 + i * 60, f(i))).collect() };
    f.store(
        &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
        &every_minute(|_| 1.0),
    )
    .await;
    f.store(
        &[("__name__", "up"), ("job", "node"), ("instance", "b:9100")],
        &every_minute(|i| if i < 20 { 1.0 } else { 0.0 }),
    )
    .await;
    f.store(
        &[("__name__", "reqs_total"), ("job", "api")],
        &every_minute(|i| (i * 60) as f64),
    )
    .await;
    f.store(
        &[("__name__", "odd"), ("job", "x")],
        &[(T0, f64::NAN), (T0 + 60, f64::INFINITY), (T0 + 120, -0.5)],
    )
    .await;
    f
}

fn query(q: &str, t: i64) -> String {
    format!("/api/v1/query?query={}&time={t}", enc(q))
}

#[tokio::test]
async fn grafanas_health_check_is_a_scalar_at_time_4() {
    let f = fixture(Config::default()).await;
    let (status, body, _) = f.get("/api/v1/query?query=1%2B1&time=4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}})
    );
    // As Grafana's POST method sends it: the form body, no query string.
    let (status, body, _) = f.post_form("/api/v1/query", "query=1%2B1&time=4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["result"], json!([4, "2"]));
}

#[tokio::test]
async fn vectors_matrices_and_special_values_have_prometheus_shapes() {
    let f = fixture(Config::default()).await;
    let (status, body, _) = f.get(&query(r#"up{instance="a:9100"}"#, T0 + 600)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "instance": "a:9100", "job": "node"}, "value": [T0 + 600, "1"]}
        ]}})
    );
    // Fractional times stay fractional; values are strings, NaN and ±Inf included.
    let (_, body, _) = f.get(&query("odd[3m]", T0 + 120)).await;
    assert_eq!(
        body["data"],
        json!({"resultType": "matrix", "result": [{"metric": {"__name__": "odd", "job": "x"},
            "values": [[T0, "NaN"], [T0 + 60, "+Inf"], [T0 + 120, "-0.5"]]}]})
    );
    let (_, body, _) = f
        .get(&format!("/api/v1/query?query=time()&time={T0}.5"))
        .await;
    assert_eq!(
        body["data"]["result"],
        json!([T0 as f64 + 0.5, format!("{T0}.5")])
    );
    let (_, body, _) = f.get(&query(r#""hello""#, 10)).await;
    assert_eq!(
        body["data"],
        json!({"resultType": "string", "result": [10, "hello"]})
    );
}

#[tokio::test]
async fn query_range_steps_and_the_11000_points_rule() {
    let f = fixture(Config::default()).await;
    let uri = |q: &str, start: &str, end: &str, step: &str| {
        format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            enc(q)
        )
    };
    let (status, body, _) = f
        .get(&uri(
            "rate(reqs_total[5m])",
            &(T0 + 600).to_string(),
            &(T0 + 720).to_string(),
            "1m",
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"resultType": "matrix", "result": [{"metric": {"job": "api"},
            "values": [[T0 + 600, "1"], [T0 + 660, "1"], [T0 + 720, "1"]]}]})
    );
    // A scalar over a range is a matrix of one series without labels.
    let (_, body, _) = f.get(&uri("1+1", "0", "30", "15s")).await;
    assert_eq!(
        body["data"]["result"],
        json!([{"metric": {}, "values": [[0, "2"], [15, "2"], [30, "2"]]}])
    );
    // 11,000 steps pass, 11,001 do not.
    let (status, _, _) = f.get(&uri("1", "0", "11000", "1")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = f.get(&uri("1", "0", "11001", "1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"status": "error", "errorType": "bad_data",
            "error": "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"})
    );
    for (start, end, step, field) in [
        ("10", "0", "1", "end"),
        ("0", "10", "0", "step"),
        ("0", "10", "-1", "step"),
        ("0", "10", "1x", "step"),
        ("soon", "10", "1", "start"),
        ("0", "", "1", "end"),
    ] {
        let (status, body, _) = f.get(&uri("1", start, end, step)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{start} {end} {step}");
        assert_eq!(body["errorType"], "bad_data");
        let msg = body["error"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("invalid parameter \"{field}\"")),
            "{msg}"
        );
    }
    let (status, body, _) = f.get(&uri("up[5m]", "0", "10", "1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("range vector"),
        "{body}"
    );
    // Form POST, with the step as float seconds.
    let form = format!(
        "query={}&start={}&end={}&step=60.0",
        enc("sum(up)"),
        T0 + 1_140,
        T0 + 1_260
    );
    let (status, body, _) = f.post_form("/api/v1/query_range", &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["result"],
        json!([{"metric": {}, "values": [[T0 + 1_140, "2"], [T0 + 1_200, "1"], [T0 + 1_260, "1"]]}])
    );
}

#[tokio::test]
async fn bad_expressions_are_400_and_unsupported_ones_422_naming_them() {
    let f = fixture(Config::default()).await;
    let (status, body, _) = f.get(&query("sum(", 10)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid parameter \"query\""));
    let (status, _, _) = f.get("/api/v1/query?time=10").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a missing query");
    for (q, named) in [
        ("predict_linear(up[5m], 60)", "\"predict_linear\""),
        ("count_values(\"v\", up)", "\"count_values\""),
        ("absent(up)", "\"absent\""),
        ("max_over_time(up[5m:1m] @ 100)", "@ modifier"),
    ] {
        let (status, body, _) = f.get(&query(q, T0 + 600)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {body}");
        assert_eq!(body["errorType"], "execution");
        assert!(
            body["error"].as_str().unwrap().contains(named),
            "{q}: {body}"
        );
    }
    // Prometheus' own execution errors are 422 too.
    let (status, body, _) = f.get(&query("up + on() up", T0 + 600)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn series_and_points_are_bounded_naming_the_setting() {
    let mut cfg = Config::default();
    cfg.reader.max_series_per_query = 1;
    let f = fixture(cfg).await;
    let (status, body, _) = f.get(&query("up", T0 + 600)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("reader.max_series_per_query"),
        "{body}"
    );
    // A selector without a name lists the groups, also bounded.
    let (status, body, _) = f.get(&query(r#"{job="api"}"#, T0 + 600)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("reader.max_series_per_query"),
        "{body}"
    );

    let mut cfg = Config::default();
    cfg.reader.max_points_per_query = 10;
    let f = fixture(cfg).await;
    let (status, body, _) = f.get(&query("rate(reqs_total[1h])", T0 + 1_800)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("reader.max_points_per_query"),
        "{body}"
    );
    let (status, _, _) = f.get(&query("rate(reqs_total[5m])", T0 + 1_800)).await;
    assert_eq!(status, StatusCode::OK, "a shorter range fits");
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after_and_no_store_text() {
    let f = fixture(Config::default()).await;
    f.table.faults().fail_next(1);
    let (status, body, retry) = f.get(&query("up", T0 + 600)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(
        body,
        json!({"status": "error", "errorType": "unavailable", "error": "storage is unavailable; retry after 1 s"})
    );
    f.catalog.faults().fail_next(1);
    let (status, _, retry) = f.get("/api/v1/labels").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("1"));
}

#[tokio::test]
async fn series_labels_and_values_list_the_catalog() {
    let f = fixture(Config::default()).await;
    let (status, body, _) = f
        .get(&format!("/api/v1/series?match[]={}", enc("up")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!([
            {"__name__": "up", "instance": "a:9100", "job": "node"},
            {"__name__": "up", "instance": "b:9100", "job": "node"},
        ])
    );
    let form = format!(
        "match[]={}&match[]={}&start={T0}&end={}",
        enc("reqs_total"),
        enc(r#"up{instance="b:9100"}"#),
        T0 + 60
    );
    let (_, body, _) = f.post_form("/api/v1/series", &form).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
    // A start after the series' last day leaves nothing.
    let (_, body, _) = f
        .get(&format!(
            "/api/v1/series?match[]=up&start={}",
            T0 + 2 * 86_400
        ))
        .await;
    assert_eq!(body["data"], json!([]));
    let (status, body, _) = f.get("/api/v1/series").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "no match[] parameter provided");

    let (_, body, _) = f.get("/api/v1/labels").await;
    assert_eq!(body["data"], json!(["__name__", "instance", "job"]));
    let (_, body, _) = f
        .get(&format!("/api/v1/labels?match[]={}", enc("reqs_total")))
        .await;
    assert_eq!(body["data"], json!(["__name__", "job"]));
    let (_, body, _) = f.get("/api/v1/label/__name__/values").await;
    assert_eq!(body["data"], json!(["odd", "reqs_total", "up"]));
    let (_, body, _) = f.get("/api/v1/label/job/values?limit=2").await;
    assert_eq!(body["data"], json!(["api", "node"]));
    let (_, body, _) = f
        .get(&format!(
            "/api/v1/label/instance/values?match[]={}",
            enc(r#"{job="node"}"#)
        ))
        .await;
    assert_eq!(body["data"], json!(["a:9100", "b:9100"]));
    let (status, _, _) = f.get("/api/v1/label/9x/values").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metadata_buildinfo_and_exemplars() {
    let f = fixture(Config::default()).await;
    let (_, body, _) = f.get("/api/v1/metadata").await;
    assert_eq!(body, json!({"status": "success", "data": {}}));
    let (_, body, _) = f
        .get("/api/v1/query_exemplars?query=up&start=0&end=1")
        .await;
    assert_eq!(body, json!({"status": "success", "data": []}));
    let (status, body, _) = f.get("/api/v1/status/buildinfo").await;
    assert_eq!(status, StatusCode::OK);
    let data = body["data"].as_object().unwrap();
    assert_eq!(data["version"], "2.42.0");
    for k in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(data[k].is_string(), "{k} in {body}");
    }
    // Grafana takes `features` to mean Mimir.
    assert!(!data.contains_key("features"));
    let _: Value = body;
}

#[tokio::test]
async fn a_stale_marker_ends_a_series_at_its_time() {
    let f = fixture(Config::default()).await;
    let stale = f64::from_bits(carat_api::remote_write::STALE_NAN_BITS);
    f.store(
        &[("__name__", "batch_up")],
        &[
            (T0, 1.0),
            (T0 + 60, 1.0),
            (T0 + 120, stale),
            (T0 + 600, 2.0),
        ],
    )
    .await;
    let at = |t: i64| query("batch_up", t);
    assert_eq!(
        f.get(&at(T0 + 119)).await.1["data"]["result"][0]["value"][1],
        "1"
    );
    assert_eq!(
        f.get(&at(T0 + 120)).await.1["data"]["result"],
        json!([]),
        "stale at its time"
    );
    assert_eq!(f.get(&at(T0 + 300)).await.1["data"]["result"], json!([]));
    assert_eq!(
        f.get(&at(T0 + 600)).await.1["data"]["result"][0]["value"][1],
        "2"
    );
    // Range selectors leave the marker out.
    let (_, body, _) = f
        .get(&query("count_over_time(batch_up[10m])", T0 + 600))
        .await;
    assert_eq!(body["data"]["result"][0]["value"][1], "3");
}
