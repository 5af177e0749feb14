//! carat-store: how carat reaches its storage.
//!
//! Module map:
//! - [`ports`]: the four traits the handlers use — [`ports::Head`] (Redis: open windows),
//!   [`ports::WindowTable`] (DynamoDB: one item per series window), [`ports::Archive`]
//!   (S3: expired items) and [`ports::Log`] (Kinesis: the write-ahead log).
//! - [`error`]: [`StoreError`], which says whether a failure is worth retrying.
//! - adapters (one per service) and `fake` (in-memory ports for unit tests) follow.

pub mod error;
pub mod ports;

pub use error::StoreError;
