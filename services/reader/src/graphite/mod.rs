//! The Graphite API (docs/graphite.md), so Grafana's Graphite data source reads carat
//! unchanged: `/render` (GET and form POST, `format=json`), `/metrics/find`,
//! `/metrics/expand`, `/version`.
//!
//! A request flows: parameters ([`attime`] for `from`/`until`/`now`) ⇒ each target
//! parsed ([`target`]) ⇒ evaluated ([`functions`]) over series fetched from the
//! catalog and the tiers and placed on a fixed step ([`fetch_series`]) ⇒ consolidated
//! for `maxDataPoints` and written as graphite-web writes JSON ([`series`]).
//! `/metrics/find` and `/metrics/expand` read the catalog only ([`find`]).

pub mod attime;
pub mod find;
pub mod functions;
pub mod series;
pub mod target;

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use carat_api::AppError;
use carat_core::{Point, SeriesKey, Tenant};
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::buckets;
use crate::pattern::Pattern;
use crate::range::{param, Aggregate};
use crate::routes::{all, check_size, expand, first, form_pairs, tier_error, ReadState};
use functions::{Ctx, Source, Val};
use series::Series;

/// The graphite-web version `/version` reports: Grafana enables tags and
/// `/functions` from 1.1.
pub const VERSION: &str = "1.1.10";

/// Longest range served from raw points (a step chosen from the points' own gaps);
/// longer ranges read [`LONG_STEP`] buckets, which the archive keeps as rollups.
pub const RAW_SPAN_SECS: i64 = 7 * 86_400;
/// The step past [`RAW_SPAN_SECS`]: the archive's hourly rollups.
pub const LONG_STEP: i64 = 3_600;
/// The step past two years: the archive's daily rollups.
pub const VERY_LONG_STEP: i64 = 86_400;
/// Most slots one target may hold before consolidation, as a multiple of
/// `reader.max_points_per_answer`: a day of 100 one-minute series (144,000 slots) is
/// an everyday dashboard that `maxDataPoints` brings under the answer bound; fifty times
/// the bound (5 M slots, ~80 MB) keeps a request's memory in a Lambda's reach.
pub const SLOTS_PER_ANSWER_POINT: usize = 50;
/// Step of a series with fewer than two points in range: agents post once a minute.
pub const DEFAULT_STEP: i64 = crate::range::ASSUMED_RAW_INTERVAL;

pub(crate) fn routes() -> Router<ReadState> {
    Router::new()
        .route("/render", get(render).post(render))
        .route("/render/", get(render).post(render))
        .route("/metrics/find", get(metrics_find).post(metrics_find))
        .route("/metrics/find/", get(metrics_find).post(metrics_find))
        .route("/metrics/expand", get(metrics_expand).post(metrics_expand))
        .route("/metrics/expand/", get(metrics_expand).post(metrics_expand))
        .route("/version", get(version))
        .route("/version/", get(version))
}

async fn version() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], VERSION).into_response()
}

/// The request's `now` (graphite-web's `now` parameter, else the clock).
fn now_of(state: &ReadState, q: &[(String, String)]) -> Result<i64, AppError> {
    let clock = state.clock.now_secs();
    match first(q, "now") {
        None => Ok(clock),
        Some(v) => attime::parse(v, clock).map_err(|e| param("now", format!("now {v:?}: {e}"))),
    }
}

fn time_param(
    q: &[(String, String)],
    name: &str,
    default: &str,
    now: i64,
) -> Result<i64, AppError> {
    let v = first(q, name).unwrap_or(default);
    attime::parse(v, now).map_err(|e| param(name, format!("{name} {v:?}: {e}")))
}

/// graphite-web's `parseOptions` for the range: defaults `-1d`..`now`, swapped
/// bounds put in order, equal ones refused.
fn range_of(q: &[(String, String)], now: i64) -> Result<(i64, i64), AppError> {
    let from = time_param(q, "from", "-1d", now)?;
    let until = time_param(q, "until", "now", now)?;
    let (start, end) = (from.min(until), from.max(until));
    if start == end {
        return Err(param("from", "Invalid empty time range"));
    }
    Ok((start, end))
}

