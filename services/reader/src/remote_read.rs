//! Prometheus remote_read: `POST /api/v1/read` (docs/remote-read.md), so a Prometheus
//! can run its own PromQL over carat's data.
//!
//! The body is a snappy (block format) protobuf `prometheus.ReadRequest`
//! ([`carat_api::prompb`]); each query's matchers select series by the labels the catalog
//! keeps (a Prometheus series' full label set, or the labels a plain name implies), the
//! tiers give their raw points, and the answer is one snappy `ReadResponse` with one
//! `QueryResult` per query: the SAMPLES response type, the only one Prometheus before
//! 2.55 asks for. Carat stores whole seconds, so every sample comes back at a multiple
//! of 1000 ms; values keep their bits (staleness markers included, which Prometheus
//! reads as such).
//!
//! Errors are plain text, as Prometheus' own remote_read handler answers them: its
//! client quotes the body in the query's error ("remote server … returned HTTP status
//! 413 …: <body>").

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use carat_api::prompb::{
    self, DecodeError, Label, LabelMatcher, MatchType, QueryResult, ReadRequest, ReadResponse,
    ResponseType, Sample, TimeSeries,
};
use carat_api::request_id::{self, ErrorDetail};
use carat_api::AppError;
use carat_core::{window, Config, SeriesKey, SeriesName, Tenant};
use thiserror::Error;

use crate::catalog_labels::{labels_of, metric_groups, of_metric};
use crate::routes::{store_error, tier_error, ReadState};

/// Most bytes a read request may decompress to. A request is a few matchers per query
/// (Prometheus sends one query per request); 1 MiB leaves room for the long `=~`
/// alternations a dashboard variable expands to.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Most queries one request may hold (each costs catalog queries).
pub const MAX_QUERIES: usize = 64;

/// Most catalog entries one query may list to find its series (matched or not): the
/// series of one metric, or of every metric when no `__name__="…"` matcher narrows it.
/// 100,000 entries are a few DynamoDB pages; the `metric-names` route lists as many.
pub const MAX_SCANNED_SERIES: usize = 100_000;

/// The remote_read route.
pub(crate) fn routes() -> Router<ReadState> {
    Router::new().route("/api/v1/read", post(read))
}

/// Why a read request is refused.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("{0}")]
    Body(String),
    #[error("the request decompresses to {len} bytes, over the limit of {limit}")]
    BodyTooLarge { len: usize, limit: usize },
    #[error("the request holds {0} queries, over the limit of {MAX_QUERIES}")]
    TooManyQueries(usize),
    #[error("Content-Encoding {0:?} is not supported; send snappy (block format)")]
    Encoding(String),
    #[error(
        "carat answers remote_read with the SAMPLES response type only; the request accepts \
         only {0:?} (Prometheus' NegotiateResponseType refuses the same way)"
    )]
    ResponseType(Vec<i32>),
    #[error("query {query}: matcher {matcher}: {reason}")]
    Matcher {
        query: usize,
        matcher: usize,
        reason: String,
    },
    #[error(
        "query {query} ({selector}) matches more than {limit} series \
         (reader.max_series_per_query); narrow it{hint}"
    )]
    TooManySeries {
        query: usize,
        selector: String,
        limit: usize,
        hint: &'static str,
    },
    #[error(
        "query {query} ({selector}) would list more than {MAX_SCANNED_SERIES} catalog series \
         to find its own; narrow it{hint}"
    )]
    TooManyScanned {
        query: usize,
        selector: String,
        hint: &'static str,
    },
    #[error(
        "the answer would hold more than {limit} samples (reader.max_samples_per_read); \
         ask for fewer series or a shorter range"
    )]
    TooManySamples { limit: usize },
    /// A store failure: the status, Retry-After and log line are [`AppError`]'s.
    #[error(transparent)]
    Store(AppError),
}

