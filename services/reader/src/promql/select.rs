//! Selectors ⇒ series ⇒ raw points. A selector naming its metric lists the catalog
//! group of that name (a Prometheus series `up{job="node"}` is stored as
//! `up.job.node`, group `up`); one without a name lists every group, bounded by
//! `reader.max_series_per_query`. The matchers run over the catalog's labels (a
//! Prometheus series' full label set; for a plain name, the labels it implies).

use carat_core::{SeriesKey, SeriesName, Tenant};
use promql_parser::label::Matcher;
use promql_parser::parser::{Expr, VectorSelector};

use super::api::PromError;
use super::eval::{
    at_ms, duration_ms, offset_ms, selector_id, subquery_steps, Fetched, Labels, RawSeries, Steps,
    LOOKBACK_MS,
};
use crate::catalog_labels::{labels_of, metric_groups, of_metric};
use crate::routes::ReadState;

/// Most series one listing (`/api/v1/labels`, `/series`, …) reads from the catalog, and
/// most a metric's group is scanned for before its matchers narrow it: the same bound
/// the Mackerel metric-names route uses.
pub(crate) const LISTING_LIMIT: usize = 100_000;

/// A catalog series a selector matched.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub name: SeriesName,
    pub labels: Labels,
    /// Start of the last UTC day the series was written on (the catalog's `day`).
    pub day: i64,
}

/// The metric name a selector is bound to: its name, or an `=` matcher on `__name__`.
fn metric_name(vs: &VectorSelector) -> Option<&str> {
    vs.name.as_deref().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal))
            .map(|m| m.value.as_str())
    })
}

