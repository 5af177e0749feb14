//! carat-writer: the write path from Kinesis records to the Redis head and the
//! DynamoDB window table (docs/write-path.md).
//!
//! Module map, in the order a batch flows through it:
//! - [`handler`]: the Lambda handler. Decodes records, turns points into head blocks,
//!   appends them per bucket, reports the first unstored record on retryable failures.
//! - [`flush`]: one window's flush — head ⇒ merge with the stored window ⇒ conditional
//!   write of the stamped chunk (split into parts if large) ⇒ settle. Shared with
//!   carat-flusher.
//! - [`catalog`]: the series catalog, kept per bucket: at most one catalog write per new
//!   series per day (an in-process set, then Redis markers set only after the write).
//! - [`rollup`]: 1 h / 1 d count, sum, min, max of a window, and their format (for the
//!   reader and the archive; no DynamoDB item).
//! - [`sink`]: where undecodable records go (a log line in AWS, files locally).
//! - [`emf`]: the CloudWatch EMF line each invocation prints.
//! - [`clock`]: injected time (re-exported from `carat_core::clock`).
//! - [`error`]: [`WriterError`] and its retryable/not split.
//! - [`event`]: building the Lambda `KinesisEvent` shape from log entries (carat-local,
//!   fixtures, benchmarks).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod catalog;
pub mod emf;
pub mod error;
pub mod event;
pub mod flush;
pub mod handler;
pub mod rollup;
pub mod sink;

pub use carat_core::clock;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::WriterError;
pub use handler::{BatchReport, Writer};

/// JSON logs for Lambda (CloudWatch Logs Insights can query the fields), level from
/// `RUST_LOG` (default `info`). Shared by the writer, flusher and reader binaries.
pub fn init_lambda_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
}