impl ReadError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Body(_) | Self::ResponseType(_) | Self::Matcher { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. }
            | Self::TooManyQueries(_)
            | Self::TooManySeries { .. }
            | Self::TooManyScanned { .. }
            | Self::TooManySamples { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Store(e) => e.status(),
        }
    }
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { len, limit } => Self::BodyTooLarge { len, limit },
            other => Self::Body(other.to_string()),
        }
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut text = self.to_string();
        if let Some(id) = request_id::current() {
            text.push_str(&format!(" (request id {id})"));
        }
        text.push('\n');
        let mut res = match self {
            // Keeps the store error's Retry-After and its cause for the log line.
            Self::Store(e) => e.into_response(),
            other => {
                let mut r = status.into_response();
                r.extensions_mut().insert(ErrorDetail {
                    status: status.as_u16(),
                    detail: other.to_string(),
                });
                r
            }
        };
        *res.body_mut() = Body::from(text);
        let headers = res.headers_mut();
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

async fn read(
    State(state): State<ReadState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ReadError> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("(not text)");
        if !enc.trim().eq_ignore_ascii_case("snappy") {
            return Err(ReadError::Encoding(enc.to_string()));
        }
    }
    let req: ReadRequest = prompb::decode(&body, MAX_REQUEST_BYTES, "prometheus.ReadRequest")?;
    let response = answer(&state, &tenant, req).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        prompb::encode(&response),
    )
        .into_response())
}

/// The answer to a decoded request: one result per query, in order.
///
/// # Errors
/// [`ReadError`]: an unsupported response type, a bad matcher, a limit, a store failure.
pub async fn answer(
    state: &ReadState,
    tenant: &Tenant,
    req: ReadRequest,
) -> Result<ReadResponse, ReadError> {
    let types = &req.accepted_response_types;
    if !types.is_empty() && !types.contains(&(ResponseType::Samples as i32)) {
        return Err(ReadError::ResponseType(types.clone()));
    }
    if req.queries.len() > MAX_QUERIES {
        return Err(ReadError::TooManyQueries(req.queries.len()));
    }
    let cfg = state.tiers.config.as_ref();
    let now = state.clock.now_secs();
    let mut budget = Budget {
        left: cfg.reader.max_samples_per_read,
        limit: cfg.reader.max_samples_per_read,
    };
    let mut results = Vec::with_capacity(req.queries.len());
    for (i, q) in req.queries.iter().enumerate() {
        let selector = Selector::parse(i, &q.matchers)?;
        let Some((from, to)) = seconds(q.start_timestamp_ms, q.end_timestamp_ms, now, cfg) else {
            results.push(QueryResult::default());
            continue;
        };
        let entries = select(state, tenant, i, &selector).await?;
        results.push(read_series(state, tenant, entries, from, to, now, &mut budget).await?);
    }
    Ok(ReadResponse { results })
}

/// The samples an answer may still hold.
struct Budget {
    left: usize,
    limit: usize,
}

/// The whole seconds within `start_ms..=end_ms`, clamped to the times carat can hold at
/// `now`: nothing later than `ingest.max_skew_secs` ahead is stored, nothing older than
/// `retention.rollup_secs` (plus a window) is kept. Prometheus asks its API's "no start"
/// queries (`/api/v1/series` without `start`) from year −292 million, which the clamp
/// turns into carat's retention. `None` when no second is left.
fn seconds(start_ms: i64, end_ms: i64, now: i64, cfg: &Config) -> Option<(i64, i64)> {
    // A sample at second t is at t*1000 ms: in range iff start_ms <= t*1000 <= end_ms.
    let from = start_ms.div_euclid(1000) + i64::from(start_ms.rem_euclid(1000) > 0);
    let to = end_ms.div_euclid(1000);
    let oldest = now
        .saturating_sub(cfg.retention.rollup_secs)
        .saturating_sub(cfg.window.raw_secs)
        .max(-window::TIME_LIMIT);
    let newest = now
        .saturating_add(cfg.ingest.max_skew_secs)
        .min(window::TIME_LIMIT);
    let (from, to) = (from.max(oldest), to.min(newest));
    (from <= to).then_some((from, to))
}

