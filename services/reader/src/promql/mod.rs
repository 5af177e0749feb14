//! The Prometheus HTTP API over carat (docs/prometheus.md): PromQL parsed by the
//! `promql-parser` crate and evaluated here, with Prometheus 2.42's semantics
//! (promql/engine.go, functions.go, quantile.go), so that Grafana's Prometheus data source
//! works unchanged and answers equal a real Prometheus's for the same samples.
//!
//! Module map, in the order a query flows through it:
//! - [`api`]: the routes, their parameters (times, steps, the 11,000-points rule), the
//!   envelope `{"status":…}` and Prometheus' error types and statuses.
//! - [`select`]: selectors ⇒ catalog series (label matchers over the catalog's labels)
//!   ⇒ raw points from the tiers, bounded in series and points.
//! - [`eval`]: the evaluator: every step of a range at once, instant selectors with
//!   the 5-minute lookback and staleness, offsets, the value types.
//! - [`functions`]: `rate` and the other range functions, instant functions.
//! - [`aggregate`]: `sum`, `avg`, `topk`… with `by`/`without`.
//! - [`binary`]: operators between scalars and vectors, vector matching.
//! - [`depth`]: how deeply a query may nest (checked before and after parsing), so no
//!   query overflows the parser's or the evaluator's stack.

pub(crate) mod aggregate;
pub(crate) mod api;
pub(crate) mod binary;
pub(crate) mod depth;
pub(crate) mod eval;
pub(crate) mod functions;
pub(crate) mod select;

pub(crate) use api::routes;

/// A Prometheus stale marker (`value.StaleNaN`, the exact bits remote_write stores): it
/// ends its series at its time.
pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == carat_api::remote_write::STALE_NAN_BITS
}
