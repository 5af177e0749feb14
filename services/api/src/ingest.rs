//! The ingest routes. Every route runs the same steps:
//! 0. `request_id::layer` (outermost): the request id, in every answer and error log;
//! 1. `require_write` (route layer): a known key with the `write` scope in the current
//!    key store ([`Keys`], reloaded when due), else 401/403 — before the body is read;
//! 2. the body, at most `ingest.max_body_bytes` (413 otherwise);
//! 3. parse it whole and validate every point against the clock. JSON routes: one bad
//!    point ⇒ 400 and nothing written. remote_write: unstorable samples are dropped and
//!    counted, 400 only if none is storable (see [`remote_write::resolve`]);
//! 4. [`produce::records`] and one `Log::put`; success only once it returned Ok.
//!    remote_write adds, in the same call, a labels record per bucket for the series
//!    whose label sets this process has not sent within the hour ([`crate::labels`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use carat_core::{Config, Point, SeriesName, Tenant};
use carat_store::name_sets::SentNameSets;
use carat_store::ports::{Log, NameSets};
use serde_json::json;

use crate::auth::{KeyStore, Scope};
use crate::body::{self, Shape};
use crate::clock::Clock;
use crate::error::AppError;
use crate::keys::Keys;
use crate::labels::LabelsSent;
use crate::{produce, remote_write, request_id};
use carat_core::record::labels::SeriesLabels;

/// The answer header that counts the samples of a remote_write request that were
/// dropped (too old, too far in the future, unmappable labels, native histograms).
pub const DROPPED_HEADER: &str = "x-carat-dropped-samples";

/// What every handler needs, built once per process.
#[derive(Clone)]
pub struct AppState {
    pub log: Arc<dyn Log>,
    pub keys: Arc<Keys>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    /// remote_write label sets this process sent lately (see [`crate::labels`]).
    pub labels_sent: Arc<LabelsSent>,
    /// Name sets this process stored (record v2); `None`: records carry names inline.
    pub name_sets: Option<Arc<SentNameSets>>,
}

impl AppState {
    /// State on the system clock with a key store that is never reloaded.
    #[must_use]
    pub fn new(log: Arc<dyn Log>, keys: Arc<KeyStore>, config: Arc<Config>) -> Self {
        Self::with_keys(log, Arc::new(Keys::fixed(keys)), config)
    }

    /// State on the system clock with a reloading key store: what the Lambda uses
    /// ([`Keys::load`]) and carat-local should ([`Keys::from_env`]).
    #[must_use]
    pub fn with_keys(log: Arc<dyn Log>, keys: Arc<Keys>, config: Arc<Config>) -> Self {
        Self {
            log,
            keys,
            clock: Arc::new(crate::clock::SystemClock),
            labels_sent: Arc::new(LabelsSent::new(&config.ingest)),
            name_sets: None,
            config,
        }
    }

    /// Records name their series by name sets stored in `store` (the catalog table).
    #[must_use]
    pub fn with_name_sets(mut self, store: Arc<dyn NameSets>) -> Self {
        self.name_sets = Some(Arc::new(SentNameSets::new(store)));
        self
    }
}

/// The ingest API's routes (paths in docs/api.md).
pub fn router(state: AppState) -> Router {
    let limit = state.config.ingest.max_body_bytes;
    Router::new()
        .route("/api/v0/tsdb", post(mackerel_host))
        .route("/api/v0/services/{service}/tsdb", post(mackerel_service))
        .route("/api/v1/points", post(native))
        .route("/api/v1/write", post(prometheus_remote_write))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_write))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

async fn require_write(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let keys = state.keys.current().await;
    let tenant = keys.authorize(req.headers(), Scope::Write)?.tenant.clone();
    req.extensions_mut().insert(tenant);
    Ok(next.run(req).await)
}

fn success() -> Json<serde_json::Value> {
    Json(json!({ "success": true }))
}

async fn mackerel_host(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    json_route(&state, &tenant, Shape::MackerelHost, None, body).await?;
    Ok(success())
}

async fn mackerel_service(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(service): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    json_route(
        &state,
        &tenant,
        Shape::MackerelService,
        Some(&service),
        body,
    )
    .await?;
    Ok(success())
}

async fn native(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    json_route(&state, &tenant, Shape::Native, None, body).await?;
    Ok(success())
}

