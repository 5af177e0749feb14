//! The read routes (paths and shapes in docs/api.md, "Read"): Mackerel-compatible host
//! and service metrics, metric names and latest values; the native range query and
//! series listing. Every route needs a key with the `read` scope and reads only its
//! tenant's series.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use carat_api::request_id;
use carat_api::{AppError, Clock, Keys, Scope};
use carat_core::catalog::group_of;
use carat_core::{Config, Point, SeriesKey, SeriesName, Tenant};
use carat_store::ports::{Catalog, CatalogEntry};
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::buckets::{self};
use crate::pattern::Pattern;
use crate::range::{param, Aggregate, Range, Resolution};
use crate::tiers::{TierError, Tiers};

/// What the read routes share.
#[derive(Clone)]
pub struct ReadState {
    pub tiers: Tiers,
    pub catalog: Arc<dyn Catalog>,
    pub keys: Arc<Keys>,
    pub clock: Arc<dyn Clock>,
}

impl ReadState {
    pub(crate) fn config(&self) -> &Config {
        &self.tiers.config
    }
}

/// The read API's routes.
pub fn router(state: ReadState) -> Router {
    Router::new()
        .route("/api/v0/hosts/{host_id}/metrics", get(host_metrics))
        .route("/api/v0/services/{service}/metrics", get(service_metrics))
        .route(
            "/api/v0/hosts/{host_id}/metric-names",
            get(host_metric_names),
        )
        .route(
            "/api/v0/services/{service}/metric-names",
            get(service_metric_names),
        )
        .route("/api/v0/tsdb/latest", get(latest))
        .route("/api/v1/points", get(native_points))
        .route("/api/v1/names", get(native_names))
        // Further read APIs (Graphite, Prometheus) merge here, behind the `read` scope.
        .merge(crate::remote_read::routes())
        .merge(crate::graphite::routes())
        .merge(crate::promql::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read))
        .merge(crate::page::routes()) // after the `read` scope: the page needs no key
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

async fn require_read(
    State(state): State<ReadState>,
    mut req: Request<axum::body::Body>,
    next: Next,
) -> Result<Response, AppError> {
    let keys = state.keys.current().await;
    let tenant = keys.authorize(req.headers(), Scope::Read)?.tenant.clone();
    req.extensions_mut().insert(tenant);
    Ok(next.run(req).await)
}

/// Parameters of a GET or a form POST, in order, repeated ones kept: the query
/// string's, then (when the body is `application/x-www-form-urlencoded`, as Grafana
/// posts Graphite and Prometheus queries) the body's. graphite-web and Prometheus
/// merge both the same way.
///
/// # Errors
/// 400 naming `body` if a form body is not UTF-8.
pub(crate) fn form_pairs(
    query: Option<&str>,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, AppError> {
    let mut out = pairs(query);
    let is_form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if is_form && !body.is_empty() {
        let text =
            std::str::from_utf8(body).map_err(|_| param("body", "the form body is not UTF-8"))?;
        out.extend(url_pairs(text.trim()));
    }
    Ok(out)
}

/// Query parameters in order, repeated ones kept (`hostId=a&hostId=b`).
pub(crate) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(url_pairs).unwrap_or_default()
}

pub(crate) fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space).
pub(crate) fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn all<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A tier failure as the client sees it: 503 + Retry-After when retrying may help,
/// else 500; the cause goes to the log (request_id layer), never to the body.
pub(crate) fn tier_error(e: TierError) -> AppError {
    if e.is_retryable() {
        match e {
            TierError::Store(source) => AppError::ReadUnavailable {
                retry_after_secs: 1,
                source,
            },
            other => AppError::ReadUnavailable {
                retry_after_secs: 1,
                source: carat_store::StoreError::retryable("s3", "archive", other.to_string()),
            },
        }
    } else {
        AppError::ReadFailed {
            detail: e.to_string(),
        }
    }
}

pub(crate) fn store_error(e: carat_store::StoreError) -> AppError {
    tier_error(TierError::Store(e))
}