async fn render(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let q = form_pairs(query.as_deref(), &headers, &body)?;
    let mut targets = all(&q, "target");
    if targets.is_empty() {
        targets = all(&q, "target[]");
    }
    match first(&q, "format") {
        None | Some("json") => {}
        Some(other) => {
            return Err(param(
                "format",
                format!("format {other:?} is not supported; carat renders format=json only"),
            ))
        }
    }
    let now = now_of(&state, &q)?;
    let (start, end) = range_of(&q, now)?;
    let max_data_points = match first(&q, "maxDataPoints") {
        // graphite-web ignores a value that is not all digits.
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            Some(v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                param(
                    "maxDataPoints",
                    format!("maxDataPoints must be at least 1, got {v:?}"),
                )
            })?)
        }
        _ => None,
    };
    let xff = match first(&q, "xFilesFactor") {
        None => 0.0,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| (0.0..=1.0).contains(x))
            .ok_or_else(|| {
                param(
                    "xFilesFactor",
                    format!("xFilesFactor must be 0 to 1, got {v:?}"),
                )
            })?,
    };
    let ctx = Ctx {
        start,
        end,
        now,
        xff,
    };
    let limit = state.config().reader.max_series_per_query;
    let mut data: Vec<Series> = Vec::new();
    for t in targets {
        let expr = target::parse(t).map_err(|e| param("target", format!("target {t:?}: {e}")))?;
        let source = CaratSource {
            state: &state,
            tenant: &tenant,
            target: t,
            seen: Mutex::new(BTreeSet::new()),
            limit,
            slots: std::sync::atomic::AtomicUsize::new(0),
        };
        match functions::eval(&source, &expr, ctx, 0)
            .await
            .map_err(|e| in_target(e, t))?
        {
            Val::List(l) => {
                if l.len() > limit {
                    return Err(AppError::TooManySeries {
                        pattern: t.to_string(),
                        limit,
                    });
                }
                data.extend(l);
            }
            _ => {
                return Err(param(
                    "target",
                    format!("target {t:?} is a value, not a series list"),
                ))
            }
        }
    }
    if let Some(mdp) = max_data_points {
        series::consolidate_for(&mut data, mdp);
    }
    let (text, points) = series::render_json(&data, first(&q, "noNullPoints").is_some());
    check_size(state.config(), points)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

/// A target's error names the target.
fn in_target(e: AppError, target: &str) -> AppError {
    match e {
        AppError::BadInput { message, .. } => {
            param("target", format!("target {target:?}: {message}"))
        }
        other => other,
    }
}

/// Series from the catalog and the tiers, for one target: at most `limit` distinct
/// series in all its paths.
struct CaratSource<'a> {
    state: &'a ReadState,
    tenant: &'a Tenant,
    target: &'a str,
    seen: Mutex<BTreeSet<String>>,
    limit: usize,
    slots: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Source for CaratSource<'_> {
    async fn fetch(&self, pattern: &str, ctx: Ctx) -> Result<Vec<Series>, AppError> {
        let pat = Pattern::parse(pattern)
            .map_err(|e| param("target", format!("path {pattern:?}: {e}")))?;
        let entries = expand(self.state.catalog.as_ref(), self.tenant, &pat, self.limit).await?;
        {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.extend(entries.iter().map(|e| e.series.as_str().to_string()));
            if seen.len() > self.limit {
                return Err(AppError::TooManySeries {
                    pattern: self.target.to_string(),
                    limit: self.limit,
                });
            }
        }
        let keys: Vec<SeriesKey> = entries
            .iter()
            .map(|e| SeriesKey::new(self.tenant.clone(), e.series.clone()))
            .collect();
        let mut out = fetch_series(self.state, &keys, ctx).await?;
        let added: usize = out.iter().map(|s| s.values.len()).sum();
        let slots = self
            .slots
            .fetch_add(added, std::sync::atomic::Ordering::Relaxed)
            + added;
        let bound = self.state.config().reader.max_points_per_answer;
        if slots > bound.saturating_mul(SLOTS_PER_ANSWER_POINT) {
            return Err(AppError::AnswerTooLarge {
                points: slots,
                limit: bound.saturating_mul(SLOTS_PER_ANSWER_POINT),
            });
        }
        for s in &mut out {
            s.path_expression = pattern.to_string();
            s.xff = ctx.xff;
        }
        Ok(out)
    }
}

