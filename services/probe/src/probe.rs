//! One probe run (docs/probe-metric.md): `t0` = now; POST one point of [`SERIES`] (time
//! `t0` in seconds, value `t0` in seconds with its milliseconds, so the value names the run)
//! to `/api/v1/points`; then read `GET /api/v1/points?series=carat.probe&from=t0&to=t0+1`
//! with backoff (100 ms doubling to 1 s) until the answer holds that point or the deadline
//! comes. The result is a [`ProbeResult`]: the latency `now − t0` in ms, or why not.
//!
//! Which answers end the run at once and which are polled through:
//! - POST: 2xx goes on; anything else (or no answer) fails the run — the probe posts once,
//!   because a retried post would hide an ingest outage inside the latency.
//! - GET: 200 without the point and 404 (series not known yet) are polled through, as are
//!   5xx, 429 and transport errors (remembered for the message); 401/403 (the key), 405
//!   (no reader behind the route) and a 200 that is not the documented shape fail at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use carat_core::clock::Clock;
use carat_store::secrets::Secret;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::http::{Answer, HttpClient, HttpError};

/// The probe's series (its key's tenant).
pub const SERIES: &str = "carat.probe";
/// The native points route: POST ingests, GET reads.
pub const POINTS_PATH: &str = "/api/v1/points";
/// The longest a single request may take; the run's deadline bounds it further.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait between reads; doubled after each read up to [`MAX_BACKOFF`]. A local
/// round trip takes well under a second, so the first reads come quickly.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reads: the latency is measured to within about a second.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What one run found. `latency_ms` is set exactly when the point was read back; `error`
/// says why not otherwise. `at_ms` is `t0`, epoch ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub at_ms: i64,
}

impl ProbeResult {
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.latency_ms.is_some()
    }
}

/// Why a run measured nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("posting the probe point: {0}")]
    Post(#[source] HttpError),
    #[error(
        "{route} refused the probe's API key ({status}): the key is unknown, revoked or lacks \
         the {scope} scope; body: {body}"
    )]
    Refused {
        route: &'static str,
        scope: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("POST {POINTS_PATH} answered {status}, expected 2xx; body: {body}")]
    PostStatus { status: StatusCode, body: String },
    #[error(
        "GET {POINTS_PATH} answered 405: no reader serves the route (carat-reader is not \
         deployed behind this API, or carat-local runs without the reader's routes)"
    )]
    NoReader,
    #[error("GET {POINTS_PATH} answered 200 with a body that is not {{\"series\":[{{\"name\",\"points\":[[time,value],…]}}]}}: {detail}")]
    BadAnswer { detail: String },
    #[error(
        "the point {SERIES} at {time} (value {value}) was not readable after {reads} reads in \
         {waited_ms} ms (the run's deadline); last answer: {last}"
    )]
    NotVisible {
        time: i64,
        value: f64,
        reads: u32,
        waited_ms: u64,
        last: String,
    },
}

/// The probe of one API: its base URL, its key (write and read scopes) and a clock.
pub struct Probe {
    client: HttpClient,
    api_url: String,
    key: Secret,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ReadAnswer {
    series: Vec<ReadSeries>,
}

#[derive(Deserialize)]
struct ReadSeries {
    name: String,
    points: Vec<(f64, f64)>,
}

impl Probe {
    /// A probe of the API at `api_url` (scheme, host, optional port; a trailing `/` is
    /// dropped) with API key `key`.
    #[must_use]
    pub fn new(client: HttpClient, api_url: &str, key: Secret, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            api_url: api_url.trim_end_matches('/').to_string(),
            key,
            clock,
        }
    }

    /// The base URL the probe talks to.
    #[must_use]
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// One run that ends within `deadline` (plus at most the request in flight's
    /// remaining share of it: every request is bounded by the time left).
    pub async fn run(&self, deadline: Duration) -> ProbeResult {
        let t0_ms = self.clock.now_ms();
        match self.measure(t0_ms, Instant::now() + deadline).await {
            Ok(latency_ms) => ProbeResult {
                latency_ms: Some(latency_ms),
                error: None,
                at_ms: t0_ms,
            },
            Err(e) => ProbeResult {
                latency_ms: None,
                error: Some(e.to_string()),
                at_ms: t0_ms,
            },
        }
    }

    async fn measure(&self, t0_ms: i64, deadline: Instant) -> Result<u64, ProbeError> {
        let time = t0_ms.div_euclid(1000);
        // Seconds with the milliseconds: distinct per run, exact through JSON (shortest
        // round-trip formatting on both sides).
        #[allow(clippy::cast_precision_loss)] // epoch ms are far below 2^53
        let value = t0_ms as f64 / 1000.0;
        let url = format!("{}{POINTS_PATH}", self.api_url);
        let body = serde_json::json!([{ "series": SERIES, "time": time, "value": value }]);
        let headers = [("x-api-key", self.key.expose())];
        let posted = self
            .client
            .send(
                Method::POST,
                &url,
                &headers,
                Some(Bytes::from(body.to_string())),
                left(deadline).min(REQUEST_TIMEOUT),
            )
            .await
            .map_err(ProbeError::Post)?;
        match posted.status {
            s if s.is_success() => {}
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                return Err(ProbeError::Refused {
                    route: "the ingest API (POST /api/v1/points)",
                    scope: "write",
                    status: s,
                    body: posted.body_excerpt(),
                })
            }
            status => {
                return Err(ProbeError::PostStatus {
                    status,
                    body: posted.body_excerpt(),
                })
            }
        }

