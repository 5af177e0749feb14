//! carat-reader: the read path. An axum [`router`] over the three tiers — the Redis head
//! (open windows), the DynamoDB window table (live items) and the S3 archive (expired
//! items) — that runs as a Lambda (`src/main.rs`, through `lambda_http`) and inside
//! carat-local. Routes and shapes: docs/api.md, "Read".
//!
//! Module map, in the order a request flows through it:
//! - [`routes`]: the routes, the `read` scope check, parameters ⇒ series ⇒ answer; the
//!   catalog decides which series a pattern names and whether an unknown one is a 404.
//! - [`remote_read`]: Prometheus remote_read (`POST /api/v1/read`): matchers over the
//!   catalog's labels ⇒ raw points from the tiers ⇒ one snappy `ReadResponse`.
//! - [`range`]: time ranges, resolutions (Mackerel's ladder, the native choices) and
//!   aggregates, parsed with errors naming the parameter.
//! - [`pattern`]: Graphite-style globs over series names.
//! - `promql`: the Prometheus HTTP API and a PromQL evaluator (docs/prometheus.md).
//! - [`tiers`]: the planner (which windows come from which tier), the concurrent
//!   fetches and the merge (greatest ingest stamp per time wins).
//! - [`buckets`]: points ⇒ count/sum/min/max per bucket, partials combined.
//! - `catalog_labels`: what the Prometheus-facing routes share about the catalog — the
//!   labels a series answers with, the groups a metric's series are listed under.
//! - [`page`]: the graph page at `/` (HTML, script, style compiled in; no key needed).
//! - [`graphite`]: the Graphite API (`/render`, `/metrics/find`): targets parsed and
//!   evaluated with graphite-web's functions over series placed on a fixed step.

// Tests may unwrap: a panic there is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod buckets;
mod catalog_labels;
pub mod graphite;
pub mod page;
pub mod pattern;
pub(crate) mod promql;
pub mod range;
pub mod remote_read;
pub mod routes;
pub mod tiers;

pub use routes::{router, ReadState};
pub use tiers::{ArchiveTier, ArchivedWindow, NoArchive, TierError, Tiers};

/// The archive tier over the S3 archive: the archiver's [`carat_archiver::ArchiveReader`]
/// (index cache, cached listings) for windows of `config.window.raw_secs`.
#[must_use]
pub fn archive_tier(
    archive: std::sync::Arc<dyn carat_store::ports::Archive>,
    config: &carat_core::Config,
) -> std::sync::Arc<dyn ArchiveTier> {
    std::sync::Arc::new(tiers::S3Tier(
        carat_archiver::ArchiveReader::new(archive).with_window_secs(config.window.raw_secs),
    ))
}