fn matches(vs: &VectorSelector, labels: &Labels) -> bool {
    let value = |name: &str| {
        labels
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let all = |ms: &[Matcher]| ms.iter().all(|m| m.is_match(value(&m.name)));
    vs.name.as_deref().is_none_or(|n| value("__name__") == n) && all(&vs.matchers.matchers)
}

/// Series of `tenant` that `vs` matches (`None`: every series), at most `limit`
/// (more: a 422 naming `reader.max_series_per_query`, or the listing bound).
pub(crate) async fn find(
    state: &ReadState,
    tenant: &Tenant,
    vs: Option<&VectorSelector>,
    limit: usize,
    limit_name: &str,
) -> Result<Vec<Found>, PromError> {
    if let Some(vs) = vs {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(PromError::execution(
                "`or` inside a selector is not supported by carat's PromQL (nor by Prometheus 2.42)",
            ));
        }
    }
    let shown = vs.map_or_else(|| "{}".to_string(), ToString::to_string);
    let too_many = || {
        PromError::execution(format!(
            "{shown} matches more than {limit} series ({limit_name}); narrow the selector"
        ))
    };
    let (groups, prefix) = match vs.and_then(metric_name) {
        Some(name) => match metric_groups(state.catalog.as_ref(), tenant, name, limit)
            .await
            .map_err(PromError::store)?
        {
            Some(found) => found,
            None => return Ok(Vec::new()),
        },
        None => (
            state
                .catalog
                .groups(tenant, "", limit + 1)
                .await
                .map_err(PromError::store)?,
            String::new(),
        ),
    };
    if groups.len() > limit {
        return Err(too_many());
    }
    let mut out = Vec::new();
    for group in groups {
        let within = if prefix.starts_with(group.as_str()) {
            prefix.as_str()
        } else {
            group.as_str()
        };
        let entries = state
            .catalog
            .series(tenant, &group, within, LISTING_LIMIT + 1)
            .await
            .map_err(PromError::store)?;
        if entries.len() > LISTING_LIMIT {
            return Err(PromError::execution(format!(
                "{shown} scans more than {LISTING_LIMIT} series of `{group}`; narrow the selector"
            )));
        }
        for e in entries {
            if !of_metric(e.series.as_str(), &prefix) {
                continue;
            }
            let labels = labels_of(&e);
            if vs.is_none_or(|vs| matches(vs, &labels)) {
                out.push(Found {
                    name: e.series,
                    labels,
                    day: e.day,
                });
                if out.len() > limit {
                    return Err(too_many());
                }
            }
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// Every selector of `expr` with the time span (ms) its evaluation over `steps` reads
/// (`query`: the query's own steps, which `@ start()`/`@ end()` refer to).
fn selectors<'e>(
    expr: &'e Expr,
    steps: Steps,
    query: Steps,
    out: &mut Vec<(&'e VectorSelector, i64, i64)>,
) {
    // The steps' span, or the one time an `@` fixes.
    let span = |vs: &VectorSelector| {
        at_ms(vs.at.as_ref(), query).map_or((steps.start, steps.end), |t| (t, t))
    };
    match expr {
        Expr::VectorSelector(vs) => {
            let off = offset_ms(vs.offset.as_ref());
            let (a, b) = span(vs);
            out.push((vs, a - off - LOOKBACK_MS, b - off));
        }
        Expr::MatrixSelector(ms) => {
            let off = offset_ms(ms.vs.offset.as_ref());
            let (a, b) = span(&ms.vs);
            out.push((&ms.vs, a - off - duration_ms(ms.range), b - off));
        }
        Expr::Aggregate(a) => {
            selectors(&a.expr, steps, query, out);
            if let Some(p) = &a.param {
                selectors(p, steps, query, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, steps, query, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, steps, query, out);
            selectors(&b.rhs, steps, query, out);
        }
        Expr::Paren(p) => selectors(&p.expr, steps, query, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                selectors(a, steps, query, out);
            }
        }
        Expr::Subquery(sq) => selectors(&sq.expr, subquery_steps(steps, sq), query, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The raw points of every selector of `expr` over `steps` (plus lookback and ranges),
/// at most `reader.max_points_per_query` in all.
pub(crate) async fn fetch(
    state: &ReadState,
    tenant: &Tenant,
    expr: &Expr,
    steps: Steps,
    now: i64,
) -> Result<Fetched, PromError> {
    let mut sels = Vec::new();
    selectors(expr, steps, steps, &mut sels);
    let cfg = &state.tiers.config.reader;
    let mut fetched = Fetched::new();
    let mut total = 0usize;
    for (vs, from_ms, to_ms) in sels {
        let found = find(
            state,
            tenant,
            Some(vs),
            cfg.max_series_per_query,
            "reader.max_series_per_query",
        )
        .await?;
        let mut series = Vec::with_capacity(found.len());
        if !found.is_empty() {
            let keys: Vec<SeriesKey> = found
                .iter()
                .map(|f| SeriesKey::new(tenant.clone(), f.name.clone()))
                .collect();
            let points = state
                .tiers
                .raw_many(&keys, from_ms.div_euclid(1000), to_ms.div_euclid(1000), now)
                .await
                .map_err(PromError::tier)?;
            for (f, pts) in found.into_iter().zip(points) {
                total += pts.len();
                if total > cfg.max_points_per_query {
                    return Err(PromError::execution(format!(
                        "the query reads more than {} points (reader.max_points_per_query); shorten the range or narrow the selectors",
                        cfg.max_points_per_query
                    )));
                }
                let points: Vec<(i64, f64)> = pts
                    .iter()
                    .map(|p| (p.time.saturating_mul(1000), p.value))
                    .filter(|p| p.0 >= from_ms && p.0 <= to_ms)
                    .collect();
                series.push(RawSeries {
                    labels: f.labels,
                    points,
                });
            }
        }
        fetched.insert(selector_id(vs), series);
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_anchored_and_absent_labels_are_empty() {
        let Expr::VectorSelector(vs) =
            promql_parser::parser::parse(r#"up{job=~"no.*",env!="prod",zone=""}"#).unwrap()
        else {
            panic!("a selector")
        };
        let l = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        assert!(matches(&vs, &l(&[("__name__", "up"), ("job", "node")])));
        assert!(!matches(&vs, &l(&[("__name__", "up"), ("job", "xnode")])));
        assert!(!matches(
            &vs,
            &l(&[("__name__", "up"), ("job", "node"), ("zone", "a")])
        ));
        assert!(!matches(
            &vs,
            &l(&[("__name__", "up"), ("env", "prod"), ("job", "node")])
        ));
        assert!(!matches(&vs, &l(&[("__name__", "upx"), ("job", "node")])));
    }
}