/// The group every name starting with `prefix` belongs to, when `prefix` decides it
/// (`carat_core::catalog::group_of`: `host.<id>` / `service.<name>`, else the first
/// segment): `host.h1.cp` decides `host.h1`, `host.h` does not (`host.h1`, `host.h2`…).
pub(crate) fn group_of_prefix(prefix: &str) -> Option<&str> {
    for owner in ["host.", "service."] {
        if let Some(rest) = prefix.strip_prefix(owner) {
            return rest
                .find('.')
                .filter(|&dot| dot > 0)
                .map(|dot| &prefix[..owner.len() + dot]);
        }
        if owner.starts_with(prefix) {
            // `hos` may become `host.<id>` or `hostname`.
            return None;
        }
    }
    prefix
        .find('.')
        .filter(|&dot| dot > 0)
        .map(|dot| &prefix[..dot])
}

/// Most catalog names [`expand`] scans in one group for a pattern.
const MAX_SCAN: usize = 100_000;

/// Series of `tenant` matching `pattern`, at most `limit` (more: 413).
pub(crate) async fn expand(
    catalog: &dyn Catalog,
    tenant: &Tenant,
    pattern: &Pattern,
    limit: usize,
) -> Result<Vec<CatalogEntry>, AppError> {
    let prefix = pattern.literal_prefix();
    let groups = match group_of_prefix(prefix) {
        Some(g) => vec![g.to_string()],
        None => catalog
            .groups(tenant, prefix, limit + 1)
            .await
            .map_err(store_error)?,
    };
    let too_many = || AppError::TooManySeries {
        pattern: pattern.as_str().to_string(),
        limit,
    };
    if groups.len() > limit {
        return Err(too_many());
    }
    let mut out = Vec::new();
    for group in groups {
        // The prefix within the group: the literal prefix if the group is part of it.
        let within = if prefix.starts_with(group.as_str()) {
            prefix
        } else {
            group.as_str()
        };
        // The listing holds names the pattern may not match: bound it apart from
        // `limit`, or matches past the first `limit + 1` names would be lost.
        let scan = limit.max(MAX_SCAN);
        let entries = catalog
            .series(tenant, &group, within, scan + 1)
            .await
            .map_err(store_error)?;
        if entries.len() > scan {
            return Err(too_many());
        }
        out.extend(
            entries
                .into_iter()
                .filter(|e| pattern.matches(e.series.as_str())),
        );
        if out.len() > limit {
            return Err(too_many());
        }
    }
    out.sort_by(|a, b| a.series.cmp(&b.series));
    out.dedup_by(|a, b| a.series == b.series);
    Ok(out)
}

/// Whether the catalog knows `series`.
pub(crate) async fn known(
    catalog: &dyn Catalog,
    tenant: &Tenant,
    series: &str,
) -> Result<bool, AppError> {
    let found = catalog
        .series(tenant, group_of(series), series, 2)
        .await
        .map_err(store_error)?;
    Ok(found.iter().any(|e| e.series.as_str() == series))
}

/// Whether the catalog knows any series of `group`.
pub(crate) async fn known_group(
    catalog: &dyn Catalog,
    tenant: &Tenant,
    group: &str,
) -> Result<bool, AppError> {
    let prefix = format!("{group}.");
    Ok(!catalog
        .series(tenant, group, &prefix, 1)
        .await
        .map_err(store_error)?
        .is_empty())
}

/// A JSON number for a value; non-finite values (which JSON lacks) as Prometheus writes
/// them, strings `NaN`, `+Inf`, `-Inf`.
pub(crate) fn json_value(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("NaN")
    } else if v > 0.0 {
        json!("+Inf")
    } else {
        json!("-Inf")
    }
}

/// Points of one series at `resolution` (`aggregate` per bucket).
async fn read_series(
    state: &ReadState,
    key: &SeriesKey,
    range: Range,
    resolution: Resolution,
    aggregate: Aggregate,
    now: i64,
) -> Result<Vec<Point>, AppError> {
    match resolution {
        Resolution::Raw => state
            .tiers
            .raw(key, range.from, range.to, now)
            .await
            .map_err(tier_error),
        Resolution::Secs(secs) => Ok(state
            .tiers
            .buckets(key, range.from, range.to, secs, now)
            .await
            .map_err(tier_error)?
            .iter()
            .map(|b| Point::new(b.start, buckets::value(b, aggregate)))
            .collect()),
    }
}

