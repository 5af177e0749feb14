//! carat-store: how carat reaches its storage.
//!
//! Module map:
//! - [`ports`]: the four traits the handlers use — [`ports::Head`] (Redis: open windows),
//!   [`ports::WindowTable`] (DynamoDB: one item per series window), [`ports::Archive`]
//!   (S3: expired items) and [`ports::Log`] (Kinesis: the write-ahead log).
//! - [`error`]: [`StoreError`], which says whether a failure is worth retrying.
//! - [`fake`]: in-memory ports with injectable faults, for handler unit tests.
//! - [`retry`]: backoff with full jitter until a deadline, used by every adapter.
//! - adapters (one per service) follow.

pub mod error;
pub mod fake;
pub mod ports;
pub mod retry;

pub use error::StoreError;