        let read_url = format!(
            "{url}?series={SERIES}&from={time}&to={}",
            time.saturating_add(1)
        );
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut reads = 0_u32;
        let mut last = String::from("none (no time left to read)");
        loop {
            let remaining = left(deadline);
            if remaining.is_zero() {
                return Err(ProbeError::NotVisible {
                    time,
                    value,
                    reads,
                    waited_ms: millis(started.elapsed()),
                    last,
                });
            }
            reads += 1;
            let read = self
                .client
                .send(
                    Method::GET,
                    &read_url,
                    &headers,
                    None,
                    remaining.min(REQUEST_TIMEOUT),
                )
                .await;
            match read {
                Ok(answer) => {
                    if classify(&answer, time, value)? {
                        let now = self.clock.now_ms();
                        return Ok(u64::try_from(now.saturating_sub(t0_ms)).unwrap_or(0));
                    }
                    last = format!("{} {}", answer.status, answer.body_excerpt());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(backoff.min(left(deadline))).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// `Ok(true)` when the answer holds the point, `Ok(false)` to read again, `Err` to stop.
fn classify(answer: &Answer, time: i64, value: f64) -> Result<bool, ProbeError> {
    match answer.status {
        StatusCode::OK => {
            let read: ReadAnswer =
                serde_json::from_slice(&answer.body).map_err(|e| ProbeError::BadAnswer {
                    detail: e.to_string(),
                })?;
            #[allow(clippy::cast_precision_loss)] // epoch seconds are far below 2^53
            let t = time as f64;
            #[allow(clippy::float_cmp)] // the same f64, posted and read back bit-exact
            let found = read
                .series
                .iter()
                .filter(|s| s.name == SERIES)
                .flat_map(|s| s.points.iter())
                .any(|&(pt, pv)| pt == t && pv == value);
            Ok(found)
        }
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(ProbeError::Refused {
            route: "the reader (GET /api/v1/points)",
            scope: "read",
            status: s,
            body: answer.body_excerpt(),
        }),
        StatusCode::METHOD_NOT_ALLOWED => Err(ProbeError::NoReader),
        // 404: the series is not known yet; 5xx, 429: the reader may recover in time.
        _ => Ok(false),
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, body: &str) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn finds_only_its_own_point() {
        let body = r#"{"series":[{"name":"carat.probe","points":[[1700000000,1700000000.25]]}]}"#;
        let ok = answer(StatusCode::OK, body);
        assert!(classify(&ok, 1_700_000_000, 1_700_000_000.25).expect("parsed"));
        // Another run's value at the same second, another time, another series: not it.
        assert!(!classify(&ok, 1_700_000_000, 1_700_000_000.5).expect("parsed"));
        assert!(!classify(&ok, 1_700_000_001, 1_700_000_000.25).expect("parsed"));
        let other = answer(
            StatusCode::OK,
            r#"{"series":[{"name":"x","points":[[1700000000,1700000000.25]]}]}"#,
        );
        assert!(!classify(&other, 1_700_000_000, 1_700_000_000.25).expect("parsed"));
    }

    #[test]
    fn polls_through_404_and_5xx_but_not_auth_or_405() {
        assert!(!classify(&answer(StatusCode::NOT_FOUND, ""), 0, 0.0).expect("poll on"));
        assert!(!classify(&answer(StatusCode::SERVICE_UNAVAILABLE, ""), 0, 0.0).expect("poll on"));
        assert!(matches!(
            classify(&answer(StatusCode::FORBIDDEN, "{}"), 0, 0.0),
            Err(ProbeError::Refused { scope: "read", .. })
        ));
        assert!(matches!(
            classify(&answer(StatusCode::METHOD_NOT_ALLOWED, ""), 0, 0.0),
            Err(ProbeError::NoReader)
        ));
        assert!(matches!(
            classify(&answer(StatusCode::OK, r#"{"points":[]}"#), 0, 0.0),
            Err(ProbeError::BadAnswer { .. })
        ));
    }

    #[test]
    fn result_json_shape() {
        let r = ProbeResult {
            latency_ms: Some(412),
            error: None,
            at_ms: 1_764_072_000_000,
        };
        assert_eq!(
            serde_json::to_string(&r).expect("serializes"),
            r#"{"latency_ms":412,"error":null,"at_ms":1764072000000}"#
        );
    }
}