/// The series of `keys` over `ctx`'s range on a fixed step each (docs/graphite.md,
/// "The step"): up to [`RAW_SPAN_SECS`], the median gap between the raw points in the
/// range (at least 1 s), coarsened so that no series has more slots than
/// `reader.max_points_per_answer`; longer, hourly (daily past two years) buckets.
/// Slots are whisper's: the first after `from` through the one holding `until`; a slot
/// holds the average of the points in it, null where there is none.
///
/// # Errors
/// A tier's failure.
pub async fn fetch_series(
    state: &ReadState,
    keys: &[SeriesKey],
    ctx: Ctx,
) -> Result<Vec<Series>, AppError> {
    let (from, until) = (ctx.start, ctx.end);
    let span = until - from;
    let max_slots = i64::try_from(state.config().reader.max_points_per_answer).unwrap_or(i64::MAX);
    let cap = |step: i64| step.max((span + max_slots - 1) / max_slots.max(1)).max(1);
    if span > RAW_SPAN_SECS {
        let step = cap(if span > 2 * 366 * 86_400 {
            VERY_LONG_STEP
        } else {
            LONG_STEP
        });
        let jobs: Vec<_> = keys
            .iter()
            .map(|key| long_series(state, key, ctx, step))
            .collect();
        return stream::iter(jobs)
            .buffered(state.config().reader.fetch_concurrency.clamp(1, 8))
            .try_collect()
            .await;
    }
    let points: Vec<Vec<Point>> = match keys {
        [] => Vec::new(),
        [key] => vec![state
            .tiers
            .raw(key, from, until, ctx.now)
            .await
            .map_err(tier_error)?],
        _ => state
            .tiers
            .raw_many(keys, from, until, ctx.now)
            .await
            .map_err(tier_error)?,
    };
    Ok(keys
        .iter()
        .zip(points)
        .map(|(key, pts)| {
            place(
                key.series.as_str(),
                &pts,
                from,
                until,
                cap(median_gap(&pts)),
            )
        })
        .collect())
}

/// One series over a long range, from `step` buckets (rollups where the archive has
/// them).
async fn long_series(
    state: &ReadState,
    key: &SeriesKey,
    ctx: Ctx,
    step: i64,
) -> Result<Series, AppError> {
    let b = state
        .tiers
        .buckets(key, ctx.start, ctx.end, step, ctx.now)
        .await
        .map_err(tier_error)?;
    let points: Vec<Point> = b
        .iter()
        .map(|b| Point::new(b.start, buckets::value(b, Aggregate::Avg)))
        .collect();
    Ok(place(
        key.series.as_str(),
        &points,
        ctx.start,
        ctx.end,
        step,
    ))
}

/// The median gap between consecutive points (the lower-middle average for an even
/// count), at least 1 s; [`DEFAULT_STEP`] for fewer than two points.
#[must_use]
pub fn median_gap(points: &[Point]) -> i64 {
    if points.len() < 2 {
        return DEFAULT_STEP;
    }
    let mut gaps: Vec<i64> = points.windows(2).map(|w| w[1].time - w[0].time).collect();
    gaps.sort_unstable();
    let m = gaps.len();
    let med = if m % 2 == 1 {
        gaps[m / 2]
    } else {
        (gaps[m / 2 - 1] + gaps[m / 2]).div_euclid(2)
    };
    med.max(1)
}