/// Mackerel host or service metrics: `group` is `host.<id>` / `service.<name>`.
async fn mackerel_metrics(
    state: &ReadState,
    tenant: &Tenant,
    kind: &'static str,
    group: String,
    query: Option<&str>,
) -> Result<Json<Value>, AppError> {
    let q = pairs(query);
    let name = first(&q, "name").ok_or_else(|| param("name", "name is required"))?;
    let series = SeriesName::parse(&format!("{group}.{name}"), "name")?;
    let range = Range::parse(first(&q, "from"), first(&q, "to"))?;
    let key = SeriesKey::new(tenant.clone(), series);
    let now = state.clock.now_secs();
    let points = read_series(
        state,
        &key,
        range,
        Resolution::mackerel(range.span()),
        Aggregate::Avg,
        now,
    )
    .await?;
    check_size(state.config(), points.len())?;
    if points.is_empty() && !known(state.catalog.as_ref(), tenant, key.series.as_str()).await? {
        let what = if known_group(state.catalog.as_ref(), tenant, &group).await? {
            format!("metric `{name}` not found")
        } else {
            format!(
                "{kind} `{}` not found",
                group.split_once('.').map_or("", |x| x.1)
            )
        };
        return Err(AppError::NotFound(what));
    }
    let metrics: Vec<Value> = points
        .iter()
        .map(|p| json!({"time": p.time, "value": mackerel_value(p.value)}))
        .collect();
    Ok(Json(json!({ "metrics": metrics })))
}

