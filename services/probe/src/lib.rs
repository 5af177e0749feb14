//! carat-probe: the end-to-end probe. It posts one point through the ingest API, reads it
//! back through the reader, and emits the time between as `Carat/EndToEndLatency` (EMF),
//! the metric the Monitoring stack alarms on (docs/probe-metric.md). It goes through the
//! public API as a client does; nothing else of carat is touched.
//!
//! Module map (data flows setup → probe → report):
//! - [`setup`]: the API URL, the deployment name and the probe's API key from the
//!   environment (the key from its own Secrets Manager secret in AWS).
//! - [`http`]: the HTTP client (hyper + rustls), one bounded request at a time.
//! - [`probe`]: one run — post, read back with backoff until the deadline — giving a
//!   [`ProbeResult`] (latency, or why not).
//! - [`emf`]: the metric's EMF line, frozen by a golden test.
//! - [`lambda`]: the Lambda's budget (the invocation deadline) and report (EMF on stdout,
//!   a warning otherwise). carat-local runs [`Probe::run`] on its own schedule instead.

pub mod emf;
pub mod http;
pub mod lambda;
pub mod probe;
pub mod setup;

pub use http::HttpClient;
pub use probe::{Probe, ProbeError, ProbeResult, SERIES};
pub use setup::Setup;

/// JSON logs without timestamps (CloudWatch adds them), level from `RUST_LOG`.
pub fn init_lambda_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
}