/// Points into whisper-style slots of `step` over `from..until`.
#[must_use]
pub fn place(name: &str, points: &[Point], from: i64, until: i64, step: i64) -> Series {
    let first = from - from.rem_euclid(step) + step;
    let last = until - until.rem_euclid(step) + step;
    let slots = usize::try_from((last - first) / step).unwrap_or(0);
    // −0.0 is the additive identity of IEEE 754 (+0.0 is not: +0.0 + −0.0 = +0.0), so a
    // slot of one point holds that point's value bit for bit, −0.0 included.
    let mut sums = vec![(-0.0_f64, 0_u32); slots];
    for p in points {
        if p.time < first || p.time > until || p.value.is_nan() {
            continue;
        }
        if let Ok(i) = usize::try_from((p.time - first) / step) {
            if let Some(slot) = sums.get_mut(i) {
                slot.0 += p.value;
                slot.1 += 1;
            }
        }
    }
    let values = sums
        .into_iter()
        .map(|(s, k)| (k > 0).then(|| s / f64::from(k)))
        .collect();
    Series::new(name, first, last, step, values)
}

async fn metrics_find(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let q = form_pairs(query.as_deref(), &headers, &body)?;
    let query = first(&q, "query").ok_or_else(|| param("query", "query is required"))?;
    if query.is_empty() {
        return Err(param("query", "query is empty"));
    }
    match first(&q, "format") {
        None | Some("treejson") => {}
        Some(other) => {
            return Err(param(
                "format",
                format!("format {other:?} is not supported; carat answers treejson only"),
            ))
        }
    }
    let leaves_only = first(&q, "leavesOnly").is_some_and(|v| v == "1");
    let limit = state.config().reader.max_series_per_query.max(10_000);
    let nodes = find::nodes(state.catalog.as_ref(), &tenant, query, limit).await?;
    Ok(Json(find::tree_json(query, &nodes, leaves_only)))
}

async fn metrics_expand(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let q = form_pairs(query.as_deref(), &headers, &body)?;
    let queries = all(&q, "query");
    if queries.is_empty() {
        return Err(param("query", "query is required (repeatable)"));
    }
    let leaves_only = first(&q, "leavesOnly").is_some_and(|v| v == "1");
    let group = first(&q, "groupByExpr").is_some_and(|v| v == "1");
    let limit = state.config().reader.max_series_per_query.max(10_000);
    let mut by_query = serde_json::Map::new();
    let mut union = BTreeSet::new();
    for query in queries {
        let nodes = find::nodes(state.catalog.as_ref(), &tenant, query, limit).await?;
        let paths: Vec<String> = nodes
            .into_iter()
            .filter(|(_, k)| k.leaf || !leaves_only)
            .map(|(p, _)| p)
            .collect();
        union.extend(paths.iter().cloned());
        by_query.insert(query.to_string(), json!(paths));
    }
    Ok(Json(if group {
        json!({ "results": by_query })
    } else {
        json!({ "results": union.into_iter().collect::<Vec<_>>() })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_is_the_median_gap() {
        let pts = |ts: &[i64]| ts.iter().map(|&t| Point::new(t, 1.0)).collect::<Vec<_>>();
        assert_eq!(median_gap(&pts(&[0, 60, 120, 150, 210])), 60);
        assert_eq!(median_gap(&pts(&[0, 10, 40])), 20);
        assert_eq!(median_gap(&pts(&[5])), DEFAULT_STEP);
        assert_eq!(median_gap(&pts(&[5, 5])), 1);
    }

    #[test]
    fn points_average_into_whisper_slots() {
        let pts = [
            Point::new(60, 9.0),
            Point::new(130, 1.0),
            Point::new(150, 3.0),
            Point::new(299, 7.0),
            Point::new(300, f64::NAN),
        ];
        let s = place("a", &pts, 60, 300, 60);
        assert_eq!((s.start, s.end, s.step), (120, 360, 60));
        assert_eq!(s.values, vec![Some(2.0), None, Some(7.0), None]);
    }

    #[test]
    fn a_slot_of_one_point_keeps_its_bits_negative_zero_included() {
        let vals = [-0.0, 0.0, 5e-324, f64::MAX, f64::NEG_INFINITY];
        let pts: Vec<Point> = (0..5)
            .map(|i| Point::new(60 * (i + 2), vals[i as usize]))
            .collect();
        let s = place("a", &pts, 60, 360, 60);
        let bits: Vec<Option<u64>> = s.values.iter().map(|v| v.map(f64::to_bits)).collect();
        let want: Vec<Option<u64>> = vals.iter().map(|v| Some(v.to_bits())).collect();
        assert_eq!(bits, want);
    }
}
