//! The Prometheus HTTP API routes (docs/prometheus.md), their parameters and
//! Prometheus' envelope: `{"status":"success","data":…}` or
//! `{"status":"error","errorType":…,"error":…}` with 400 (bad parameters), 422 (an
//! expression carat cannot execute) and 503 (the store is unavailable).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use carat_api::AppError;
use carat_core::Tenant;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, VectorSelector};
use serde_json::{json, Map, Value as Json_};

use super::eval::{Evaluator, Labels, Steps, Value};
use super::select::{self, LISTING_LIMIT};
use crate::routes::{all, first, form_pairs, tier_error, ReadState};
use crate::tiers::TierError;

/// Prometheus' bound on the steps of a range query (web/api/v1/api.go).
const MAX_STEPS: i64 = 11_000;

/// Query times beyond ±10^12 s (year ~33,000) are refused rather than overflowing.
const MAX_ABS_SECS: f64 = 1e12;

/// An error in Prometheus' shape.
#[derive(Debug)]
pub(crate) struct PromError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl PromError {
    pub(crate) fn bad_data(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
            retry_after: None,
        }
    }

    /// 422: the expression is valid but carat cannot (or will not) execute it.
    pub(crate) fn execution(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "execution",
            message: message.into(),
            retry_after: None,
        }
    }

    fn param(name: &str, message: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter \"{name}\": {message}"))
    }

    /// A tier failure: 503 + Retry-After when retrying may help, else 500; the cause
    /// goes to the log, never to the body.
    pub(crate) fn tier(e: TierError) -> Self {
        Self::app(tier_error(e))
    }

    pub(crate) fn store(e: carat_store::StoreError) -> Self {
        Self::app(crate::routes::store_error(e))
    }

    fn app(e: AppError) -> Self {
        tracing::warn!(error = %e, "prometheus api: store failure");
        match e {
            AppError::ReadUnavailable {
                retry_after_secs, ..
            } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "unavailable",
                message: format!("storage is unavailable; retry after {retry_after_secs} s"),
                retry_after: Some(retry_after_secs),
            },
            _ => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "internal",
                message: "reading the storage failed".to_string(),
                retry_after: None,
            },
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = Json(json!({
            "status": "error",
            "errorType": self.kind,
            "error": self.message,
        }));
        let mut res = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}

fn success(data: Json_) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// The Prometheus API's routes (merged into [`crate::routes::router`], behind the
/// `read` scope).
pub(crate) fn routes() -> Router<ReadState> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
}

type Params = Vec<(String, String)>;

fn params(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<Params, PromError> {
    form_pairs(query, headers, body).map_err(|_| PromError::bad_data("the form body is not UTF-8"))
}

/// Prometheus' `parseTime`: float seconds (rounded to the millisecond) or RFC 3339.
pub(crate) fn parse_time(s: &str, name: &str) -> Result<i64, PromError> {
    let bad = || PromError::param(name, format!("cannot parse {s:?} to a valid timestamp"));
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f.abs() > MAX_ABS_SECS {
            return Err(bad());
        }
        let secs = f.trunc();
        let ms = ((f - secs) * 1000.0).round();
        return Ok(secs as i64 * 1000 + ms as i64);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| bad())?;
    let ms = t.timestamp_millis();
    if ms.unsigned_abs() > 1_000_000_000_000_000 {
        return Err(bad());
    }
    Ok(ms)
}

/// Prometheus' `parseDuration`: float seconds or a duration like `1m30s` (ms).
pub(crate) fn parse_duration(s: &str, name: &str) -> Result<i64, PromError> {
    let bad = || PromError::param(name, format!("cannot parse {s:?} to a valid duration"));
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f.abs() > MAX_ABS_SECS {
            return Err(bad());
        }
        return Ok((f * 1000.0).round() as i64);
    }
    // model.ParseDuration: units in this order, each at most once.
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    if rest.is_empty() || rest == "0" {
        return if rest == "0" { Ok(0) } else { Err(bad()) };
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let after = &rest[digits..];
        let (i, unit) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            // `ms` before `m`: the longer unit wins where both fit.
            .filter(|(_, (u, _))| after.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())
            .ok_or_else(bad)?;
        total = n
            .checked_mul(unit.1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        next_unit = i + 1;
        rest = &after[unit.0.len()..];
    }
    Ok(total)
}