/// Mackerel values are JSON numbers; a non-finite value (only Prometheus series have
/// them) is `null`, as JSON has no NaN.
fn mackerel_value(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

pub(crate) fn check_size(cfg: &Config, points: usize) -> Result<(), AppError> {
    let limit = cfg.reader.max_points_per_answer;
    if points > limit {
        return Err(AppError::AnswerTooLarge { points, limit });
    }
    Ok(())
}

fn host_group(host_id: &str) -> Result<String, AppError> {
    let g = format!("host.{host_id}");
    SeriesName::parse(&g, "hostId")?;
    Ok(g)
}

fn service_group(service: &str) -> Result<String, AppError> {
    let g = format!("service.{service}");
    SeriesName::parse(&g, "service")?;
    Ok(g)
}

async fn host_metrics(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    Path(host_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    mackerel_metrics(
        &state,
        &tenant,
        "host",
        host_group(&host_id)?,
        query.as_deref(),
    )
    .await
}

async fn service_metrics(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    mackerel_metrics(
        &state,
        &tenant,
        "service",
        service_group(&service)?,
        query.as_deref(),
    )
    .await
}

async fn metric_names(
    state: &ReadState,
    tenant: &Tenant,
    kind: &str,
    group: &str,
) -> Result<Json<Value>, AppError> {
    let prefix = format!("{group}.");
    let limit = state.config().reader.max_series_per_query.max(100_000);
    let entries = state
        .catalog
        .series(tenant, group, &prefix, limit)
        .await
        .map_err(store_error)?;
    if entries.is_empty() {
        return Err(AppError::NotFound(format!(
            "{kind} `{}` not found",
            group.split_once('.').map_or("", |x| x.1)
        )));
    }
    let names: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.series.as_str().strip_prefix(prefix.as_str()))
        .collect();
    Ok(Json(json!({ "names": names })))
}

async fn host_metric_names(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    Path(host_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    metric_names(&state, &tenant, "host", &host_group(&host_id)?).await
}

async fn service_metric_names(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    Path(service): Path<String>,
) -> Result<Json<Value>, AppError> {
    metric_names(&state, &tenant, "service", &service_group(&service)?).await
}

/// Most (hostId, name) pairs one latest request may ask for: Mackerel's clients ask
/// for a dashboard's worth.
const MAX_LATEST_PAIRS: usize = 10_000;

async fn latest(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = pairs(query.as_deref());
    let hosts = all(&q, "hostId");
    let names = all(&q, "name");
    if hosts.is_empty() {
        return Err(param("hostId", "hostId is required (repeatable)"));
    }
    if names.is_empty() {
        return Err(param("name", "name is required (repeatable)"));
    }
    if hosts.len() * names.len() > MAX_LATEST_PAIRS {
        return Err(param(
            "name",
            format!(
                "{} hostId × {} name pairs are over the limit of {MAX_LATEST_PAIRS}",
                hosts.len(),
                names.len()
            ),
        ));
    }
    let mut keys = Vec::new();
    for h in &hosts {
        for n in &names {
            keys.push((
                (*h).to_string(),
                (*n).to_string(),
                SeriesKey::new(tenant.clone(), SeriesName::mackerel_host(h, n)?),
            ));
        }
    }
    let now = state.clock.now_secs();
    // The newest point within the current and the previous window.
    let from = now - state.config().window.raw_secs;
    let found: Vec<(String, String, Option<Point>)> =
        stream::iter(keys.into_iter().map(|(h, n, key)| {
            let state = &state;
            async move {
                let pts = state
                    .tiers
                    .raw(&key, from, now + state.config().ingest.max_skew_secs, now)
                    .await
                    .map_err(tier_error)?;
                Ok::<_, AppError>((h, n, pts.last().copied()))
            }
        }))
        .buffered(state.config().reader.fetch_concurrency)
        .try_collect()
        .await?;
    let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for h in &hosts {
        out.entry((*h).to_string()).or_default();
    }
    for (h, n, p) in found {
        if let Some(p) = p {
            out.entry(h).or_default().insert(
                n.clone(),
                json!({"name": n, "time": p.time, "value": mackerel_value(p.value)}),
            );
        }
    }
    Ok(Json(json!({ "tsdbLatest": out })))
}

/// Bound on `max_points` (per series) a client may ask for.
const MAX_POINTS_PARAM: usize = 1_000_000;

async fn native_points(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = pairs(query.as_deref());
    let series = first(&q, "series")
        .ok_or_else(|| param("series", "series is required (a name or a pattern)"))?;
    let pattern =
        Pattern::parse(series).map_err(|e| param("series", format!("series {series:?}: {e}")))?;
    let range = Range::parse(first(&q, "from"), first(&q, "to"))?;
    let cfg = state.config();
    let max_points = match first(&q, "max_points") {
        None => 11_000,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=MAX_POINTS_PARAM).contains(&n))
            .ok_or_else(|| {
                param(
                    "max_points",
                    format!("max_points must be 1 to {MAX_POINTS_PARAM}, got {v:?}"),
                )
            })?,
    };
    let resolution = Resolution::parse(first(&q, "resolution"), range, max_points)?;
    let aggregate = Aggregate::parse(first(&q, "aggregate"))?;
    let now = state.clock.now_secs();

    let entries: Vec<(SeriesName, Vec<(String, String)>)> = if pattern.is_literal() {
        let name = SeriesName::parse(series, "series")?;
        vec![(name, Vec::new())]
    } else {
        expand(
            state.catalog.as_ref(),
            &tenant,
            &pattern,
            cfg.reader.max_series_per_query,
        )
        .await?
        .into_iter()
        .map(|e| (e.series, e.labels))
        .collect()
    };
    let read: Vec<Read> = if resolution == Resolution::Raw && entries.len() > 1 {
        let keys: Vec<SeriesKey> = entries
            .iter()
            .map(|(name, _)| SeriesKey::new(tenant.clone(), name.clone()))
            .collect();
        let points = state
            .tiers
            .raw_many(&keys, range.from, range.to, now)
            .await
            .map_err(tier_error)?;
        entries
            .into_iter()
            .zip(points)
            .map(|((name, labels), pts)| (name, labels, pts))
            .collect()
    } else {
        stream::iter(entries.into_iter().map(|(name, labels)| {
            let state = &state;
            let key = SeriesKey::new(tenant.clone(), name.clone());
            async move {
                let pts = read_series(state, &key, range, resolution, aggregate, now).await?;
                Ok::<_, AppError>((name, labels, pts))
            }
        }))
        .buffered(cfg.reader.fetch_concurrency.min(8))
        .try_collect()
        .await?
    };
    check_size(cfg, read.iter().map(|(_, _, p)| p.len()).sum())?;
    if let Some((name, _, pts)) = read.first() {
        if pattern.is_literal()
            && pts.is_empty()
            && !known(state.catalog.as_ref(), &tenant, name.as_str()).await?
        {
            return Err(AppError::NotFound(format!("series `{name}` not found")));
        }
    }
    let series: Vec<Value> = read
        .iter()
        .map(|(name, labels, pts)| {
            let mut s = json!({
                "name": name.as_str(),
                "resolution": resolution.secs(),
                "points": pts.iter().map(|p| json!([p.time, json_value(p.value)])).collect::<Vec<_>>(),
            });
            if !labels.is_empty() {
                s["labels"] = labels_json(labels);
            }
            s
        })
        .collect();
    let aggregate_name = match (resolution, aggregate) {
        (Resolution::Raw, _) => Value::Null,
        (_, a) => json!(format!("{a:?}").to_lowercase()),
    };
    Ok(Json(
        json!({ "series": series, "aggregate": aggregate_name }),
    ))
}