async fn prometheus_remote_write(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    check_remote_write_headers(&headers)?;
    let body = body.map_err(|r| body_rejection(r, &state))?;
    let now_ms = state.clock.now_ms();
    let req = remote_write::decode(&body, state.config.ingest.max_body_bytes)?;
    let resolved = remote_write::resolve(req, now_ms.div_euclid(1000), &state.config.ingest)?;
    let stored = resolved.points.len();
    let (labels, sent) = state.labels_sent.due(&tenant, resolved.labels, now_ms);
    store(&state, &tenant, now_ms, resolved.points, labels).await?;
    state.labels_sent.mark(&sent, now_ms);
    let d = resolved.dropped;
    if d.total() == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (index, field, first) = d.first.clone().unwrap_or_default();
    tracing::warn!(
        request_id = request_id::current().unwrap_or_default(),
        tenant = %tenant,
        stored,
        dropped = d.total(),
        too_old = d.too_old,
        too_new = d.too_new,
        bad_labels = d.bad_labels,
        histograms = d.histograms,
        first_index = index,
        first_field = field,
        first,
        "remote_write samples dropped"
    );
    Ok((
        StatusCode::NO_CONTENT,
        [(DROPPED_HEADER, d.total().to_string())],
    )
        .into_response())
}

/// Remote write 1.0 only: 2.0 (`io.prometheus.write.v2.Request`) is refused with 415 so
/// a sender configured for it sees why, instead of a protobuf error.
fn check_remote_write_headers(headers: &HeaderMap) -> Result<(), AppError> {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let content_type = get(header::CONTENT_TYPE);
    if content_type.contains("io.prometheus.write.v2") {
        return Err(AppError::UnsupportedMediaType(
            "remote write 2.0 is not supported: use protobuf_message prometheus.WriteRequest (remote write 1.0)".into(),
        ));
    }
    let encoding = get(header::CONTENT_ENCODING);
    if !encoding.is_empty() && encoding != "snappy" {
        return Err(AppError::UnsupportedMediaType(format!(
            "Content-Encoding `{encoding}` is not supported: remote write bodies are snappy"
        )));
    }
    Ok(())
}

async fn json_route(
    state: &AppState,
    tenant: &Tenant,
    shape: Shape,
    service: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), AppError> {
    let body = body.map_err(|r| body_rejection(r, state))?;
    let now_ms = state.clock.now_ms();
    let ingest = &state.config.ingest;
    let posted = body::parse(shape, &body, ingest.max_points_per_request)?;
    let points = body::resolve(shape, service, posted, now_ms.div_euclid(1000), ingest)?;
    store(state, tenant, now_ms, points, Vec::new()).await
}

fn body_rejection(r: BytesRejection, state: &AppState) -> AppError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::BodyTooLarge {
            limit: state.config.ingest.max_body_bytes,
        }
    } else {
        AppError::body(format!("could not read the body: {}", r.body_text()))
    }
}

/// Produces validated points (and the labels records of `labels`, in the same
/// PutRecords call) and waits for the log to acknowledge every record.
async fn store(
    state: &AppState,
    tenant: &Tenant,
    stamp_ms: i64,
    points: Vec<(SeriesName, Point)>,
    labels: Vec<SeriesLabels>,
) -> Result<(), AppError> {
    if points.is_empty() {
        return Ok(());
    }
    let count = points.len();
    let mut records = produce::labels_records(tenant, labels, &state.config.record);
    let packed = match &state.name_sets {
        Some(sent) => {
            produce::records_with_sets(tenant, stamp_ms, points, &state.config.record, sent).await
        }
        None => produce::records(tenant, stamp_ms, points, &state.config.record),
    };
    records.extend(packed.map_err(|e| AppError::internal(format!("packing records: {e}")))?);
    let acked = state.log.put(&records).await.map_err(|e| {
        if e.is_retryable() {
            AppError::Unavailable {
                retry_after_secs: retry_after_secs(&state.config),
                source: e,
            }
        } else {
            AppError::internal(e.to_string())
        }
    })?;
    if acked.len() != records.len() {
        return Err(AppError::internal(format!(
            "the log acknowledged {} of {} records",
            acked.len(),
            records.len()
        )));
    }
    tracing::debug!(tenant = %tenant, points = count, records = records.len(), "ingested");
    Ok(())
}

/// Seconds a throttled client should wait: the longest single backoff of the retry
/// policy, at least one second. The adapter already retried for `retry.deadline_ms`.
fn retry_after_secs(cfg: &Config) -> u64 {
    cfg.retry.max_backoff_ms.div_ceil(1000).max(1)
}