/// A JSON timestamp in seconds as Prometheus writes it: an integer when whole.
fn json_time(ms: i64) -> Json_ {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// A sample value as Prometheus writes it: a string, `NaN`, `+Inf`, `-Inf`, and no
/// exponent (Go's `FormatFloat(v, 'f', -1, 64)`, which Rust's Display matches).
pub(crate) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

fn metric_json(labels: &Labels) -> Json_ {
    Json_::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

fn parse_expr(q: Option<&str>) -> Result<Expr, PromError> {
    let q = q.unwrap_or("");
    super::depth::parse(q).map_err(|e| PromError::param("query", e))
}

async fn evaluate(
    state: &ReadState,
    tenant: &Tenant,
    expr: &Expr,
    steps: Steps,
) -> Result<Value, PromError> {
    let now = state.clock.now_secs();
    let fetched = select::fetch(state, tenant, expr, steps, now).await?;
    let ev = Evaluator {
        steps,
        query: steps,
        fetched: &fetched,
    };
    ev.eval(expr)
}

fn check_points(state: &ReadState, points: usize) -> Result<(), PromError> {
    let limit = state.tiers.config.reader.max_points_per_answer;
    if points > limit {
        return Err(PromError::execution(format!(
            "the answer holds more than {limit} points (reader.max_points_per_answer); shorten the range or raise the step"
        )));
    }
    Ok(())
}

async fn query(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = params(raw.as_deref(), &headers, &body)?;
    let t = match first(&p, "time") {
        Some(s) if !s.is_empty() => parse_time(s, "time")?,
        _ => state.clock.now_ms(),
    };
    let expr = parse_expr(first(&p, "query"))?;
    let steps = Steps {
        start: t,
        end: t,
        step: 1,
    };
    let value = evaluate(&state, &tenant, &expr, steps).await?;
    let ts = json_time(t);
    let data = match value {
        Value::Scalar(v) => json!({
            "resultType": "scalar",
            "result": [ts, format_value(v.first().copied().unwrap_or(f64::NAN))],
        }),
        Value::String(s) => json!({"resultType": "string", "result": [ts, s]}),
        Value::Vector(mut v) => {
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            check_points(&state, v.len())?;
            let result: Vec<Json_> = v
                .iter()
                .filter_map(|s| {
                    s.values.first().copied().flatten().map(|x| {
                        json!({"metric": metric_json(&s.labels), "value": [ts, format_value(x)]})
                    })
                })
                .collect();
            json!({"resultType": "vector", "result": result})
        }
        Value::Matrix(mut m) => {
            m.sort_by(|a, b| a.labels.cmp(&b.labels));
            check_points(&state, m.iter().map(|s| s.points.len()).sum())?;
            let result: Vec<Json_> = m
                .iter()
                .map(|s| {
                    let values: Vec<Json_> = s
                        .points
                        .iter()
                        .map(|&(t, v)| json!([json_time(t), format_value(v)]))
                        .collect();
                    json!({"metric": metric_json(&s.labels), "values": values})
                })
                .collect();
            json!({"resultType": "matrix", "result": result})
        }
    };
    Ok(success(data))
}

async fn query_range(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = params(raw.as_deref(), &headers, &body)?;
    let start = parse_time(first(&p, "start").unwrap_or(""), "start")?;
    let end = parse_time(first(&p, "end").unwrap_or(""), "end")?;
    if end < start {
        return Err(PromError::param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration(first(&p, "step").unwrap_or(""), "step")?;
    if step <= 0 {
        return Err(PromError::param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_STEPS {
        return Err(PromError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let expr = parse_expr(first(&p, "query"))?;
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        other => {
            let what = match other {
                ValueType::Matrix => "range vector",
                _ => "string",
            };
            return Err(PromError::bad_data(format!(
                "invalid expression type \"{what}\" for range query, must be Scalar or instant Vector"
            )));
        }
    }
    let steps = Steps { start, end, step };
    let value = evaluate(&state, &tenant, &expr, steps).await?;
    let times: Vec<Json_> = steps.times().map(json_time).collect();
    let series = match value {
        Value::Scalar(v) => vec![(Vec::new(), v.into_iter().map(Some).collect::<Vec<_>>())],
        Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.values)).collect(),
        _ => {
            return Err(PromError::execution(
                "the expression did not evaluate to a scalar or an instant vector",
            ))
        }
    };
    let mut series: Vec<(Labels, Vec<Option<f64>>)> = series
        .into_iter()
        .filter(|s| s.1.iter().any(Option::is_some))
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    check_points(
        &state,
        series.iter().map(|s| s.1.iter().flatten().count()).sum(),
    )?;
    // Written straight to text: a Value tree of every point costs more than the query
    // (allocation per point; the PromQL benchmark in docs/BENCHMARKS.md).
    let times: Vec<String> = times.iter().map(Json_::to_string).collect();
    let mut out = String::with_capacity(64 + series.len() * 64);
    out.push_str(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for (i, (labels, values)) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        out.push_str(&metric_json(labels).to_string());
        out.push_str(r#","values":["#);
        let mut first = true;
        for (v, t) in values.iter().zip(&times) {
            if let Some(v) = v {
                if !first {
                    out.push(',');
                }
                first = false;
                // Values are digits, `.`, `-`, `NaN`, `+Inf`: nothing to escape.
                let _ = write!(out, "[{t},\"{}\"]", format_value(*v));
            }
        }
        out.push_str("]}");
    }
    out.push_str("]}}");
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

/// The selectors of the `match[]` parameters (none given: `None`).
fn match_selectors(p: &Params) -> Result<Option<Vec<VectorSelector>>, PromError> {
    let raw = all(p, "match[]");
    if raw.is_empty() {
        return Ok(None);
    }
    raw.into_iter()
        .map(|m| match super::depth::parse(m) {
            Ok(Expr::VectorSelector(vs)) => Ok(vs),
            Ok(_) => Err(PromError::param(
                "match[]",
                format!("{m:?} is not a series selector"),
            )),
            Err(e) => Err(PromError::param("match[]", e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Series matched by any of `sels` (or all), written on or after `start`'s day.
async fn listed(
    state: &ReadState,
    tenant: &Tenant,
    sels: Option<&[VectorSelector]>,
    p: &Params,
) -> Result<Vec<Labels>, PromError> {
    // The catalog knows the last day a series was written: one last written before
    // `start` has no points in the range.
    let start_day = match first(p, "start") {
        Some(s) if !s.is_empty() => Some(carat_core::catalog::day_of(
            parse_time(s, "start")?.div_euclid(1000),
        )),
        _ => None,
    };
    if let Some(s) = first(p, "end").filter(|s| !s.is_empty()) {
        parse_time(s, "end")?;
    }
    let mut found = Vec::new();
    match sels {
        None => found
            .extend(select::find(state, tenant, None, LISTING_LIMIT, "the listing bound").await?),
        Some(sels) => {
            for vs in sels {
                found.extend(
                    select::find(state, tenant, Some(vs), LISTING_LIMIT, "the listing bound")
                        .await?,
                );
            }
        }
    }
    let mut out: Vec<Labels> = found
        .into_iter()
        .filter(|f| start_day.is_none_or(|d| f.day >= d))
        .map(|f| f.labels)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn limit_param(p: &Params) -> Result<Option<usize>, PromError> {
    match first(p, "limit") {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(|n| (n > 0).then_some(n))
            .map_err(|_| PromError::param("limit", format!("cannot parse {v:?} to a valid limit"))),
    }
}

async fn series(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = params(raw.as_deref(), &headers, &body)?;
    let Some(sels) = match_selectors(&p)? else {
        return Err(PromError::bad_data("no match[] parameter provided"));
    };
    let limit = limit_param(&p)?;
    let mut sets = listed(&state, &tenant, Some(&sels), &p).await?;
    if let Some(n) = limit {
        sets.truncate(n);
    }
    Ok(success(Json_::Array(
        sets.iter().map(metric_json).collect(),
    )))
}

async fn labels(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PromError> {
    let p = params(raw.as_deref(), &headers, &body)?;
    let sels = match_selectors(&p)?;
    let limit = limit_param(&p)?;
    let sets = listed(&state, &tenant, sels.as_deref(), &p).await?;
    let names: BTreeSet<&str> = sets
        .iter()
        .flat_map(|l| l.iter().map(|(k, _)| k.as_str()))
        .collect();
    let mut names: Vec<&str> = names.into_iter().collect();
    if let Some(n) = limit {
        names.truncate(n);
    }
    Ok(success(json!(names)))
}

async fn label_values(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PromError> {
    let p = params(raw.as_deref(), &HeaderMap::new(), &[])?;
    let valid = !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if !valid {
        return Err(PromError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sels = match_selectors(&p)?;
    let limit = limit_param(&p)?;
    let sets = listed(&state, &tenant, sels.as_deref(), &p).await?;
    let values: BTreeSet<&str> = sets
        .iter()
        .filter_map(|l| l.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()))
        .collect();
    let mut values: Vec<&str> = values.into_iter().collect();
    if let Some(n) = limit {
        values.truncate(n);
    }
    Ok(success(json!(values)))
}

/// carat keeps no metric metadata (type, help, unit): an empty map, as a Prometheus
/// whose targets exposed none answers.
async fn metadata() -> Response {
    success(json!({}))
}

/// Grafana reads this to tell Prometheus from Mimir (no `features`: Prometheus) and to
/// pick the query features of the version: carat's PromQL is Prometheus 2.42's.
async fn buildinfo() -> Response {
    success(json!({
        "version": "2.42.0",
        "revision": concat!("carat-", env!("CARGO_PKG_VERSION")),
        "branch": "carat",
        "buildUser": "carat",
        "buildDate": "",
        "goVersion": "none (carat is written in Rust)",
    }))
}

/// carat stores no exemplars.
async fn exemplars() -> Response {
    success(json!([]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_prometheus() {
        assert_eq!(parse_duration("15", "step").unwrap(), 15_000);
        assert_eq!(parse_duration("0.5", "step").unwrap(), 500);
        assert_eq!(parse_duration("1m30s", "step").unwrap(), 90_000);
        assert_eq!(parse_duration("1h", "step").unwrap(), 3_600_000);
        assert_eq!(parse_duration("2s500ms", "step").unwrap(), 2_500);
        assert_eq!(parse_duration("5ms", "step").unwrap(), 5);
        for bad in ["", "1x", "s", "30s1m", "1m1m", "1.5m"] {
            assert!(parse_duration(bad, "step").is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_as_prometheus() {
        assert_eq!(parse_time("4", "time").unwrap(), 4_000);
        assert_eq!(
            parse_time("1700000000.1234", "time").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(parse_time("1970-01-01T00:01:00Z", "time").unwrap(), 60_000);
        assert!(parse_time("soon", "time").is_err());
        assert!(parse_time("1e300", "time").is_err());
    }

    #[test]
    fn values_and_times_are_written_as_prometheus_writes_them() {
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(json_time(4_000), json!(4));
        assert_eq!(json_time(4_500), json!(4.5));
    }
}