/// One series of an answer: its name, catalog labels and points.
type Read = (SeriesName, Vec<(String, String)>, Vec<Point>);

pub(crate) fn labels_json(labels: &[(String, String)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// Most names one listing returns.
const MAX_NAMES: usize = 100_000;

async fn native_names(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = pairs(query.as_deref());
    let pat = first(&q, "match").unwrap_or("*");
    let pattern = Pattern::parse(pat).map_err(|e| param("match", format!("match {pat:?}: {e}")))?;
    let limit = match first(&q, "limit") {
        None => state.config().reader.max_series_per_query,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=MAX_NAMES).contains(&n))
            .ok_or_else(|| {
                param(
                    "limit",
                    format!("limit must be 1 to {MAX_NAMES}, got {v:?}"),
                )
            })?,
    };
    let entries = expand(state.catalog.as_ref(), &tenant, &pattern, limit).await?;
    let names: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut n = json!({"name": e.series.as_str()});
            if !e.labels.is_empty() {
                n["labels"] = labels_json(&e.labels);
            }
            n
        })
        .collect();
    Ok(Json(json!({ "names": names })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_decides_its_group_once_the_group_ends_in_it() {
        assert_eq!(group_of_prefix("host.h1.cp"), Some("host.h1"));
        assert_eq!(group_of_prefix("host.h"), None);
        assert_eq!(group_of_prefix("host."), None);
        assert_eq!(group_of_prefix("hos"), None);
        assert_eq!(group_of_prefix("hostname.x"), Some("hostname"));
        assert_eq!(group_of_prefix("service.web.l"), Some("service.web"));
        assert_eq!(group_of_prefix("app."), Some("app"));
        assert_eq!(group_of_prefix("ap"), None);
    }

    #[test]
    fn query_strings_keep_repeats_and_decode() {
        let q = url_pairs("hostId=a&hostId=b%2Ec&name=cpu+user&x");
        assert_eq!(all(&q, "hostId"), vec!["a", "b.c"]);
        assert_eq!(first(&q, "name"), Some("cpu user"));
        assert_eq!(first(&q, "x"), Some(""));
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn form_bodies_add_to_the_query_string() {
        let mut h = axum::http::HeaderMap::new();
        let body = b"target=a.b&target=sum(c.*)&from=1&until=2";
        assert_eq!(form_pairs(Some("x=1"), &h, body).unwrap().len(), 1);
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        let q = form_pairs(Some("x=1"), &h, body).unwrap();
        assert_eq!(all(&q, "target"), vec!["a.b", "sum(c.*)"]);
        assert_eq!(first(&q, "x"), Some("1"));
        assert!(form_pairs(None, &h, &[0xff, 0xfe]).is_err());
    }
}