/// One label matcher, its regex compiled.
#[derive(Debug)]
enum Matcher {
    Eq(String, String),
    Neq(String, String),
    Re(String, regex::Regex),
    Nre(String, regex::Regex),
}

impl Matcher {
    fn name(&self) -> &str {
        match self {
            Self::Eq(n, _) | Self::Neq(n, _) | Self::Re(n, _) | Self::Nre(n, _) => n,
        }
    }

    /// Whether a label set matches; an absent label has the value `""` (Prometheus').
    fn matches(&self, labels: &[(String, String)]) -> bool {
        let value = labels
            .iter()
            .find(|(n, _)| n == self.name())
            .map_or("", |(_, v)| v.as_str());
        match self {
            Self::Eq(_, v) => value == v,
            Self::Neq(_, v) => value != v,
            Self::Re(_, re) => re.is_match(value),
            Self::Nre(_, re) => !re.is_match(value),
        }
    }
}

/// A query's matchers.
#[derive(Debug)]
struct Selector {
    matchers: Vec<Matcher>,
    /// The query as PromQL would write it, for error messages.
    text: String,
}

/// Most bytes a compiled matcher regex may take (the `regex` crate's default is 10 MiB;
/// a request may hold several).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Selector {
    fn parse(query: usize, matchers: &[LabelMatcher]) -> Result<Self, ReadError> {
        let mut out = Vec::with_capacity(matchers.len());
        let mut text = Vec::with_capacity(matchers.len());
        for (j, m) in matchers.iter().enumerate() {
            let bad = |reason: String| ReadError::Matcher {
                query,
                matcher: j,
                reason,
            };
            let kind = MatchType::try_from(m.r#type)
                .map_err(|_| bad(format!("unknown matcher type {}", m.r#type)))?;
            // Anchored like Prometheus' `labels.NewFastRegexMatcher`: `^(?:…)$`.
            let re = || {
                regex::RegexBuilder::new(&format!("^(?:{})$", m.value))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| bad(format!("{:?} is not a valid regex: {e}", m.value)))
            };
            let (matcher, op) = match kind {
                MatchType::Eq => (Matcher::Eq(m.name.clone(), m.value.clone()), "="),
                MatchType::Neq => (Matcher::Neq(m.name.clone(), m.value.clone()), "!="),
                MatchType::Re => (Matcher::Re(m.name.clone(), re()?), "=~"),
                MatchType::Nre => (Matcher::Nre(m.name.clone(), re()?), "!~"),
            };
            out.push(matcher);
            text.push(format!("{}{op}{:?}", m.name, m.value));
        }
        Ok(Self {
            matchers: out,
            text: format!("{{{}}}", text.join(",")),
        })
    }

    /// The metric name an `__name__="…"` matcher asks for (not `""`: that asks for
    /// series without a name).
    fn metric(&self) -> Option<&str> {
        self.matchers.iter().find_map(|m| match m {
            Matcher::Eq(n, v) if n == "__name__" && !v.is_empty() => Some(v.as_str()),
            _ => None,
        })
    }

    fn matches(&self, labels: &[(String, String)]) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// The catalog's series of `tenant` that `selector` matches, with their labels, at most
/// `reader.max_series_per_query`.
///
/// With an `__name__="m"` matcher only the groups the series of `m` are listed under
/// are read: a Prometheus series is named `<m>.<label>.<value>…` (`m` sanitized, as
/// remote_write names it) and listed under that name's group. Without one, every group
/// of the tenant is listed — bounded by the same limit.
async fn select(
    state: &ReadState,
    tenant: &Tenant,
    query: usize,
    selector: &Selector,
) -> Result<Vec<(SeriesName, Vec<(String, String)>)>, ReadError> {
    let catalog = state.catalog.as_ref();
    let limit = state.tiers.config.reader.max_series_per_query;
    let too_many = |hint| ReadError::TooManySeries {
        query,
        selector: selector.text.clone(),
        limit,
        hint,
    };
    let store = |e| ReadError::Store(store_error(e));
    // (group, the prefix of names within it), and whether a name must be `prefix` or
    // start with `prefix.` (a metric name), or may be anything (`""`).
    let (groups, prefix): (Vec<String>, String) = match selector.metric() {
        Some(metric) => match metric_groups(catalog, tenant, metric, limit)
            .await
            .map_err(store)?
        {
            Some(found) => found,
            None => return Ok(Vec::new()),
        },
        None => {
            let groups = catalog.groups(tenant, "", limit + 1).await.map_err(store)?;
            (groups, String::new())
        }
    };
    let hint = if prefix.is_empty() {
        " (with an __name__=\"…\" matcher only that metric's series are listed)"
    } else {
        ""
    };
    if groups.len() > limit {
        return Err(too_many(hint));
    }
    let mut out = Vec::new();
    let mut scan_left = MAX_SCANNED_SERIES;
    for group in groups {
        let within = if prefix.starts_with(group.as_str()) {
            prefix.as_str()
        } else {
            group.as_str()
        };
        let listed = catalog
            .series(tenant, &group, within, scan_left + 1)
            .await
            .map_err(store)?;
        // Over the scan bound the listing is cut short: an answer from it could miss
        // series, so it is refused instead.
        scan_left =
            scan_left
                .checked_sub(listed.len())
                .ok_or_else(|| ReadError::TooManyScanned {
                    query,
                    selector: selector.text.clone(),
                    hint,
                })?;
        for entry in listed {
            if !of_metric(entry.series.as_str(), &prefix) {
                continue;
            }
            let labels = labels_of(&entry);
            if selector.matches(&labels) {
                out.push((entry.series, labels));
                if out.len() > limit {
                    return Err(too_many(hint));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// The raw points of `entries` in `from..=to` as time series (those with no point in the
/// range left out, as a TSDB select leaves them out), charged to `budget`.
async fn read_series(
    state: &ReadState,
    tenant: &Tenant,
    entries: Vec<(SeriesName, Vec<(String, String)>)>,
    from: i64,
    to: i64,
    now: i64,
    budget: &mut Budget,
) -> Result<QueryResult, ReadError> {
    let mut timeseries = Vec::new();
    // A batch at a time, so an answer over the limit stops early rather than after
    // every series was read.
    let batch = state.tiers.config.reader.fetch_concurrency.max(1);
    for chunk in entries.chunks(batch) {
        let keys: Vec<SeriesKey> = chunk
            .iter()
            .map(|(name, _)| SeriesKey::new(tenant.clone(), name.clone()))
            .collect();
        let points = state
            .tiers
            .raw_many(&keys, from, to, now)
            .await
            .map_err(|e| ReadError::Store(tier_error(e)))?;
        for ((_, labels), points) in chunk.iter().zip(points) {
            if points.is_empty() {
                continue;
            }
            budget.left =
                budget
                    .left
                    .checked_sub(points.len())
                    .ok_or(ReadError::TooManySamples {
                        limit: budget.limit,
                    })?;
            timeseries.push(TimeSeries {
                labels: labels
                    .iter()
                    .map(|(name, value)| Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: points
                    .iter()
                    .map(|p| Sample {
                        value: p.value,
                        // |time| < 2^40 s (window::in_range), so the ms fit an i64.
                        timestamp: p.time * 1000,
                    })
                    .collect(),
                histograms: Vec::new(),
            });
        }
    }
    Ok(QueryResult { timeseries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect()
    }

    fn m(kind: MatchType, name: &str, value: &str) -> LabelMatcher {
        LabelMatcher {
            r#type: kind as i32,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn matchers_match_like_prometheus() {
        let l = labels(&[("__name__", "up"), ("job", "node"), ("instance", "a:9100")]);
        let ok = |ms: &[LabelMatcher]| Selector::parse(0, ms).unwrap().matches(&l);
        assert!(ok(&[m(MatchType::Eq, "job", "node")]));
        assert!(!ok(&[m(MatchType::Eq, "job", "nod")]));
        // An absent label is "".
        assert!(ok(&[m(MatchType::Eq, "absent", "")]));
        assert!(!ok(&[m(MatchType::Eq, "job", "")]));
        assert!(ok(&[m(MatchType::Neq, "absent", "x")]));
        assert!(!ok(&[m(MatchType::Neq, "job", "node")]));
        // Anchored: `nod` does not match `node`, `.*` matches the absent label.
        assert!(!ok(&[m(MatchType::Re, "job", "nod")]));
        assert!(ok(&[m(MatchType::Re, "job", "nod.")]));
        assert!(ok(&[m(MatchType::Re, "job", "x|node")]));
        assert!(ok(&[m(MatchType::Re, "absent", ".*")]));
        assert!(!ok(&[m(MatchType::Re, "absent", ".+")]));
        assert!(ok(&[m(MatchType::Nre, "job", "nod")]));
        assert!(!ok(&[m(MatchType::Nre, "job", "no.*")]));
        // `a|b` anchored as a whole: `^(?:x|node)$`, not `^x|node$`.
        assert!(!ok(&[m(MatchType::Re, "instance", "x|a")]));
        assert!(ok(&[
            m(MatchType::Eq, "__name__", "up"),
            m(MatchType::Re, "instance", "a:.*"),
        ]));
        let e = Selector::parse(
            3,
            &[m(MatchType::Eq, "a", "b"), m(MatchType::Re, "job", "(")],
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::Matcher {
                    query: 3,
                    matcher: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = Selector::parse(
            0,
            &[LabelMatcher {
                r#type: 7,
                name: "a".into(),
                value: "b".into(),
            }],
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown matcher type 7"), "{e}");
    }

    #[test]
    fn milliseconds_become_the_whole_seconds_inside_them() {
        let cfg = Config::default();
        let now = 1_700_000_000;
        assert_eq!(
            seconds(now * 1000 - 1500, now * 1000 + 999, now, &cfg),
            Some((now - 1, now))
        );
        assert_eq!(
            seconds(now * 1000 - 1000, now * 1000 - 1, now, &cfg),
            Some((now - 1, now - 1))
        );
        // No whole second inside.
        assert_eq!(seconds(now * 1000 + 1, now * 1000 + 999, now, &cfg), None);
        // Prometheus' "no start / no end" times clamp to what carat can hold.
        let (from, to) = seconds(i64::MIN, i64::MAX, now, &cfg).unwrap();
        assert_eq!(to, now + cfg.ingest.max_skew_secs);
        assert_eq!(from, now - cfg.retention.rollup_secs - cfg.window.raw_secs);
        assert_eq!(seconds(i64::MAX, i64::MAX, now, &cfg), None);
    }

    #[test]
    fn plain_names_answer_with_the_labels_they_imply() {
        use carat_store::ports::CatalogEntry;
        let entry = |series: &str, labels: Vec<(String, String)>| CatalogEntry {
            series: SeriesName::parse(series, "s").unwrap(),
            labels,
            day: 0,
        };
        assert_eq!(
            labels_of(&entry("host.h1.cpu.user", vec![])),
            labels(&[("hostId", "h1"), ("name", "cpu.user")])
        );
        assert_eq!(
            labels_of(&entry(
                "up.job.a",
                labels(&[("job", "a"), ("empty", ""), ("__name__", "up")])
            )),
            labels(&[("__name__", "up"), ("job", "a")])
        );
    }
}
